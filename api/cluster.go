package api

import (
	"context"
	"net/http"

	"github.com/starbook/starbook"
)

func (h *handler) cluster(w http.ResponseWriter, r *http.Request) error {
	cr, ok := h.svc.(starbook.ClusterReader)
	if !ok {
		return &requestError{status: http.StatusNotFound, msg: "this node does not report a cluster"}
	}
	st, err := cr.Cluster(r.Context())
	if err != nil {
		return err
	}
	if h.members != nil {
		if st.Members, err = h.members.Members(r.Context()); err != nil {
			return err
		}
	}
	writeJSON(w, http.StatusOK, st)
	return nil
}

// ready answers 200 when the node can take work, 503 otherwise.
func (h *handler) ready(w http.ResponseWriter, r *http.Request) error {
	cr, ok := h.svc.(starbook.ClusterReader)
	if !ok {
		return h.health(w, r)
	}
	if err := cr.Ready(r.Context()); err != nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not ready", "error": err.Error()})
		return nil
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	return nil
}

// Ready returns nil when the node reports itself ready to take work
// (GET /readyz); a node that is healthy may not be ready yet.
func (c *Client) Ready(ctx context.Context) error {
	return c.do(ctx, http.MethodGet, "/readyz", nil, nil, nil)
}

// Cluster returns the cluster's nodes, leader and claims.
func (c *Client) Cluster(ctx context.Context) (*starbook.ClusterStatus, error) {
	var out starbook.ClusterStatus
	if err := c.do(ctx, http.MethodGet, "/api/v1/cluster", nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
