package api

import (
	"context"
	"net/http"
	"time"
)

// ClusterStatus is what GET /api/v1/cluster answers: the nodes, the leader
// and each node's claims.
type ClusterStatus struct {
	Leader string       `json:"leader"`
	Nodes  []NodeStatus `json:"nodes"`
}

// NodeStatus is one registered node.
type NodeStatus struct {
	ID      string    `json:"id"`
	Started time.Time `json:"started"`
	Workers int       `json:"workers"`
	// TTLSeconds is the node's lease TTL; LeaseRemaining what is left of it
	// (a live node keeps it near the TTL: this is its heartbeat).
	TTLSeconds     int      `json:"ttl_seconds"`
	LeaseRemaining float64  `json:"lease_remaining_seconds"`
	Leader         bool     `json:"leader"`
	Claims         int      `json:"claims"`
	Claimed        []string `json:"claimed,omitempty"` // execution ids, at most 100
}

// ClusterReader is the optional part of a Service that reports the cluster
// and the node's readiness.
type ClusterReader interface {
	Cluster(ctx context.Context) (*ClusterStatus, error)
	// Ready returns nil when this node can take work: its store answers and
	// it holds a session.
	Ready(ctx context.Context) error
}

func (h *handler) cluster(w http.ResponseWriter, r *http.Request) error {
	cr, ok := h.svc.(ClusterReader)
	if !ok {
		return &requestError{status: http.StatusNotFound, msg: "this node does not report a cluster"}
	}
	st, err := cr.Cluster(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, st)
	return nil
}

// ready answers 200 when the node can take work, 503 otherwise.
func (h *handler) ready(w http.ResponseWriter, r *http.Request) error {
	cr, ok := h.svc.(ClusterReader)
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

// Cluster returns the cluster's nodes, leader and claims.
func (c *Client) Cluster(ctx context.Context) (*ClusterStatus, error) {
	var out ClusterStatus
	if err := c.do(ctx, http.MethodGet, "/api/v1/cluster", nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
