// Package service holds starbook's use cases: [Service] implements the root
// package's starbook.Service (and its optional parts: logs, runbooks, waits,
// audit, cluster status) over etcd storage (package cluster) and the local
// worker (package node). The HTTP API, the CLI (through the API) and Slack
// drive it.
//
// It owns what a request means: apply checks runbooks as starbook check does
// before storing them, all or nothing; a start compacts its input, stamps a
// time-sortable id and trace parent and is claimed by the local node in its
// create txn when a worker is free; apply --migrate ([Service.ApplyWith])
// replays each in-flight execution on the applied version and re-pins only
// those that replay and that no node runs. Storage and transactions stay in
// cluster.
package service
