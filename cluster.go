package starbook

import "time"

// ClusterStatus is the cluster as GET /api/v1/cluster answers it: the
// nodes, the leader and each node's claims.
type ClusterStatus struct {
	Leader string       `json:"leader"`
	Nodes  []NodeStatus `json:"nodes"`
	// Format is the store's format (README, "Upgrades"): what its records
	// look like. 1 is a store no node of a release with formats has opened.
	Format int `json:"format"`
	// FormatWrittenBy is the build that wrote the store's format marker.
	FormatWrittenBy string `json:"format_written_by,omitempty"`
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
