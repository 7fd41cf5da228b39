package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/starbook/starbook"
	"github.com/starbook/starbook/auth"
	sbruntime "github.com/starbook/starbook/runtime"
)

// Request headers the CLI sets when it starts an execution.
const (
	// TriggerHeader set to "manual" records the execution as started by a person.
	TriggerHeader = "X-Starbook-Trigger"
	// UserHeader names that person; it becomes the trigger's source.
	UserHeader = "X-Starbook-User"
)

// Request limits.
const (
	MaxRunbooksBody = 8 << 20          // bytes of a POST /api/v1/runbooks body
	MaxBody         = 1 << 20          // bytes of any other request body
	MaxWait         = 10 * time.Minute // longest ?wait= on GET /api/v1/executions/{id}
	DefaultLimit    = 100              // executions listed when ?limit= is absent
	MaxLimit        = 1000             // largest ?limit=
)

// NewHandler returns the HTTP API over svc. Errors that are not the caller's
// fault are logged to logger (nil discards them). Options add optional
// endpoints (WithHooks).
func NewHandler(svc starbook.Service, logger *slog.Logger, opts ...Option) http.Handler {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	h := &handler{svc: svc, logger: logger, mux: http.NewServeMux(), limits: Limits{}.withDefaults()}
	h.route("GET /healthz", h.health)
	h.route("GET /readyz", h.ready)
	h.route("GET /api/v1/cluster", h.cluster)
	h.route("POST /api/v1/runbooks", h.apply)
	h.route("GET /api/v1/runbooks", h.runbooks)
	h.route("POST /api/v1/executions", h.start)
	h.route("POST /api/v1/runbooks/{name}/executions", h.startNamed)
	h.route("GET /api/v1/executions", h.executions)
	h.route("GET /api/v1/executions/{id}", h.execution)
	h.route("POST /api/v1/executions/{id}/cancel", h.cancel)
	h.route("POST /api/v1/executions/{id}/signals/{name}", h.signal)
	h.route("POST /api/v1/executions/{id}/approve", h.decide)
	h.route("POST /api/v1/executions/{id}/approvals/{position...}", h.decide)
	h.route("GET /api/v1/approvals", h.approvals)
	h.route("GET /api/v1/waits", h.waits)
	h.route("GET /api/v1/whoami", h.whoami)
	h.route("GET /api/v1/audit", h.audit)
	h.route("GET /api/v1/slo", h.slo)
	h.rolloutRoutes()
	h.observeRoutes()
	h.runbookPageRoutes()
	h.deadLetterRoutes()
	h.pauseRoutes()
	h.usageRoutes()
	h.policyRoutes()
	h.snapshotRoutes()
	h.storeRoutes()
	for _, opt := range opts {
		opt(h)
	}
	return h
}

type handler struct {
	svc      starbook.Service
	logger   *slog.Logger
	mux      *http.ServeMux
	auth     *auth.Authenticator // nil: no tokens (the API is open unless sessions is set)
	sessions Sessions            // nil: no single sign-on
	limits   Limits
	scrubber *sbruntime.Scrubber // scrubs request bodies; nil for none
	members  Members             // nil unless WithMembers
	patterns []string            // every route, in registration order
}

// Patterns lists the routes the handler serves ("METHOD /path/{wildcard}"),
// for tests that must cover every one.
func (h *handler) Patterns() []string { return append([]string(nil), h.patterns...) }

// route registers fn; the error it returns becomes the response.
func (h *handler) route(pattern string, fn func(http.ResponseWriter, *http.Request) error) {
	h.patterns = append(h.patterns, pattern)
	h.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		err := checkPath(r)
		if err == nil {
			err = fn(w, r)
		}
		if err != nil {
			h.fail(w, r, err)
		}
	})
}

// ServeHTTP serves the API. With authentication on, /api/ routes need a
// token whose role may use them; mutating requests are audited. The mux's
// own 404 and 405 responses are plain text; they are rewritten here so that
// every error is JSON.
func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if (strings.HasPrefix(r.URL.Path, "/api/") || strings.HasPrefix(r.URL.Path, "/hooks/")) && !canonical(r.URL.Path) {
		// "..", "." or "//": refuse it rather than send the client to
		// another route than the one it named.
		writeError(w, http.StatusBadRequest, fmt.Sprintf("path %q is not canonical: no \"..\", \".\" or empty segments", r.URL.Path))
		return
	}
	_, pattern := h.mux.Handler(r)
	r, authErr := h.authorize(r, pattern)
	if authErr != nil {
		if authErr.(*requestError).status == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", `Bearer realm="starbook"`)
		}
		if mutating(r) && pattern != "" {
			h.audited(w, r, pattern, func(w http.ResponseWriter, r *http.Request) { h.fail(w, r, authErr) })
			return
		}
		h.fail(w, r, authErr)
		return
	}
	if pattern != "" {
		if mutating(r) {
			h.audited(w, r, pattern, h.mux.ServeHTTP)
			return
		}
		h.mux.ServeHTTP(w, r)
		return
	}
	rec := &recorder{header: http.Header{}}
	h.mux.ServeHTTP(rec, r)
	switch rec.status {
	case http.StatusNotFound:
		writeError(w, http.StatusNotFound, fmt.Sprintf("no route for %s %s", r.Method, r.URL.Path))
	case http.StatusMethodNotAllowed:
		w.Header().Set("Allow", rec.header.Get("Allow"))
		writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("method %s not allowed on %s (allowed: %s)",
			r.Method, r.URL.Path, rec.header.Get("Allow")))
	default: // a redirect to the cleaned path: pass it on as it is
		for k, v := range rec.header {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.status)
		_, _ = w.Write(rec.body.Bytes())
	}
}

