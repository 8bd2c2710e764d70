// Package gitserver serves bare git repositories to tests the way a git
// host does: the real `git http-backend` behind net/http/cgi on a loopback
// port (smart HTTP), with optional basic auth, optional TLS under a freshly
// generated CA, pushes on request, and counts of the requests that cost
// the server work (ref advertisements and upload-pack POSTs).
//
// A Repo is a bare repository fleet.git under Root plus a working clone
// that commits with fixed identities and dates and pushes to it by path.
//
//	repo := gitserver.NewRepo(t)
//	sha := repo.Commit(map[string]string{"clusters/a.yaml": "name: a\n"}, "add a")
//	repo.Push("main")
//	srv := gitserver.Start(t, repo.Root, gitserver.Options{Username: "atoll", Password: "s3cret", TLS: true})
//	url := srv.RepoURL(repo) // https://127.0.0.1:PORT/fleet.git; trust srv.CAPEM
//	...
//	if n := srv.UploadPacks(); n != 1 { t.Errorf("upload-pack requests = %d", n) }
package gitserver
