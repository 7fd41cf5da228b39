package api

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/starbook/starbook"
)

// OutcomeOf maps an HTTP status to an audit outcome.
func OutcomeOf(status int) string {
	switch {
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return starbook.AuditDenied
	case status >= 500:
		return starbook.AuditFailed
	case status >= 400:
		return starbook.AuditRefused
	}
	return starbook.AuditOK
}

// auditActions names the mutating routes' actions.
var auditActions = map[string]string{
	"POST /api/v1/policies":                                "policy.apply",
	"POST /api/v1/runbooks":                                "runbook.apply",
	"POST /api/v1/runbooks/{name}/rollout/promote":         "rollout.promote",
	"POST /api/v1/runbooks/{name}/rollout/abort":           "rollout.abort",
	"POST /api/v1/executions":                              "execution.start",
	"POST /api/v1/runbooks/{name}/executions":              "execution.start",
	"POST /api/v1/executions/{id}/cancel":                  "execution.cancel",
	"POST /api/v1/executions/{id}/signals/{name}":          "execution.signal",
	"POST /api/v1/executions/{id}/approve":                 "approval.decide",
	"POST /api/v1/executions/{id}/approvals/{position...}": "approval.decide",
	"POST /api/v1/executions/{id}/redrive":                 "execution.redrive",
	"POST /api/v1/dead-letters/{id}/ack":                   "deadletter.ack",
	"POST /api/v1/dead-letters/{id}/replay":                "deadletter.replay",
	"POST /api/v1/pause":                                   "runbook.pause",
	"POST /api/v1/runbooks/{name}/pause":                   "runbook.pause",
	"POST /api/v1/cluster/members":                         "member.add",
	"DELETE /api/v1/cluster/members/{name}":                "member.remove",
	"POST /hooks/alertmanager":                             "alertmanager.notify",
	"POST /hooks/{name}":                                   "webhook.receive",
}

// mutating reports whether a request is an action to audit.
func mutating(r *http.Request) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return false
	}
	return true
}

// auditNote is what the handler of an audited request adds to its record.
type auditNote struct {
	runbook, execution, detail, err string
}

type auditNoteKey struct{}

// note returns the audit note of r, or a throwaway one when r is not audited.
func note(r *http.Request) *auditNote {
	if n, ok := r.Context().Value(auditNoteKey{}).(*auditNote); ok {
		return n
	}
	return &auditNote{}
}

// statusWriter remembers the status a handler answered.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// audited serves a mutating request through next and records what it did.
func (h *handler) audited(w http.ResponseWriter, r *http.Request, pattern string, next func(http.ResponseWriter, *http.Request)) {
	n := &auditNote{}
	vals := pathValues(pattern, r.URL.EscapedPath())
	n.execution = vals["id"]
	if strings.Contains(pattern, " /api/v1/runbooks/{name}") {
		n.runbook = vals["name"]
	}
	sw := &statusWriter{ResponseWriter: w}
	next(sw, r.WithContext(context.WithValue(r.Context(), auditNoteKey{}, n)))
	h.recordAudit(r, pattern, sw.status, n)
}

// pathValues matches path against pattern's wildcards ({id}, {name},
// {position...}); the mux sets them only once it dispatches, and a refused
// request is never dispatched.
func pathValues(pattern, path string) map[string]string {
	_, pp, _ := strings.Cut(pattern, " ")
	pSegs, segs := strings.Split(strings.Trim(pp, "/"), "/"), strings.Split(strings.Trim(path, "/"), "/")
	out := map[string]string{}
	for i, ps := range pSegs {
		if i >= len(segs) {
			break
		}
		if strings.HasPrefix(ps, "{") && strings.HasSuffix(ps, "}") {
			name := strings.Trim(ps, "{}")
			if rest, ok := strings.CutSuffix(name, "..."); ok {
				out[rest] = strings.Join(segs[i:], "/")
				break
			}
			if v, err := url.PathUnescape(segs[i]); err == nil {
				out[name] = v
			}
		}
	}
	return out
}

