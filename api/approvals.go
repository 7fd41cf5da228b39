package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/starbook/starbook"
	"github.com/starbook/starbook/auth"
	sbruntime "github.com/starbook/starbook/runtime"
)

// ViaHeader set to "cli" records a decision as made through the CLI; any
// other request's decisions are recorded as made through the API.
const ViaHeader = "X-Starbook-Via"

// SignalRequest is the body of POST /api/v1/executions/{id}/signals/{name}.
type SignalRequest struct {
	Data json.RawMessage `json:"data,omitempty"`
}

// SignalResponse answers a delivered signal.
type SignalResponse struct {
	Delivered bool   `json:"delivered"`
	Execution string `json:"execution"`
	Signal    string `json:"signal"`
}

// DecisionRequest is the body of the approval routes. With authentication
// on, the decider is the token's holder and As may name someone else only
// for an admin; without it, As (or X-Starbook-User) is trusted as given.
type DecisionRequest struct {
	Decision string `json:"decision"` // approve or reject
	Comment  string `json:"comment,omitempty"`
	As       string `json:"as,omitempty"` // the deciding user; default the X-Starbook-User header
}

type decisionResponse struct {
	Approval *sbruntime.ApprovalState `json:"approval"`
}

type waitsResponse struct {
	Waits []*starbook.PendingWait `json:"waits"`
	// Next is the cursor to pass as ?after= for the next page; empty on
	// the last.
	Next string `json:"next,omitempty"`
}

type approvalsResponse struct {
	Approvals []*starbook.PendingWait `json:"approvals"`
}

func (h *handler) signal(w http.ResponseWriter, r *http.Request) error {
	var req SignalRequest
	if err := h.decodeBody(w, r, h.limits.Body, &req, true); err != nil {
		return err
	}
	data := req.Data
	if bytes.Equal(bytes.TrimSpace(data), []byte("null")) {
		data = nil
	}
	by := r.Header.Get(UserHeader)
	if by == "" {
		by = "api"
	}
	if p, ok := principal(r); ok {
		by = p.Name
	}
	id, name := r.PathValue("id"), r.PathValue("name")
	note(r).detail = "signal " + name
	if err := h.svc.Signal(r.Context(), id, name, data, by); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, SignalResponse{Delivered: true, Execution: id, Signal: name})
	return nil
}

func (h *handler) decide(w http.ResponseWriter, r *http.Request) error {
	var req DecisionRequest
	if err := h.decodeBody(w, r, h.limits.Body, &req, false); err != nil {
		return err
	}
	note(r).detail = strings.TrimSpace(req.Decision + " " + r.PathValue("position"))
	d := sbruntime.Decision{User: strings.TrimSpace(req.As), Comment: req.Comment, Via: sbruntime.ViaAPI}
	switch req.Decision {
	case sbruntime.DecisionApprove:
		d.Approve = true
	case sbruntime.DecisionReject:
	default:
		return badRequest(`decision must be "approve" or "reject"`)
	}
	if p, ok := principal(r); ok {
		// With authentication the token decides who approves: "as" names
		// someone else, which only an admin may do.
		switch {
		case d.User == "" || strings.EqualFold(d.User, p.Name):
			d.User = p.Name
		case !p.Can(auth.DecideAs):
			return &requestError{status: http.StatusForbidden, msg: fmt.Sprintf(
				"forbidden: %s may decide only as themselves, not as %q (deciding for another user needs the admin role)", p.Name, d.User)}
		}
	}
	if d.User == "" {
		d.User = strings.TrimSpace(r.Header.Get(UserHeader))
	}
	if d.User == "" {
		return badRequest(`who decides? set "as" (or the ` + UserHeader + ` header)`)
	}
	if strings.EqualFold(r.Header.Get(ViaHeader), sbruntime.ViaCLI) {
		d.Via = sbruntime.ViaCLI
	}
	state, err := h.svc.Decide(r.Context(), r.PathValue("id"), r.PathValue("position"), d)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, decisionResponse{Approval: state})
	return nil
}

// approvals lists every pending approval: it reads every wait (a kind is
// no index), as before waits were paged.
func (h *handler) approvals(w http.ResponseWriter, r *http.Request) error {
	waits, err := h.svc.Waits(r.Context(), starbook.WaitFilter{})
	if err != nil {
		return err
	}
	out := []*starbook.PendingWait{}
	for _, p := range waits {
		if p.Kind == sbruntime.KindApproval {
			out = append(out, p)
		}
	}
	sortBySince(out)
	writeJSON(w, http.StatusOK, approvalsResponse{Approvals: out})
	return nil
}