// recorder captures the mux's response to an unrouted request.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }
func (r *recorder) WriteHeader(status int) {
	if r.status == 0 {
		r.status = status
	}
}
func (r *recorder) Write(b []byte) (int, error) {
	r.WriteHeader(http.StatusOK)
	return r.body.Write(b)
}

type healthResponse struct {
	Status string `json:"status"`
	Error  string `json:"error,omitempty"`
}

func (h *handler) health(w http.ResponseWriter, r *http.Request) error {
	if err := h.svc.Health(r.Context()); err != nil {
		h.logger.Warn("health check failed", "err", err)
		writeJSON(w, http.StatusServiceUnavailable, healthResponse{Status: "unhealthy", Error: err.Error()})
		return nil
	}
	writeJSON(w, http.StatusOK, healthResponse{Status: "ok"})
	return nil
}

type applyRequest struct {
	Files map[string]string `json:"files"`
	// Migrate moves in-flight executions onto the applied versions when
	// they replay on them; DryRun (with Migrate) stores nothing.
	Migrate bool `json:"migrate,omitempty"`
	DryRun  bool `json:"dry_run,omitempty"`
	// Canary, when set, applies changed runbooks as canaries of their
	// current versions (starbook.RolloutService); every field is required.
	Canary *starbook.CanarySpec `json:"canary,omitempty"`
}

// checkFiles refuses a files map (runbooks or policies) that is empty or
// names a file with an empty name.
func checkFiles(files map[string]string) error {
	if len(files) == 0 {
		return badRequest("no files: want {\"files\":{\"NAME.star\":\"SOURCE\",...}}")
	}
	for name := range files {
		if strings.TrimSpace(name) == "" {
			return badRequest("empty file name")
		}
	}
	return nil
}

func (h *handler) apply(w http.ResponseWriter, r *http.Request) error {
	var req applyRequest
	if err := h.decodeBody(w, r, h.limits.RunbooksBody, &req, false); err != nil {
		return err
	}
	if err := checkFiles(req.Files); err != nil {
		return err
	}
	if (req.Migrate || req.DryRun) && req.Canary != nil {
		return badRequest("canary and migrate do not go together: roll the new version out first, then migrate the runs left behind")
	}
	if req.Migrate || req.DryRun {
		return h.applyWith(w, r, req)
	}
	var versions []starbook.RunbookVersion
	var err error
	if req.Canary != nil {
		versions, err = h.applyCanary(r, req.Files, *req.Canary)
	} else {
		versions, err = h.svc.Apply(r.Context(), req.Files)
	}
	if err != nil {
		return err
	}
	names := make([]string, len(versions))
	for i, v := range versions {
		names[i] = v.Name + "@" + v.Version
	}
	note(r).runbook = strings.Join(names, ",")
	writeJSON(w, http.StatusOK, runbooksResponse{Runbooks: nonNil(versions)})
	return nil
}

type runbooksResponse struct {
	Runbooks []starbook.RunbookVersion `json:"runbooks"`
}

func (h *handler) runbooks(w http.ResponseWriter, r *http.Request) error {
	versions, err := h.svc.Runbooks(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, runbooksResponse{Runbooks: nonNil(versions)})
	return nil
}

type startRequest struct {
	Runbook string          `json:"runbook"`
	Input   json.RawMessage `json:"input,omitempty"`
	// Force starts it even while its runbook is paused (admin; also ?force=true).
	Force bool `json:"force,omitempty"`
}

type startNamedRequest struct {
	Input json.RawMessage `json:"input,omitempty"`
	Force bool            `json:"force,omitempty"`
}

type executionResponse struct {
	Execution *sbruntime.Execution `json:"execution"`
}

