package api

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/starbook/starbook"
	sbruntime "github.com/starbook/starbook/runtime"
)

// DeadLettersResponse is GET /api/v1/dead-letters.
type DeadLettersResponse struct {
	DeadLetters []*starbook.DeadLetter `json:"dead_letters"`
	// Next is the cursor to pass as ?after= for the next page; empty on
	// the last.
	Next string `json:"next,omitempty"`
}

// AckRequest is the body of POST /api/v1/dead-letters/{id}/ack.
type AckRequest struct {
	Comment string `json:"comment,omitempty"`
}

// AckResponse is what POST /api/v1/dead-letters/{id}/ack answers.
type AckResponse struct {
	DeadLetter *starbook.DeadLetter `json:"dead_letter"`
}

// RedriveResponse is what POST /api/v1/executions/{id}/redrive answers: what
// the redrive did and the execution that runs now (the same one from the
// failed step, the new one from the start, the one as it is on a dry run).
type RedriveResponse struct {
	Redrive   *starbook.RedriveResult `json:"redrive"`
	Execution *sbruntime.Execution    `json:"execution"`
}

// maxAckComment bounds an ack's comment (it goes to the audit log).
const maxAckComment = 1024

// deadLetterRoutes registers the dead-letter routes; a service without
// dead letters answers them 404.
func (h *handler) deadLetterRoutes() {
	h.route("GET /api/v1/dead-letters", h.deadLetters)
	h.route("POST /api/v1/dead-letters/{id}/ack", h.ackDeadLetter)
	h.route("POST /api/v1/executions/{id}/redrive", h.redrive)
}

func (h *handler) deadLetterService() (starbook.DeadLetterService, error) {
	if s, ok := h.svc.(starbook.DeadLetterService); ok {
		return s, nil
	}
	return nil, &requestError{status: http.StatusNotFound, msg: "this node keeps no dead letters"}
}

func (h *handler) deadLetters(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	f := starbook.DeadLetterFilter{Runbook: q.Get("runbook"), Reason: q.Get("reason"), Limit: DefaultLimit}
	if f.Reason != "" && !slices.Contains(starbook.DeadLetterReasons, f.Reason) {
		return badRequest(fmt.Sprintf("unknown reason %q (want one of %s)", f.Reason, strings.Join(starbook.DeadLetterReasons, ", ")))
	}
	if f.Runbook != "" {
		if err := checkRunbookName(f.Runbook); err != nil {
			return err
		}
	}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxLimit {
			return badRequest(fmt.Sprintf("invalid limit %q: want an integer from 1 to %d", s, MaxLimit))
		}
		f.Limit = n
	}
	if s := q.Get("after"); s != "" {
		if _, id, ok := starbook.ParseDeadLetterCursor(s); !ok || !validID(id) {
			return badRequest(fmt.Sprintf("invalid after %q: want a dead letter's cursor (<13-digit unix ms>.<id>)", s))
		}
		f.After = s
	}
	svc, err := h.deadLetterService()
	if err != nil {
		return err
	}
	// One more than a page: if it comes, there is a next page.
	limit := f.Limit
	f.Limit++
	list, err := svc.DeadLetters(r.Context(), f)
	if err != nil {
		return err
	}
	resp := DeadLettersResponse{DeadLetters: nonNil(list)}
	if len(list) > limit {
		resp.DeadLetters = list[:limit]
		resp.Next = list[limit-1].Cursor()
	}
	writeJSON(w, http.StatusOK, resp)
	return nil
}