// waits lists a page of pending waits (?limit=, default DefaultLimit, and
// ?after=, the cursor of the last wait of the page before), taken in
// execution id order and shown oldest first within the page.
func (h *handler) waits(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	f := starbook.WaitFilter{Limit: DefaultLimit}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxLimit {
			return badRequest(fmt.Sprintf("invalid limit %q: want an integer from 1 to %d", s, MaxLimit))
		}
		f.Limit = n
	}
	if s := q.Get("after"); s != "" {
		id, pos, _ := strings.Cut(s, "/")
		if !validID(id) || pos == "" || len(s) > 256 {
			return badRequest(fmt.Sprintf("invalid after %q: want a wait's cursor (<execution id>/<position>)", s))
		}
		f.After = s
	}
	// One more than a page: if it comes, there is a next page.
	limit := f.Limit
	f.Limit++
	waits, err := h.svc.Waits(r.Context(), f)
	if err != nil {
		return err
	}
	resp := waitsResponse{Waits: nonNil(waits)}
	if len(waits) > limit {
		resp.Waits = waits[:limit]
		resp.Next = waits[limit-1].Cursor()
	}
	sortBySince(resp.Waits)
	writeJSON(w, http.StatusOK, resp)
	return nil
}

// sortBySince orders waits oldest first, as they were listed before waits
// were paged; a page is taken in execution id order, which is nearly that.
func sortBySince(waits []*starbook.PendingWait) {
	slices.SortStableFunc(waits, func(a, b *starbook.PendingWait) int { return a.Since.Compare(b.Since) })
}

// Signal delivers signal name with data (nil for none) to execution id, as
// sent by c.User.
func (c *Client) Signal(ctx context.Context, id, name string, data json.RawMessage) error {
	hdr := http.Header{UserHeader: {c.User}}
	return c.do(ctx, http.MethodPost, "/api/v1/executions/"+url.PathEscape(id)+"/signals/"+url.PathEscape(name),
		hdr, SignalRequest{Data: data}, nil)
}

// Decide records a decision as made through the CLI on the pending approval
// at position of execution id ("" for its only pending approval).
func (c *Client) Decide(ctx context.Context, id, position string, req DecisionRequest) (*sbruntime.ApprovalState, error) {
	path := "/api/v1/executions/" + url.PathEscape(id) + "/approve"
	if position != "" {
		segs := strings.Split(position, "/")
		for i, s := range segs {
			segs[i] = url.PathEscape(s)
		}
		path = "/api/v1/executions/" + url.PathEscape(id) + "/approvals/" + strings.Join(segs, "/")
	}
	var resp decisionResponse
	hdr := http.Header{UserHeader: {c.User}, ViaHeader: {sbruntime.ViaCLI}}
	err := c.do(ctx, http.MethodPost, path, hdr, req, &resp)
	return resp.Approval, err
}

// Waits lists the first page of pending approvals and signal waits (the
// server's default limit), oldest first.
func (c *Client) Waits(ctx context.Context) ([]*starbook.PendingWait, error) {
	list, _, err := c.WaitsPage(ctx, starbook.WaitFilter{})
	return list, err
}

// WaitsPage lists one page of pending approvals and signal waits (f.Limit,
// the server's default when 0, after cursor f.After), oldest first within
// the page, and returns the cursor to pass as f.After for the next page:
// "" when this page is the last.
func (c *Client) WaitsPage(ctx context.Context, f starbook.WaitFilter) (list []*starbook.PendingWait, next string, err error) {
	q := url.Values{}
	if f.Limit > 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	if f.After != "" {
		q.Set("after", f.After)
	}
	path := "/api/v1/waits"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var resp waitsResponse
	err = c.do(ctx, http.MethodGet, path, nil, nil, &resp)
	return resp.Waits, resp.Next, err
}

// Approvals lists pending approvals, oldest first.
func (c *Client) Approvals(ctx context.Context) ([]*starbook.PendingWait, error) {
	var resp approvalsResponse
	err := c.do(ctx, http.MethodGet, "/api/v1/approvals", nil, nil, &resp)
	return resp.Approvals, err
}