func (h *handler) start(w http.ResponseWriter, r *http.Request) error {
	var req startRequest
	if err := h.decodeBody(w, r, h.limits.Body, &req, false); err != nil {
		return err
	}
	if req.Runbook == "" {
		return badRequest("runbook is required")
	}
	note(r).runbook = req.Runbook
	if err := checkRunbookName(req.Runbook); err != nil {
		return err
	}
	return h.startExecution(w, r, req.Runbook, req.Input, req.Force)
}

func (h *handler) startNamed(w http.ResponseWriter, r *http.Request) error {
	var req startNamedRequest
	if err := checkRunbookName(r.PathValue("name")); err != nil {
		return err
	}
	// The body only carries an optional input, so an empty one is accepted.
	if err := h.decodeBody(w, r, h.limits.Body, &req, true); err != nil {
		return err
	}
	return h.startExecution(w, r, r.PathValue("name"), req.Input, req.Force)
}

// startExecution starts runbook; force (the body's, or ?force=true) starts
// it past a pause, for a caller that may (auth.Force).
func (h *handler) startExecution(w http.ResponseWriter, r *http.Request, runbook string, input json.RawMessage, force bool) error {
	forceQ, err := forceParam(r)
	if err != nil {
		return err
	}
	force = force || forceQ
	if err := h.checkForce(r, force); err != nil {
		return err
	}
	// The decoder has checked input's syntax; an explicit null means no input.
	if bytes.Equal(bytes.TrimSpace(input), []byte("null")) {
		input = nil
	}
	trigger := sbruntime.Trigger{Type: "api"}
	if strings.EqualFold(r.Header.Get(TriggerHeader), "manual") {
		trigger = sbruntime.Trigger{Type: "manual", Source: r.Header.Get(UserHeader)}
	}
	if p, ok := principal(r); ok {
		// The token says who started it, whatever the headers claim: it is
		// the requester the two-person rule of approvals excludes.
		trigger.Source = p.Name
	}
	if force {
		trigger.Attrs = map[string]string{starbook.AttrForced: ""} // Start records whose pause it overrode
		note(r).detail = "forced past a pause"
	}
	e, err := h.svc.Start(r.Context(), runbook, input, trigger)
	if err != nil {
		return err
	}
	note(r).execution = e.ID
	writeJSON(w, http.StatusCreated, executionResponse{Execution: e})
	return nil
}

type executionsResponse struct {
	Executions []*sbruntime.Execution `json:"executions"`
	// Next is the id to pass as ?after= for the next page; empty on the last.
	Next string `json:"next,omitempty"`
}

func (h *handler) executions(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	f := starbook.Filter{Runbook: q.Get("runbook"), Limit: DefaultLimit}
	if s := q.Get("status"); s != "" {
		st, err := sbruntime.ParseStatus(s)
		if err != nil {
			return badRequest(err.Error())
		}
		f.Status = st
	}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxLimit {
			return badRequest(fmt.Sprintf("invalid limit %q: want an integer from 1 to %d", s, MaxLimit))
		}
		f.Limit = n
	}
	if s := q.Get("after"); s != "" {
		if !validID(s) {
			return badRequest(fmt.Sprintf("invalid after %q: want an execution id", s))
		}
		f.After = s
	}
	// Ask for one more than a page: if it comes, there is a next page, and a
	// page that happens to end the list says so.
	limit := f.Limit
	f.Limit++
	list, err := h.svc.Executions(r.Context(), f)
	if err != nil {
		return err
	}
	resp := executionsResponse{Executions: nonNil(list)}
	if len(list) > limit {
		resp.Executions = list[:limit]
		resp.Next = list[limit-1].ID
	}
	writeJSON(w, http.StatusOK, resp)
	return nil
}

type historyResponse struct {
	Execution *sbruntime.Execution `json:"execution"`
	History   []*sbruntime.Event   `json:"history"`
	Waits     []*sbruntime.Wait    `json:"waits,omitempty"`    // pending ones
	Timeline  []TimelineRow        `json:"timeline,omitempty"` // see Timeline
	Usage     *sbruntime.Usage     `json:"usage,omitempty"`    // counted from history
}

func (h *handler) execution(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	if s := r.URL.Query().Get("wait"); s != "" {
		wait, err := time.ParseDuration(s)
		if err != nil || wait < 0 || wait > MaxWait {
			return badRequest(fmt.Sprintf("invalid wait %q: want a duration from 0s to %s", s, MaxWait))
		}
		if wait > 0 {
			ctx, cancel := context.WithTimeout(r.Context(), wait)
			_, err := h.svc.AwaitEnd(ctx, id)
			timedOut := ctx.Err() != nil
			cancel()
			// Running out of wait is the expected outcome of a long poll: the
			// execution is returned as it is now.
			if err != nil && !timedOut {
				return err
			}
		}
	}
	e, history, err := h.svc.Execution(r.Context(), id)
	if err != nil {
		return err
	}
	waits, timeline := h.executionDetail(r, e, history)
	usage := sbruntime.UsageOf(e, history)
	writeJSON(w, http.StatusOK, historyResponse{Execution: e, History: nonNil(history), Waits: waits, Timeline: timeline, Usage: &usage})
	return nil
}

