package starbook

import (
	"context"
	"encoding/json"
	"io"
	"time"

	sbruntime "github.com/starbook/starbook/runtime"
)

// Service is what the HTTP API needs from a node. Errors wrapping
// sbruntime.ErrNotFound become 404, *sbruntime.InputError 400, others 500.
type Service interface {
	// Apply stores every runbook found in files (file name -> source) as a new
	// version, all or nothing.
	Apply(ctx context.Context, files map[string]string) ([]RunbookVersion, error)
	// Runbooks lists the runbooks with their current version.
	Runbooks(ctx context.Context) ([]RunbookVersion, error)
	// Start creates an execution of the runbook's current version; durable on return.
	Start(ctx context.Context, runbook string, input json.RawMessage, trigger sbruntime.Trigger) (*sbruntime.Execution, error)
	// Executions lists up to f.Limit executions, newest first; with f.After,
	// only those older than that id.
	Executions(ctx context.Context, f Filter) ([]*sbruntime.Execution, error)
	// Execution returns one execution and its history in position order.
	Execution(ctx context.Context, id string) (*sbruntime.Execution, []*sbruntime.Event, error)
	// Cancel cancels an execution that has not ended.
	Cancel(ctx context.Context, id string) (*sbruntime.Execution, error)
	// AwaitEnd blocks until the execution is terminal or ctx is done, and returns it as it is then.
	AwaitEnd(ctx context.Context, id string) (*sbruntime.Execution, error)
	// Health returns nil when the node can serve (its store answers).
	Health(ctx context.Context) error
	// Signal delivers signal name with data (nil for none) to an execution,
	// sent by by; durable on return.
	Signal(ctx context.Context, id, name string, data json.RawMessage, by string) error
	// Decide records a decision on the pending approval at position ("" for
	// the only one); durable on return. Errors wrapping sbruntime.ErrConflict
	// (already decided, several pending) become 409, sbruntime.ErrForbidden 403.
	Decide(ctx context.Context, id, position string, d sbruntime.Decision) (*sbruntime.ApprovalState, error)
	// Waits lists pending approvals and signal waits matching f, in
	// execution id order (oldest execution first), then position.
	Waits(ctx context.Context, f WaitFilter) ([]*PendingWait, error)
}

// WaitFilter selects a page of pending waits.
type WaitFilter struct {
	// Limit is the most to list; 0 for all.
	Limit int
	// After is a cursor (PendingWait.Cursor): only the waits after it, for
	// the next page; "" for the first.
	After string
}

// Filter selects executions.
type Filter struct {
	Status  sbruntime.Status
	Runbook string
	Limit   int
	// After is a cursor: only executions older than this id (ids sort by
	// time), for the next page of a listing; "" for the newest.
	After string
}

// PendingWait is a pending approval or signal wait.
type PendingWait struct {
	Execution string `json:"execution"`
	Runbook   string `json:"runbook"`
	Position  string `json:"position"`
	Kind      string `json:"kind"`           // approval or signal
	Name      string `json:"name,omitempty"` // the signal's name
	// Approvals only: the request and what it received so far.
	Message   string                       `json:"message,omitempty"`
	Approvers []string                     `json:"approvers,omitempty"`
	Channel   string                       `json:"channel,omitempty"`
	Required  int                          `json:"required,omitempty"`
	Requester string                       `json:"requester,omitempty"`
	Approvals []sbruntime.ApprovalDecision `json:"approvals,omitempty"`
	Escalated bool                         `json:"escalated,omitempty"`
	Since     time.Time                    `json:"since"`
	Deadline  *time.Time                   `json:"deadline,omitempty"`
}

// Cursor is where p sorts in a listing of waits: its execution id and
// position ("01J.../4/2"). Pass it as WaitFilter.After for the waits after p.
func (p *PendingWait) Cursor() string { return p.Execution + "/" + p.Position }

// LogService is the optional part of a Service that serves an execution's
// log lines.
type LogService interface {
	// Logs returns up to limit (<= 0: all) lines with Seq > after, oldest first.
	Logs(ctx context.Context, id string, after int64, limit int) ([]*sbruntime.LogLine, error)
	// FollowLogs sends the lines with Seq > after and then new ones as they are
	// stored, until the execution has ended (nil), ctx is done or send fails.
	FollowLogs(ctx context.Context, id string, after int64, send func(*sbruntime.LogLine) error) error
}

// RunbookService is the optional part of a Service that describes runbooks
// and their stored versions.
type RunbookService interface {
	// Runbook describes a runbook and its stored versions.
	Runbook(ctx context.Context, name string) (*RunbookInfo, error)
	// RunbookVersion returns a stored version ("" or "current": the current one).
	RunbookVersion(ctx context.Context, name, version string) (*sbruntime.Bundle, time.Time, error)
}

// WaitService lists one execution's pending waits (its timeline shows them).
type WaitService interface {
	ExecutionWaits(ctx context.Context, id string) ([]*sbruntime.Wait, error)
}

// Snapshotter is the optional part of a Service that streams a snapshot of
// the whole store (package snapshot's format: etcd's, with a sha256
// trailer).
type Snapshotter interface {
	// Snapshot writes the snapshot to w and returns the bytes written; it
	// blocks until the whole snapshot is written or ctx is done.
	Snapshot(ctx context.Context, w io.Writer) (int64, error)
}

// ClusterReader is the optional part of a Service that reports the cluster
// and the node's readiness.
type ClusterReader interface {
	Cluster(ctx context.Context) (*ClusterStatus, error)
	// Ready returns nil when this node can take work: its store answers and
	// it holds a session.
	Ready(ctx context.Context) error
}
