package starbook

import (
	"context"
	"strconv"
	"time"

	sbruntime "github.com/starbook/starbook/runtime"
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

// AttrForced is the trigger attribute of an execution started by hand while
// its runbook was paused (starbook run --force): its value is the pause's
// holder, so the record says whose pause the start overrode.
const AttrForced = "forced_past_pause_by"

// Active reports whether p stops runs at now: it is set and its Until, if
// any, has not passed (the leader deletes it soon after).
func (p *PauseState) Active(now time.Time) bool {
	return p != nil && p.Paused && (p.Until.IsZero() || now.Before(p.Until))
}

// PausedError refuses a manual start, a redrive or a replay of a paused
// runbook; it wraps sbruntime.ErrConflict (HTTP 409).
type PausedError struct{ State PauseState }

func (e *PausedError) Error() string {
	s := &e.State
	what := "runbook " + s.Runbook + " is paused"
	if s.All {
		what = "runbook " + s.Runbook + " is paused (every runbook is)"
	}
	if s.By != "" {
		what += " by " + s.By
	}
	if !s.At.IsZero() {
		what += " since " + s.At.UTC().Format(time.RFC3339)
	}
	if s.Reason != "" {
		what += ": " + strconv.Quote(s.Reason)
	}
	if !s.Until.IsZero() {
		what += " (until " + s.Until.UTC().Format(time.RFC3339) + ")"
	}
	return what + "; resume it, or start it anyway with force (admin)"
}

// Unwrap makes a PausedError a conflict.
func (e *PausedError) Unwrap() error { return sbruntime.ErrConflict }

// ReplayRequest asks to replay a trigger event's dead letter.
type ReplayRequest struct {
	// Force starts a paused runbook all the same (admin only).
	Force bool   `json:"force,omitempty"`
	By    string `json:"-"` // who asks
}

// ReplayResult is what a replay started: the dead letter's event dispatched
// again, once.
type ReplayResult struct {
	DeadLetter string `json:"dead_letter"`
	// Executions are the runs it started, one per runbook it reached.
	Executions []ReplayedRun `json:"executions"`
}

// ReplayedRun is one run a replay started.
type ReplayedRun struct {
	Runbook string `json:"runbook"`
	ID      string `json:"id"`
	Status  string `json:"status"` // started, queued, dropped (as a trigger's start)
}

// ReplayService is the optional part of a Service that replays trigger
// events' dead letters. A dead letter replayed already, a runbook still
// paused or a payload still refused wraps sbruntime.ErrConflict (409); an
// execution's dead letter (redrive it instead) is an *sbruntime.InputError.
type ReplayService interface {
	// ReplayDeadLetter dispatches event dead letter id's payload again:
	// to the runbook it names (paused, refused, ...), or for an alert no
	// runbook matched, to the runbooks that match it now. The runs start
	// and the dead letter goes in one txn; durable on return.
	ReplayDeadLetter(ctx context.Context, id string, r ReplayRequest) (*ReplayResult, error)
}