func (h *handler) ackDeadLetter(w http.ResponseWriter, r *http.Request) error {
	var req AckRequest
	if err := h.decodeBody(w, r, h.limits.Body, &req, true); err != nil {
		return err
	}
	if len(req.Comment) > maxAckComment {
		return badRequest(fmt.Sprintf("comment is %d bytes, over the %d-byte limit", len(req.Comment), maxAckComment))
	}
	n := note(r)
	n.detail = "ack"
	if req.Comment != "" {
		n.detail = "ack: " + req.Comment
	}
	svc, err := h.deadLetterService()
	if err != nil {
		return err
	}
	dl, err := svc.AckDeadLetter(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	n.runbook = dl.Runbook
	if dl.Kind != starbook.DeadExecution {
		n.execution = "" // an event's id names no execution
	}
	n.detail += " (" + dl.Kind + ", " + dl.Reason + ")"
	writeJSON(w, http.StatusOK, AckResponse{DeadLetter: dl})
	return nil
}

func (h *handler) redrive(w http.ResponseWriter, r *http.Request) error {
	var req starbook.RedriveRequest
	if err := h.decodeBody(w, r, h.limits.Body, &req, true); err != nil {
		return err
	}
	if err := h.checkForce(r, req.Force && !req.DryRun); err != nil {
		return err
	}
	req.By = requester(r)
	n := note(r)
	n.detail = fmt.Sprintf("from %s, version %s", orDefault(req.From, starbook.RedriveFromFailed),
		orDefault(req.Version, starbook.RedriveVersionPin))
	if req.Force {
		n.detail += ", forced past a pause"
	}
	if req.DryRun {
		n.detail += ", dry run"
	}
	svc, err := h.deadLetterService()
	if err != nil {
		return err
	}
	res, e, err := svc.Redrive(r.Context(), r.PathValue("id"), req)
	if err != nil {
		return err
	}
	n.runbook = e.Runbook
	if res.New != "" {
		n.detail += ", new execution " + res.New
	}
	writeJSON(w, http.StatusOK, RedriveResponse{Redrive: res, Execution: e})
	return nil
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// DeadLetters lists one page of the dead letters matching f, newest first
// (f.Limit of them, the server's default when 0).
func (c *Client) DeadLetters(ctx context.Context, f starbook.DeadLetterFilter) ([]*starbook.DeadLetter, error) {
	list, _, err := c.DeadLettersPage(ctx, f)
	return list, err
}

// DeadLettersPage lists one page of the dead letters matching f, newest
// first (those after cursor f.After when set), and returns the cursor to
// pass as f.After for the next page: "" when this page is the last.
func (c *Client) DeadLettersPage(ctx context.Context, f starbook.DeadLetterFilter) (list []*starbook.DeadLetter, next string, err error) {
	q := url.Values{}
	if f.Runbook != "" {
		q.Set("runbook", f.Runbook)
	}
	if f.Reason != "" {
		q.Set("reason", f.Reason)
	}
	if f.Limit > 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	if f.After != "" {
		q.Set("after", f.After)
	}
	path := "/api/v1/dead-letters"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var resp DeadLettersResponse
	err = c.do(ctx, http.MethodGet, path, nil, nil, &resp)
	return resp.DeadLetters, resp.Next, err
}

// AckDeadLetter acknowledges dead letter id with a comment (may be empty):
// it is removed, and the ack audited.
func (c *Client) AckDeadLetter(ctx context.Context, id, comment string) (*starbook.DeadLetter, error) {
	var resp AckResponse
	hdr := http.Header{UserHeader: {c.User}}
	err := c.do(ctx, http.MethodPost, "/api/v1/dead-letters/"+url.PathEscape(id)+"/ack", hdr, AckRequest{Comment: comment}, &resp)
	return resp.DeadLetter, err
}

// Redrive redrives execution id as r says, recorded as asked by c.User.
func (c *Client) Redrive(ctx context.Context, id string, r starbook.RedriveRequest) (*RedriveResponse, error) {
	var resp RedriveResponse
	hdr := http.Header{UserHeader: {c.User}}
	if err := c.do(ctx, http.MethodPost, "/api/v1/executions/"+url.PathEscape(id)+"/redrive", hdr, r, &resp); err != nil {
		return nil, err
	}
	return &resp, nil
}
