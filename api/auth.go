package api

import (
	"context"
	"crypto/subtle"
	"errors"
	"net/http"
	"strings"

	"github.com/starbook/starbook/auth"
)

// routePermissions is what each API route needs when authentication is on
// (auth's package documentation has the role table). A route missing here
// needs auth.Read for GET and the admin role for anything else, so a route
// added without a decision is safe by default.
var routePermissions = map[string]auth.Permission{
	"GET /api/v1/whoami":                                   auth.Read,
	"GET /api/v1/cluster":                                  auth.Read,
	"GET /api/v1/cluster/members":                          auth.Read,
	"GET /api/v1/runbooks":                                 auth.Read,
	"GET /api/v1/runbooks/{name}":                          auth.Read,
	"GET /api/v1/runbooks/{name}/versions/{version}":       auth.Read,
	"GET /api/v1/runbooks/{name}/form":                     auth.Read,
	"GET /api/v1/schedules":                                auth.Read,
	"GET /api/v1/executions":                               auth.Read,
	"GET /api/v1/executions/{id}":                          auth.Read,
	"GET /api/v1/executions/{id}/logs":                     auth.Read,
	"GET /api/v1/approvals":                                auth.Read,
	"GET /api/v1/waits":                                    auth.Read,
	"GET /api/v1/audit":                                    auth.Audit,
	"GET /api/v1/snapshot":                                 auth.Snapshot,
	"GET /api/v1/store":                                    auth.Read,
	"POST /api/v1/store/free":                              auth.Apply,
	"POST /api/v1/runbooks":                                auth.Apply,
	"GET /api/v1/runbooks/{name}/rollout":                  auth.Read,
	"POST /api/v1/runbooks/{name}/rollout/promote":         auth.Apply,
	"POST /api/v1/runbooks/{name}/rollout/abort":           auth.Apply,
	"GET /api/v1/policies":                                 auth.Read,
	"POST /api/v1/policies":                                auth.Apply,
	"POST /api/v1/executions":                              auth.Run,
	"POST /api/v1/runbooks/{name}/executions":              auth.Run,
	"POST /api/v1/executions/{id}/cancel":                  auth.Cancel,
	"POST /api/v1/executions/{id}/signals/{name}":          auth.Signal,
	"POST /api/v1/executions/{id}/approve":                 auth.Decide,
	"POST /api/v1/executions/{id}/approvals/{position...}": auth.Decide,
	"GET /api/v1/dead-letters":                             auth.Read,
	"POST /api/v1/executions/{id}/redrive":                 auth.Run,
	"POST /api/v1/dead-letters/{id}/ack":                   auth.Cancel,
	"POST /api/v1/dead-letters/{id}/replay":                auth.Run,
	"GET /api/v1/pauses":                                   auth.Read,
	"GET /api/v1/pause":                                    auth.Read,
	"POST /api/v1/pause":                                   auth.Pause,
	"GET /api/v1/runbooks/{name}/pause":                    auth.Read,
	"POST /api/v1/runbooks/{name}/pause":                   auth.Pause,
}

// RoutePermission returns the permission a request matching pattern (a
// ServeMux pattern, "METHOD /path") needs; "" for a route that is not under
// /api/ (health, hooks with their own authentication).
func RoutePermission(pattern string) auth.Permission {
	method, path, _ := strings.Cut(pattern, " ")
	if !strings.HasPrefix(path, "/api/") {
		return ""
	}
	if p, ok := routePermissions[pattern]; ok {
		return p
	}
	if method == http.MethodGet || method == http.MethodHead {
		return auth.Read
	}
	return auth.Apply // admin only
}

// WithAuth makes every /api/ route require a bearer token of a, with the
// role its permission needs: 401 without a valid token, 403 with a role that
// may not. /healthz, /readyz and the hooks are not affected. A nil or empty
// authenticator leaves the API open.
func WithAuth(a *auth.Authenticator) Option {
	return func(h *handler) {
		if a.Enabled() {
			h.auth = a
		}
	}
}

// Sessions authenticates browsers signed in through single sign-on (the
// sso package): Session returns who r's session cookie names and the CSRF
// token bound to that session. A request without a session cookie gets an
// error that is http.ErrNoCookie; a forged, altered or expired cookie any
// other error.
type Sessions interface {
	Session(r *http.Request) (auth.Principal, string, error)
}

