package api

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/starbook/starbook"
	"github.com/starbook/starbook/auth"
)

// PausesResponse is GET /api/v1/pauses: the pauses in force, every
// runbook's (runbook "*") first.
type PausesResponse struct {
	Pauses []starbook.PauseState `json:"pauses"`
}

// ReplayResponse is what POST /api/v1/dead-letters/{id}/replay answers.
type ReplayResponse struct {
	Replay *starbook.ReplayResult `json:"replay"`
}

// pauseBody is the body of POST .../pause: a starbook.PauseRequest whose
// until is read here, so that a bad one gets a clear message.
type pauseBody struct {
	Paused        bool   `json:"paused"`
	Reason        string `json:"reason,omitempty"`
	Until         string `json:"until,omitempty"`
	CancelRunning bool   `json:"cancel_running,omitempty"`
}

// pauseRoutes registers the pause and replay routes; a service without
// them answers 404.
func (h *handler) pauseRoutes() {
	h.route("GET /api/v1/pauses", h.pauses)
	h.route("GET /api/v1/pause", h.pauseState)
	h.route("POST /api/v1/pause", h.pause)
	h.route("GET /api/v1/runbooks/{name}/pause", h.pauseState)
	h.route("POST /api/v1/runbooks/{name}/pause", h.pause)
	h.route("POST /api/v1/dead-letters/{id}/replay", h.replay)
}

func (h *handler) pauseService() (starbook.PauseService, error) {
	if s, ok := h.svc.(starbook.PauseService); ok {
		return s, nil
	}
	return nil, &requestError{status: http.StatusNotFound, msg: "this node cannot pause runbooks"}
}

// pausedRunbook is the runbook a pause route names: {name}, "*" or none
// (/api/v1/pause) for every runbook.
func pausedRunbook(r *http.Request) (string, error) {
	name := r.PathValue("name")
	if name == "" || name == starbook.AllRunbooks {
		return starbook.AllRunbooks, nil
	}
	return name, checkRunbookName(name)
}

func (h *handler) pauses(w http.ResponseWriter, r *http.Request) error {
	svc, err := h.pauseService()
	if err != nil {
		return err
	}
	list, err := svc.Pauses(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, PausesResponse{Pauses: nonNil(list)})
	return nil
}

func (h *handler) pauseState(w http.ResponseWriter, r *http.Request) error {
	runbook, err := pausedRunbook(r)
	if err != nil {
		return err
	}
	svc, err := h.pauseService()
	if err != nil {
		return err
	}
	st, err := svc.PauseState(r.Context(), runbook)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, st)
	return nil
}

func (h *handler) pause(w http.ResponseWriter, r *http.Request) error {
	runbook, err := pausedRunbook(r)
	if err != nil {
		return err
	}
	var body pauseBody
	if err := h.decodeBody(w, r, h.limits.Body, &body, false); err != nil {
		return err
	}
	req := starbook.PauseRequest{Paused: body.Paused, Reason: body.Reason, CancelRunning: body.CancelRunning, By: requester(r)}
	if body.Until != "" {
		until, err := time.Parse(time.RFC3339, body.Until)
		if err != nil {
			return badRequest(fmt.Sprintf("until %q: want an RFC 3339 time, such as 2026-01-02T15:04:05Z", body.Until))
		}
		req.Until = until
	}
	n := note(r)
	n.runbook = runbook
	n.detail = "resume"
	if req.Paused {
		n.detail = "pause"
		if !req.Until.IsZero() {
			n.detail += " until " + req.Until.UTC().Format("2006-01-02T15:04:05Z")
		}
		if req.CancelRunning {
			n.detail += ", cancel running"
		}
	}
	if req.Reason != "" {
		n.detail += ": " + strconv.Quote(req.Reason)
	}
	svc, err := h.pauseService()
	if err != nil {
		return err
	}
	st, err := svc.Pause(r.Context(), runbook, req)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, st)
	return nil
}

// requester is who asks: the token's holder with authentication on, else
// the user the client names.
func requester(r *http.Request) string {
	if p, ok := principal(r); ok {
		return p.Name // the token says who, whatever the header claims
	}
	return strings.TrimSpace(r.Header.Get(UserHeader))
}

