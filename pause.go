package starbook

import (
	"context"
	"time"
)

// ReasonPaused is the dead-letter reason of a trigger event (an alert, a
// webhook request, a cron tick) that arrived while its runbook was paused:
// it started nothing and is kept, with its payload, to be replayed.
const ReasonPaused = "paused"

// AllRunbooks is the runbook name of the pause that stops every runbook
// (starbook pause --all).
const AllRunbooks = "*"

// PauseRequest asks to pause a runbook, or every runbook (AllRunbooks), or
// to resume it (Paused false).
type PauseRequest struct {
	Paused bool   `json:"paused"`
	Reason string `json:"reason,omitempty"`
	// Until, when set, resumes the runbook by itself at that time (driven by
	// the leader, so it survives a fail-over); it must be in the future.
	Until time.Time `json:"until,omitzero"`
	// CancelRunning also cancels the runbook's executions in flight.
	CancelRunning bool `json:"cancel_running,omitempty"`
	// By is who asks: the authenticated principal, set by the front end.
	By string `json:"-"`
}

// PauseState is whether a runbook is paused, by whom and why. A runbook is
// paused when its own pause or the pause of AllRunbooks is set.
type PauseState struct {
	Runbook string    `json:"runbook"`
	Paused  bool      `json:"paused"`
	Reason  string    `json:"reason,omitempty"`
	By      string    `json:"by,omitempty"`
	At      time.Time `json:"at,omitzero"`
	Until   time.Time `json:"until,omitzero"`
	// All is set when the runbook is paused by the pause of every runbook.
	All bool `json:"all,omitempty"`
	// Cancelled lists the executions a pause with CancelRunning cancelled.
	Cancelled []string `json:"cancelled,omitempty"`
}

// PauseService pauses and resumes runbooks. Errors wrapping
// sbruntime.ErrNotFound (no such runbook) become 404, *sbruntime.InputError
// (Until in the past) 400.
type PauseService interface {
	// Pause sets or clears (req.Paused false) the pause of runbook, or of
	// every runbook (AllRunbooks), recording who and why in the audit log.
	Pause(ctx context.Context, runbook string, req PauseRequest) (*PauseState, error)
	// PauseState returns the pause that applies to runbook.
	PauseState(ctx context.Context, runbook string) (*PauseState, error)
	// Pauses lists every pause set, AllRunbooks's first.
	Pauses(ctx context.Context) ([]PauseState, error)
}
