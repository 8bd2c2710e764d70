package kubeletapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"k8s.io/apiserver/pkg/authentication/authenticator"
	"k8s.io/apiserver/pkg/authentication/authenticatorfactory"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	"k8s.io/apiserver/pkg/authorization/authorizerfactory"
	"k8s.io/apiserver/pkg/server/dynamiccertificates"
	"k8s.io/apiserver/pkg/server/options"
	"k8s.io/client-go/kubernetes"
)

// guard authenticates and authorizes every request the way a kubelet does
// with webhook authentication and authorization: client certificates signed
// by the client CA, or bearer tokens checked with a TokenReview against the
// master; then a SubjectAccessReview for verb on nodes/<subresource> of the
// virtual node the request is about. Anonymous requests are refused.
type guard struct {
	authn authenticator.Request
	authz authorizer.Authorizer
}

func newGuard(master kubernetes.Interface, clientCA dynamiccertificates.CAContentProvider) (*guard, error) {
	authn := authenticatorfactory.DelegatingAuthenticatorConfig{
		// Anonymous stays nil: requests without credentials are refused.
		CacheTTL:                           2 * time.Minute,
		TokenAccessReviewClient:            master.AuthenticationV1(),
		TokenAccessReviewTimeout:           10 * time.Second,
		WebhookRetryBackoff:                options.DefaultAuthWebhookRetryBackoff(),
		ClientCertificateCAContentProvider: clientCA,
	}
	a, _, err := authn.New()
	if err != nil {
		return nil, fmt.Errorf("build authenticator: %w", err)
	}
	authz := authorizerfactory.DelegatingAuthorizerConfig{
		SubjectAccessReviewClient: master.AuthorizationV1(),
		AllowCacheTTL:             5 * time.Minute,
		DenyCacheTTL:              30 * time.Second,
		WebhookRetryBackoff:       options.DefaultAuthWebhookRetryBackoff(),
	}
	z, err := authz.New()
	if err != nil {
		return nil, fmt.Errorf("build authorizer: %w", err)
	}
	return &guard{authn: a, authz: z}, nil
}

// check returns 0 when the request may proceed, else the HTTP status to
// answer with and why. node is the virtual node the request is about ("" for
// requests about every node of this process).
func (g *guard) check(ctx context.Context, r *http.Request, node string) (int, string) {
	resp, ok, err := g.authn.AuthenticateRequest(r)
	if err != nil || !ok {
		return http.StatusUnauthorized, "Unauthorized"
	}
	attrs := authorizer.AttributesRecord{
		User:            resp.User,
		Verb:            verb(r.Method),
		APIVersion:      "v1",
		Resource:        "nodes",
		Subresource:     subresource(r.URL.Path),
		Name:            node,
		ResourceRequest: true,
		Path:            r.URL.Path,
	}
	decision, reason, err := g.authz.Authorize(ctx, attrs)
	if err != nil && !errors.Is(err, context.Canceled) {
		return http.StatusInternalServerError, "authorization failed"
	}
	if decision != authorizer.DecisionAllow {
		msg := fmt.Sprintf("Forbidden (user=%s, verb=%s, resource=nodes, subresource=%s)", resp.User.GetName(), attrs.Verb, attrs.Subresource)
		if reason != "" {
			msg += ": " + reason
		}
		return http.StatusForbidden, msg
	}
	return 0, ""
}

// verb maps an HTTP method to an authorization verb, as the kubelet does.
func verb(method string) string {
	switch method {
	case http.MethodPost:
		return "create"
	case http.MethodPut:
		return "update"
	case http.MethodPatch:
		return "patch"
	case http.MethodDelete:
		return "delete"
	default:
		return "get"
	}
}

// subresource maps a kubelet path to the nodes subresource that guards it,
// as the kubelet does: stats, metrics and log have their own; everything
// else, container logs, exec, attach and port-forward included, is proxy.
func subresource(path string) string {
	for _, s := range []struct{ prefix, sub string }{
		{"/stats", "stats"},
		{"/metrics", "metrics"},
		{"/logs", "log"},
	} {
		if path == s.prefix || strings.HasPrefix(path, s.prefix+"/") {
			return s.sub
		}
	}
	return "proxy"
}
