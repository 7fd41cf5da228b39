package starbook

import (
	"time"

	sbruntime "github.com/starbook/starbook/runtime"
)

// ClusterState is the cluster's work as the metrics show it: queue, claims,
// waits, nodes (cluster.Store.Snapshot reads it).
type ClusterState struct {
	// QueueDepth counts runnable executions no node has claimed.
	QueueDepth int
	// Claims counts the executions each node has claimed, by node id.
	Claims map[string]int
	// Waits counts pending waits by kind (approval, signal, sleep).
	Waits map[string]int
	// OldestWait is the Since of the oldest pending wait of each kind.
	OldestWait map[string]time.Time
	// Nodes counts the nodes registered (each under its session lease).
	Nodes int
	// Queued counts the triggered runs waiting for their runbook's policy
	// to admit them (queued/<runbook>/<id>), by runbook.
	Queued map[string]int
}

// ChangeWatcher is told of changes to executions and approvals as storage
// sees them (cluster.Store.WatchChanges).
type ChangeWatcher interface {
	// ExecutionChanged reports a new or rewritten execution record; prev is
	// nil for a new one.
	ExecutionChanged(prev, cur *sbruntime.Execution)
	// ApprovalResolved reports a decided or timed-out approval: the runbook,
	// the decision (approve, reject, timeout, or error) and how long it waited.
	ApprovalResolved(runbook, decision string, waited time.Duration)
}
