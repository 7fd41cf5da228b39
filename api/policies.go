package api

import (
	"context"
	"net/http"

	"github.com/starbook/starbook"
)

// policyRoutes registers /api/v1/policies when svc keeps policies.
func (h *handler) policyRoutes() {
	if _, ok := h.svc.(starbook.PolicyService); ok {
		h.route("POST /api/v1/policies", h.applyPolicies)
		h.route("GET /api/v1/policies", h.policies)
	}
}

type policiesRequest struct {
	Files map[string]string `json:"files"`
}

// PolicyResponse is the answer of /api/v1/policies: the policy set, null
// for none.
type PolicyResponse struct {
	Policies *starbook.PolicySet `json:"policies"`
}

func (h *handler) applyPolicies(w http.ResponseWriter, r *http.Request) error {
	var req policiesRequest
	if err := h.decodeBody(w, r, h.limits.RunbooksBody, &req, false); err != nil {
		return err
	}
	if err := checkFiles(req.Files); err != nil {
		return err
	}
	set, err := h.svc.(starbook.PolicyService).ApplyPolicies(r.Context(), req.Files)
	if err != nil {
		return err
	}
	note(r).detail = "policies@" + set.Version
	writeJSON(w, http.StatusOK, PolicyResponse{Policies: set})
	return nil
}

func (h *handler) policies(w http.ResponseWriter, r *http.Request) error {
	set, err := h.svc.(starbook.PolicyService).Policies(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, PolicyResponse{Policies: set})
	return nil
}

// ApplyPolicies replaces the cluster's policy set with files (tests
// included); refused whole, with file:line, if one does not load or a test
// fails.
func (c *Client) ApplyPolicies(ctx context.Context, files map[string]string) (*starbook.PolicySet, error) {
	var resp PolicyResponse
	err := c.do(ctx, http.MethodPost, "/api/v1/policies", nil, policiesRequest{Files: files}, &resp)
	return resp.Policies, err
}

// Policies returns the cluster's policy set with its sources; nil for none.
func (c *Client) Policies(ctx context.Context) (*starbook.PolicySet, error) {
	var resp PolicyResponse
	err := c.do(ctx, http.MethodGet, "/api/v1/policies", nil, nil, &resp)
	return resp.Policies, err
}
