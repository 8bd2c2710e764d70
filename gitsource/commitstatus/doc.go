// Package commitstatus writes the outcome of each revision back to the
// fleet repository as a commit status: through the GitHub, GitLab or
// Gitea API, or as git notes (a JSON Note per commit under
// refs/notes/atoll, pushed — works with any git server).
//
// Every writer is a Reporter; the reconciler's StatusReporter has the same
// shape (cmd copies the fields across). Errors are *RetryableError
// (network, 5xx, 409, 429, rate limits — with the provider's requested
// wait, see RetryAfter) or *TerminalError (401, 403, 404, 422, an invalid
// status). Tokens never appear in logs or errors: a server that echoes
// the request has its answer scrubbed.
//
// # Provider selection
//
// New picks the writer: an explicit Provider, else a guess from the
// repository URL (github.com → GitHub; gitlab.com or a "/-/" path →
// GitLab), else Fallback (default notes). The API base is derived from the
// URL (api.github.com, HOST/api/v3, HOST/api/v4, HOST[/PREFIX]/api/v1)
// unless StatusURL overrides it. LoadToken reads --status-token-file or
// $ATOLL_STATUS_TOKEN.
//
// State mapping: GitHub and Gitea take pending/success/failure/error as
// they are; GitLab gets running/success/failed/failed (its "pending" means
// "not started"; it has no "error").
// Descriptions are cut to 140 (GitHub) and 255 (GitLab) characters.
//
// # Lifecycle
//
// Dedupe drops a status identical to the last one delivered for the same
// revision and context. Queue makes Report non-blocking: statuses wait in a
// bounded queue (newest per revision+context) and Run delivers them,
// retrying with backoff or the provider's Retry-After / rate-limit reset,
// so an unreachable git host never blocks reconciling. Superseded marks
// commits skipped between two polls as success, "superseded by <short
// sha>" (see its documentation for why success).
//
//	tok, err := commitstatus.LoadToken(tokenFile)
//	if err != nil {
//		return err
//	}
//	w, provider, err := commitstatus.New(commitstatus.Config{
//		RepoURL:   "https://github.com/example/fleet.git",
//		Provider:  "", // guess; or commitstatus.ProviderGitea, ...
//		StatusURL: "", // derived
//		Token:     tok,
//		Notes:     commitstatus.NotesConfig{Dir: "/var/cache/atoll/notes"},
//		Logger:    log,
//	})
//	if err != nil {
//		return err
//	}
//	q, err := commitstatus.NewQueue(commitstatus.QueueConfig{
//		Reporter: commitstatus.NewDedupe(w, 0),
//		Logger:   log.With("status_provider", provider),
//	})
//	if err != nil {
//		return err
//	}
//	go q.Run(ctx)
//	_ = q.Report(ctx, commitstatus.Status{Revision: sha, Context: commitstatus.DefaultContext,
//		State: commitstatus.StatePending, Description: "applying"})
//	// ... apply ...
//	_ = commitstatus.Superseded(ctx, q, commitstatus.DefaultContext, skipped, sha, "")
//	_ = q.Report(ctx, commitstatus.Status{Revision: sha, Context: commitstatus.DefaultContext,
//		State: commitstatus.StateSuccess, Description: "3 nodes ready · +1 added"})
package commitstatus
