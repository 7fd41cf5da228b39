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
	// Members are the etcd members of a cluster of embedded members
	// (serve --initial-cluster); empty otherwise.
	Members []Member `json:"members,omitempty"`
}

// Member is one etcd member of a cluster of embedded members.
type Member struct {
	ID         string   `json:"id"`   // etcd's member id, hex
	Name       string   `json:"name"` // empty for an added member that has not started
	PeerURLs   []string `json:"peer_urls"`
	ClientURLs []string `json:"client_urls,omitempty"`
	// Healthy reports that the member answered a status request at its
	// client URL (seen from the node that answered).
	Healthy bool `json:"healthy"`
	Leader  bool `json:"leader"` // the raft leader, not starbook's
	Learner bool `json:"learner,omitempty"`
}

// MemberAdded is the answer to adding a member: the flags the new member
// must start with.
type MemberAdded struct {
	Member              Member `json:"member"`
	InitialCluster      string `json:"initial_cluster"`
	InitialClusterState string `json:"initial_cluster_state"`
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