// checkForce refuses force (past a pause) to a caller whose role may not
// (auth.Force: admin); with authentication off anyone may.
func (h *handler) checkForce(r *http.Request, force bool) error {
	if !force || h.auth == nil {
		return nil
	}
	if p, ok := principal(r); ok && p.Can(auth.Force) {
		return nil
	}
	p, _ := principal(r)
	return &requestError{status: http.StatusForbidden,
		msg: "forbidden: " + p.Name + " has role " + string(p.Role) + ", which may not force a start past a pause (roles that may: " +
			strings.Join(rolesWith(auth.Force), ", ") + ")"}
}

// forceParam reads ?force=: absent is false.
func forceParam(r *http.Request) (bool, error) {
	s := r.URL.Query().Get("force")
	if s == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(s)
	if err != nil {
		return false, badRequest(fmt.Sprintf("invalid force %q: want true or false", s))
	}
	return b, nil
}

func (h *handler) replay(w http.ResponseWriter, r *http.Request) error {
	var req starbook.ReplayRequest
	if err := h.decodeBody(w, r, h.limits.Body, &req, true); err != nil {
		return err
	}
	force, err := forceParam(r)
	if err != nil {
		return err
	}
	req.Force = req.Force || force
	if err := h.checkForce(r, req.Force); err != nil {
		return err
	}
	req.By = requester(r)
	svc, ok := h.svc.(starbook.ReplayService)
	if !ok {
		return &requestError{status: http.StatusNotFound, msg: "this node cannot replay dead letters"}
	}
	n := note(r)
	n.execution = "" // a dead letter's id names no execution
	n.detail = "dead letter " + r.PathValue("id")
	res, err := svc.ReplayDeadLetter(r.Context(), r.PathValue("id"), req)
	if err != nil {
		return err
	}
	for _, e := range res.Executions {
		n.detail += ", started " + e.Runbook + " " + e.ID
	}
	if len(res.Executions) > 0 {
		n.runbook = res.Executions[0].Runbook
	}
	writeJSON(w, http.StatusOK, ReplayResponse{Replay: res})
	return nil
}

// Pause pauses (req.Paused) or resumes runbook, or every runbook
// (starbook.AllRunbooks), recorded as asked by c.User.
func (c *Client) Pause(ctx context.Context, runbook string, req starbook.PauseRequest) (*starbook.PauseState, error) {
	var st starbook.PauseState
	hdr := http.Header{UserHeader: {c.User}}
	if err := c.do(ctx, http.MethodPost, pausePath(runbook), hdr, req, &st); err != nil {
		return nil, err
	}
	return &st, nil
}

// PauseState returns the pause that stops runbook (Paused false: none).
func (c *Client) PauseState(ctx context.Context, runbook string) (*starbook.PauseState, error) {
	var st starbook.PauseState
	if err := c.do(ctx, http.MethodGet, pausePath(runbook), nil, nil, &st); err != nil {
		return nil, err
	}
	return &st, nil
}

// Pauses lists the pauses in force.
func (c *Client) Pauses(ctx context.Context) ([]starbook.PauseState, error) {
	var resp PausesResponse
	err := c.do(ctx, http.MethodGet, "/api/v1/pauses", nil, nil, &resp)
	return resp.Pauses, err
}

func pausePath(runbook string) string {
	if runbook == starbook.AllRunbooks {
		return "/api/v1/pause"
	}
	return "/api/v1/runbooks/" + url.PathEscape(runbook) + "/pause"
}

// ReplayDeadLetter replays trigger event dead letter id, recorded as asked
// by c.User; force starts a paused runbook all the same (admin).
func (c *Client) ReplayDeadLetter(ctx context.Context, id string, force bool) (*starbook.ReplayResult, error) {
	var resp ReplayResponse
	hdr := http.Header{UserHeader: {c.User}}
	if err := c.do(ctx, http.MethodPost, "/api/v1/dead-letters/"+url.PathEscape(id)+"/replay", hdr,
		starbook.ReplayRequest{Force: force}, &resp); err != nil {
		return nil, err
	}
	return resp.Replay, nil
}
