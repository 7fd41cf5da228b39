package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"

	"github.com/starbook/starbook/triggers"
)

// Hooks is what the hook endpoints need; *triggers.Dispatcher implements it.
type Hooks interface {
	// Alertmanager starts (and resolves) the runs of a notification; the
	// executions are durable on return.
	Alertmanager(ctx context.Context, n *triggers.Notification) (*triggers.Result, error)
	// Webhook starts the runbooks that declare the hook and accept the request.
	Webhook(ctx context.Context, name string, h http.Header, body []byte) (*triggers.Result, error)
}

// Environment variables of the Alertmanager endpoint's optional
// authentication, matching Alertmanager's http_config (authorization or
// basic_auth).
const (
	EnvAlertmanagerToken    = "STARBOOK_ALERTMANAGER_TOKEN"
	EnvAlertmanagerUser     = "STARBOOK_ALERTMANAGER_USER"
	EnvAlertmanagerPassword = "STARBOOK_ALERTMANAGER_PASSWORD"
)

// AlertmanagerAuth is what POST /hooks/alertmanager requires: a bearer token,
// basic auth, either, or (both empty) nothing.
type AlertmanagerAuth struct {
	Token    string
	User     string
	Password string
}

// AlertmanagerAuthFromEnv reads the endpoint's credentials with lookup
// (os.LookupEnv).
func AlertmanagerAuthFromEnv(lookup func(string) (string, bool)) AlertmanagerAuth {
	var a AlertmanagerAuth
	a.Token, _ = lookup(EnvAlertmanagerToken)
	a.User, _ = lookup(EnvAlertmanagerUser)
	a.Password, _ = lookup(EnvAlertmanagerPassword)
	return a
}

// Enabled reports whether the endpoint requires credentials.
func (a AlertmanagerAuth) Enabled() bool { return a.Token != "" || a.User != "" }

// String never shows the credentials.
func (a AlertmanagerAuth) String() string {
	switch {
	case a.Token != "" && a.User != "":
		return "bearer token or basic auth"
	case a.Token != "":
		return "bearer token"
	case a.User != "":
		return "basic auth"
	}
	return "none"
}

// LogValue keeps the credentials out of logs.
func (a AlertmanagerAuth) LogValue() slog.Value { return slog.StringValue(a.String()) }

// check accepts a request carrying one of the configured credentials,
// compared in constant time.
func (a AlertmanagerAuth) check(r *http.Request) error {
	if !a.Enabled() {
		return nil
	}
	if a.Token != "" && triggers.VerifyBearer(r.Header, a.Token) == nil {
		return nil
	}
	if a.User != "" {
		if user, pass, ok := r.BasicAuth(); ok &&
			triggers.EqualSecret(user, a.User) && triggers.EqualSecret(pass, a.Password) {
			return nil
		}
	}
	return &requestError{status: http.StatusUnauthorized, msg: "missing or invalid credentials: this endpoint requires " + a.String()}
}

// Option configures NewHandler.
type Option func(*handler)

// WithHooks serves POST /hooks/alertmanager (authenticated by auth, if set)
// and POST /hooks/{name} (authenticated per trigger).
func WithHooks(hooks Hooks, auth AlertmanagerAuth) Option {
	return func(h *handler) {
		hh := &hookHandler{handler: h, hooks: hooks, auth: auth}
		h.route("POST /hooks/alertmanager", hh.alertmanager)
		h.route("POST /hooks/{name}", hh.webhook)
	}
}

type hookHandler struct {
	*handler
	hooks Hooks
	auth  AlertmanagerAuth
}

// readBody reads at most limit bytes (more is a 413 naming the limit, a short
// body a 400) and scrubs the secrets the node knows from it.
func (h *handler) readBody(w http.ResponseWriter, r *http.Request, limit int64, name string) ([]byte, error) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, &requestError{status: http.StatusRequestEntityTooLarge,
				msg: fmt.Sprintf("request body too large: limit is %d bytes (%s)", limit, name)}
		}
		return nil, badRequest("read request body: " + err.Error())
	}
	if h.scrubber.Contains(string(body)) {
		body = []byte(h.scrubber.Scrub(string(body)))
	}
	return body, nil
}

// alertmanager answers 200 once every run the notification starts is stored,
// 400 (storing nothing) for a malformed payload; Alertmanager retries 5xx.
func (h *hookHandler) alertmanager(w http.ResponseWriter, r *http.Request) error {
	if err := h.auth.check(r); err != nil {
		w.Header().Set("WWW-Authenticate", `Bearer realm="starbook", Basic realm="starbook"`)
		return err
	}
	body, err := h.readBody(w, r, h.limits.AlertmanagerBody, "serve --max-alertmanager-body-bytes")
	if err != nil {
		return err
	}
	if err := checkUTF8("the Alertmanager payload", body); err != nil {
		return err
	}
	n, err := triggers.DecodeNotification(body)
	if err != nil {
		return err
	}
	res, err := h.hooks.Alertmanager(r.Context(), n)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}

// webhook answers 201 when it created executions, 200 when the
// Idempotency-Key had already started them all.
func (h *hookHandler) webhook(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	body, err := h.readBody(w, r, triggers.MaxWebhookBody, "the largest max_body_bytes of a webhook trigger")
	if err != nil {
		return err
	}
	if err := checkUTF8("the webhook body", body); err != nil {
		return err
	}
	res, err := h.hooks.Webhook(r.Context(), name, r.Header, body)
	var (
		ae *triggers.AuthError
		ce *triggers.ConfigError
		tl *triggers.TooLargeError
	)
	switch {
	case err == nil:
	case errors.Is(err, triggers.ErrUnknownHook):
		return &requestError{status: http.StatusNotFound, msg: fmt.Sprintf("no runbook declares the webhook %q", name)}
	case errors.As(err, &ae):
		return &requestError{status: http.StatusUnauthorized, msg: ae.Error()}
	case errors.As(err, &tl):
		return &requestError{status: http.StatusRequestEntityTooLarge, msg: tl.Error()}
	case errors.As(err, &ce):
		h.logger.Error("webhook refused: not configured on this node", "hook", ce.Hook, "env", ce.Env)
		return &requestError{status: http.StatusInternalServerError,
			msg: fmt.Sprintf("webhook %q is not configured on this node (see the node's log)", name)}
	default:
		return err
	}
	status := http.StatusOK
	for _, s := range res.Executions {
		if s.Status != triggers.StatusDuplicate {
			status = http.StatusCreated
		}
	}
	writeJSON(w, status, res)
	return nil
}