func (h *handler) cancel(w http.ResponseWriter, r *http.Request) error {
	// No body is needed; one that is there must be an empty object, so a
	// garbled request does not cancel anything.
	var req struct{}
	if err := h.decodeBody(w, r, h.limits.Body, &req, true); err != nil {
		return err
	}
	e, err := h.svc.Cancel(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, executionResponse{Execution: e})
	return nil
}

// requestError is a request refused by the handler itself.
type requestError struct {
	status int
	msg    string
}

func (e *requestError) Error() string { return e.msg }

func badRequest(msg string) error { return &requestError{status: http.StatusBadRequest, msg: msg} }

// fail writes err as a JSON error with the status its type calls for.
func (h *handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	var (
		re *requestError
		ie *sbruntime.InputError
		le *sbruntime.LimitError
	)
	note(r).err = err.Error()
	switch {
	case errors.As(err, &re):
		writeError(w, re.status, re.msg)
	case errors.As(err, &ie):
		// The pointer names the field a form shows the refusal at.
		writeJSON(w, http.StatusBadRequest, errorResponse{Error: ie.Error(), Pointer: ie.Pointer})
	case errors.As(err, &le):
		writeError(w, http.StatusTooManyRequests, le.Error())
	case errors.Is(err, sbruntime.ErrStorageFull):
		// Nothing was started: the caller (Alertmanager, a webhook's
		// sender) may try again once space is freed.
		w.Header().Set("Retry-After", "60")
		writeError(w, http.StatusInsufficientStorage, err.Error())
	case errors.Is(err, sbruntime.ErrNotFound):
		writeError(w, http.StatusNotFound, err.Error())
	case errors.Is(err, sbruntime.ErrConflict):
		writeError(w, http.StatusConflict, err.Error())
	case errors.Is(err, sbruntime.ErrForbidden):
		writeError(w, http.StatusForbidden, err.Error())
	case r.Context().Err() != nil:
		// The caller went away; nobody reads the response.
		h.logger.Debug("request abandoned", "method", r.Method, "path", r.URL.Path, "err", err)
	default:
		h.logger.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		writeError(w, http.StatusInternalServerError, err.Error())
	}
}

// decodeBody decodes the JSON object in r's body into v strictly: at most limit
// bytes, UTF-8, no unknown fields, nothing after the object. An empty body is
// an error unless allowEmpty. Known secrets are scrubbed from it first.
func (h *handler) decodeBody(w http.ResponseWriter, r *http.Request, limit int64, v any, allowEmpty bool) error {
	name := "serve --max-body-bytes"
	if limit == h.limits.RunbooksBody && r.URL.Path == "/api/v1/runbooks" {
		name = "serve --max-runbooks-body-bytes"
	}
	body, err := h.readBody(w, r, limit, name)
	if err != nil {
		return err
	}
	if err := checkUTF8("request body", body); err != nil {
		return err
	}
	if len(bytes.TrimSpace(body)) == 0 {
		if allowEmpty {
			return nil
		}
		return badRequest("empty request body: want a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return badRequest("invalid request body: " + describeJSONError(err))
	}
	if rest := bytes.TrimSpace(body[dec.InputOffset():]); len(rest) > 0 {
		return badRequest("invalid request body: unexpected data after the JSON object")
	}
	return nil
}

// describeJSONError rewords a decoding error without Go type names.
func describeJSONError(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		if te.Field == "" {
			return fmt.Sprintf("want %s, got %s", jsonKind(te.Type), te.Value)
		}
		return fmt.Sprintf("field %q: want %s, got %s", te.Field, jsonKind(te.Type), te.Value)
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return "unexpected end of JSON"
	}
	return strings.TrimPrefix(err.Error(), "json: ")
}

func jsonKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Map, reflect.Struct:
		return "an object"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return "a number"
	}
	return t.String()
}

// writeJSON encodes v before sending anything, so that a value that does not
// encode becomes a 500 rather than a truncated 200.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b, _ = json.Marshal(errorResponse{Error: "encode response: " + err.Error()})
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	// A write error is a broken connection: the status is already sent.
	_, _ = w.Write(append(b, '\n'))
}

type errorResponse struct {
	Error string `json:"error"`
	// Pointer is the JSON pointer of the input value a runbook's input
	// schema refused ("/replicas"), on a 400 for a start.
	Pointer string `json:"pointer,omitempty"`
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, errorResponse{Error: msg})
}

// nonNil makes an empty list encode as [] rather than null.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
