package api

import (
	"context"
	"net/http"
	"net/url"

	"github.com/starbook/starbook"
)

// Canary rollouts: apply with "canary" starts one (see apply), these routes
// read and end it.
func (h *handler) rolloutRoutes() {
	h.route("GET /api/v1/runbooks/{name}/rollout", h.rollout)
	h.route("POST /api/v1/runbooks/{name}/rollout/promote", h.endRollout(starbook.RolloutService.PromoteRollout))
	h.route("POST /api/v1/runbooks/{name}/rollout/abort", h.endRollout(starbook.RolloutService.AbortRollout))
}

// RolloutResponse is what the rollout routes answer.
type RolloutResponse struct {
	Rollout *starbook.Rollout `json:"rollout"`
}

// rolloutRequest is the optional body of promote and abort.
type rolloutRequest struct{}

func (h *handler) rollouts() (starbook.RolloutService, error) {
	rs, ok := h.svc.(starbook.RolloutService)
	if !ok {
		return nil, &requestError{status: http.StatusNotFound, msg: "this node does not run canary rollouts"}
	}
	return rs, nil
}

// actor is who a request acts for: the token's name with authentication
// on, else the user the client names, else "api".
func actor(r *http.Request) string {
	if p, ok := principal(r); ok {
		return p.Name
	}
	if u := r.Header.Get(UserHeader); u != "" {
		return u
	}
	return "api"
}

// applyCanary is apply with a canary spec; a bad spec is refused before
// anything is checked or stored.
func (h *handler) applyCanary(r *http.Request, files map[string]string, spec starbook.CanarySpec) ([]starbook.RunbookVersion, error) {
	if err := spec.Validate(); err != nil {
		return nil, badRequest(err.Error())
	}
	rs, err := h.rollouts()
	if err != nil {
		return nil, err
	}
	note(r).detail = "canary"
	return rs.ApplyCanary(r.Context(), files, spec, actor(r))
}

// rollout answers GET /api/v1/runbooks/{name}/rollout: the runbook's latest
// rollout with the counts of its canary's runs.
func (h *handler) rollout(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	if err := checkRunbookName(name); err != nil {
		return err
	}
	rs, err := h.rollouts()
	if err != nil {
		return err
	}
	ro, err := rs.Rollout(r.Context(), name)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, RolloutResponse{Rollout: ro})
	return nil
}

// endRollout serves promote or abort: 409 when no rollout is active or
// another transition won.
func (h *handler) endRollout(end func(starbook.RolloutService, context.Context, string, string) (*starbook.Rollout, error)) func(http.ResponseWriter, *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		name := r.PathValue("name")
		if err := checkRunbookName(name); err != nil {
			return err
		}
		var req rolloutRequest
		if err := h.decodeBody(w, r, h.limits.Body, &req, true); err != nil {
			return err
		}
		rs, err := h.rollouts()
		if err != nil {
			return err
		}
		ro, err := end(rs, r.Context(), name, actor(r))
		if err != nil {
			return err
		}
		note(r).detail = ro.State + " " + ro.Canary
		writeJSON(w, http.StatusOK, RolloutResponse{Rollout: ro})
		return nil
	}
}

// ApplyCanary stores the runbooks in files as Apply does, but each changed
// runbook's new version takes only spec's share of new starts until the
// leader promotes or rolls it back.
func (c *Client) ApplyCanary(ctx context.Context, files map[string]string, spec starbook.CanarySpec) ([]starbook.RunbookVersion, error) {
	var resp runbooksResponse
	err := c.do(ctx, http.MethodPost, "/api/v1/runbooks", c.userHeader(), applyRequest{Files: files, Canary: &spec}, &resp)
	return resp.Runbooks, err
}

// Rollout returns the runbook's latest rollout with its counts.
func (c *Client) Rollout(ctx context.Context, runbook string) (*starbook.Rollout, error) {
	var resp RolloutResponse
	err := c.do(ctx, http.MethodGet, "/api/v1/runbooks/"+url.PathEscape(runbook)+"/rollout", nil, nil, &resp)
	return resp.Rollout, err
}

// PromoteRollout makes the active rollout's canary the current version.
func (c *Client) PromoteRollout(ctx context.Context, runbook string) (*starbook.Rollout, error) {
	return c.endRollout(ctx, runbook, "promote")
}

// AbortRollout ends the active rollout; the stable version stays current.
func (c *Client) AbortRollout(ctx context.Context, runbook string) (*starbook.Rollout, error) {
	return c.endRollout(ctx, runbook, "abort")
}

func (c *Client) endRollout(ctx context.Context, runbook, what string) (*starbook.Rollout, error) {
	var resp RolloutResponse
	err := c.do(ctx, http.MethodPost, "/api/v1/runbooks/"+url.PathEscape(runbook)+"/rollout/"+what, c.userHeader(), nil, &resp)
	return resp.Rollout, err
}

// userHeader names c.User as who acts, for a server without
// authentication (with it, the token's name is recorded instead).
func (c *Client) userHeader() http.Header {
	if c.User == "" {
		return nil
	}
	return http.Header{UserHeader: {c.User}}
}