// recordAudit logs one action and stores it in the audit log.
func (h *handler) recordAudit(r *http.Request, pattern string, status int, n *auditNote) {
	action, ok := auditActions[pattern]
	if !ok {
		action = strings.ToLower(r.Method) + " " + r.URL.Path
	}
	rec := &starbook.AuditRecord{Time: time.Now().UTC(), Action: action, Runbook: n.runbook, Execution: n.execution,
		Detail: n.detail, Remote: r.RemoteAddr, Status: status, Outcome: OutcomeOf(status), Error: n.err}
	switch {
	case pattern == "POST /hooks/alertmanager":
		rec.Actor, rec.Runbook = "alertmanager", ""
	case pattern == "POST /hooks/{name}":
		rec.Actor, rec.Runbook, rec.Detail = "webhook:"+r.PathValue("name"), "", ""
	default:
		if p, ok := principal(r); ok {
			rec.Actor, rec.Role = p.Name, string(p.Role)
		} else if u := strings.TrimSpace(r.Header.Get(UserHeader)); u != "" && !h.authOn() {
			rec.Actor = u
		} else {
			rec.Actor = "anonymous"
		}
	}
	if len(rec.Error) > 1024 {
		rec.Error = rec.Error[:1024] + "..."
	}
	if h.scrubber != nil { // a path or an echoed value may hold a secret the node knows
		for _, f := range []*string{&rec.Runbook, &rec.Execution, &rec.Detail, &rec.Error} {
			*f = h.scrubber.Scrub(*f)
		}
	}
	level := slog.LevelInfo
	if rec.Outcome != starbook.AuditOK {
		level = slog.LevelWarn
	}
	attrs := []any{"actor", rec.Actor, "role", rec.Role, "action", rec.Action, "runbook", rec.Runbook,
		"execution", rec.Execution, "detail", rec.Detail, "remote", rec.Remote, "status", rec.Status,
		"outcome", rec.Outcome}
	if rec.Error != "" {
		attrs = append(attrs, "error", rec.Error)
	}
	h.logger.Log(r.Context(), level, "audit", attrs...)
	log, ok := h.svc.(starbook.AuditLog)
	if !ok || status == http.StatusUnauthorized {
		return
	}
	// The action happened (or was refused) whatever the caller does now:
	// record it even if the caller has gone.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 5*time.Second)
	defer cancel()
	if err := log.RecordAudit(ctx, rec); err != nil {
		h.logger.Error("audit record not stored", append(attrs, "err", err)...)
	}
}

// AuditResponse is GET /api/v1/audit: records oldest first, and the id to
// pass as ?after= for the next ones.
type AuditResponse struct {
	Audit []*starbook.AuditRecord `json:"audit"`
	Next  string                  `json:"next,omitempty"`
	// Prev is the cursor of the page before this one (?before=): its
	// oldest record's id; empty when nothing is older.
	Prev string `json:"prev,omitempty"`
}

func (h *handler) audit(w http.ResponseWriter, r *http.Request) error {
	log, ok := h.svc.(starbook.AuditLog)
	if !ok {
		return &requestError{status: http.StatusNotFound, msg: "this node keeps no audit log"}
	}
	q := r.URL.Query()
	limit := starbook.DefaultAuditLimit
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > starbook.MaxAuditLimit {
			return badRequest(fmt.Sprintf("invalid limit %q: want an integer from 1 to %d", s, starbook.MaxAuditLimit))
		}
		limit = n
	}
	after, before := q.Get("after"), q.Get("before")
	if after != "" && !validID(after) {
		return badRequest(fmt.Sprintf("invalid after %q: want an audit record id", after))
	}
	if before != "" && !validID(before) {
		return badRequest(fmt.Sprintf("invalid before %q: want an audit record id", before))
	}
	var recs []*starbook.AuditRecord
	var err error
	switch {
	case after != "" && before != "":
		return badRequest("after and before do not go together: page forward or back")
	case before != "":
		history, ok := log.(starbook.AuditHistory)
		if !ok {
			return &requestError{status: http.StatusNotFound, msg: "this node cannot page back through its audit log"}
		}
		recs, err = history.AuditBefore(r.Context(), before, limit)
	default:
		recs, err = log.Audit(r.Context(), after, limit)
	}
	if err != nil {
		return err
	}
	resp := AuditResponse{Audit: nonNil(recs), Next: after}
	if len(recs) > 0 {
		resp.Next = recs[len(recs)-1].ID
	}
	if len(recs) == limit && after == "" {
		resp.Prev = recs[0].ID // a full page read back: there may be older ones
	}
	writeJSON(w, http.StatusOK, resp)
	return nil
}

// Audit returns up to limit audit records (0: the server's default), oldest
// first: those after the id after, or without it the newest ones.
func (c *Client) Audit(ctx context.Context, after string, limit int) (*AuditResponse, error) {
	q := url.Values{}
	if after != "" {
		q.Set("after", after)
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	path := "/api/v1/audit"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var out AuditResponse
	if err := c.do(ctx, http.MethodGet, path, nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
