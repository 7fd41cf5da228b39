package api

import (
	"context"
	"encoding/json"
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
	// Waits lists pending approvals and signal waits, oldest first.
	Waits(ctx context.Context) ([]*PendingWait, error)
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

// RunbookVersion describes one stored runbook version.
type RunbookVersion struct {
	Name      string    `json:"name"`
	Version   string    `json:"version"`
	Files     []string  `json:"files"`
	CreatedAt time.Time `json:"created_at"`
	Unchanged bool      `json:"unchanged,omitempty"` // apply found this version already current
	// Warnings are what apply's check found that does not refuse it, e.g. a
	// secret not set on the node ("file:line:col: warning: ...").
	Warnings []string `json:"warnings,omitempty"`
}

// Filter selects executions.
type Filter struct {
	Status  sbruntime.Status
	Runbook string
	Limit   int
	// After is a cursor: only executions older than this id (ids sort by
	// time), i.e. the page after the one that ended with it. The id need not
	// name a stored execution.
	After string
}