// CSRFHeader carries a session's CSRF token: every mutating request
// authenticated by a session cookie must send it.
const CSRFHeader = "X-CSRF-Token"

// WithSessions lets /api/ routes be called with a session cookie as well as
// a bearer token, and turns authentication on even without any token. A
// request with an Authorization header is judged by its token alone.
func WithSessions(s Sessions) Option {
	return func(h *handler) { h.sessions = s }
}

// authOn reports whether /api/ routes need a caller.
func (h *handler) authOn() bool { return h.auth != nil || h.sessions != nil }

// authorize checks r against the route pattern it matched ("" for none): it
// returns r carrying the caller's principal, or the error to answer.
func (h *handler) authorize(r *http.Request, pattern string) (*http.Request, error) {
	if !h.authOn() || !strings.HasPrefix(r.URL.Path, "/api/") {
		return r, nil
	}
	p, err := h.authenticate(r)
	if p.Name != "" {
		// Known even when refused (a missing CSRF token): the audit names them.
		r = r.WithContext(auth.WithPrincipal(r.Context(), p))
	}
	if err != nil {
		return r, err
	}
	if pattern == "" {
		return r, nil // the mux answers 404 or 405
	}
	if perm := RoutePermission(pattern); perm != "" && !p.Can(perm) {
		return r, &requestError{status: http.StatusForbidden,
			msg: "forbidden: " + p.Name + " has role " + string(p.Role) + ", which may not " + string(perm) +
				" (roles that may: " + strings.Join(rolesWith(perm), ", ") + ")"}
	}
	return r, nil
}

// authenticate returns the caller of r: by its bearer token, or else by its
// session cookie, which on a mutating request must come with the session's
// CSRF token (X-CSRF-Token): another site can make a browser send the
// cookie, never the header.
func (h *handler) authenticate(r *http.Request) (auth.Principal, error) {
	if h.sessions != nil && r.Header.Get("Authorization") == "" {
		p, csrf, err := h.sessions.Session(r)
		switch {
		case err == nil:
			if mutating(r) && (r.Header.Get(CSRFHeader) == "" ||
				subtle.ConstantTimeCompare([]byte(r.Header.Get(CSRFHeader)), []byte(csrf)) != 1) {
				return p, &requestError{status: http.StatusForbidden,
					msg: "missing or wrong " + CSRFHeader + ": a request signed in by a session cookie must carry the session's CSRF token (GET /auth/session)"}
			}
			return p, nil
		case !errors.Is(err, http.ErrNoCookie):
			return auth.Principal{}, &requestError{status: http.StatusUnauthorized, msg: err.Error()}
		}
	}
	p, err := h.auth.Request(r) // a nil authenticator knows no token
	if err != nil {
		msg := err.Error()
		if h.sessions != nil && errors.Is(err, auth.ErrNoToken) {
			msg = "authentication required: sign in at /auth/login, or send Authorization: Bearer <token>"
		}
		return auth.Principal{}, &requestError{status: http.StatusUnauthorized, msg: msg}
	}
	return p, nil
}

func rolesWith(p auth.Permission) []string {
	var out []string
	for _, r := range auth.Roles {
		if auth.Allowed(r, p) {
			out = append(out, string(r))
		}
	}
	return out
}

// principal returns the authenticated caller of r, when auth is on.
func principal(r *http.Request) (auth.Principal, bool) { return auth.PrincipalFrom(r.Context()) }

// WhoAmI is GET /api/v1/whoami: the caller as the node sees it.
type WhoAmI struct {
	Auth        bool              `json:"auth"` // whether the node requires a token or a session
	Name        string            `json:"name,omitempty"`
	Role        auth.Role         `json:"role,omitempty"`
	Permissions []auth.Permission `json:"permissions,omitempty"`
}

func (h *handler) whoami(w http.ResponseWriter, r *http.Request) error {
	out := WhoAmI{Auth: h.authOn()}
	if p, ok := principal(r); ok {
		out.Name, out.Role, out.Permissions = p.Name, p.Role, auth.Permissions(p.Role)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// WhoAmI asks the node who the client's token belongs to.
func (c *Client) WhoAmI(ctx context.Context) (*WhoAmI, error) {
	var out WhoAmI
	if err := c.do(ctx, http.MethodGet, "/api/v1/whoami", nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
