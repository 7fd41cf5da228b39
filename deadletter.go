package starbook

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"time"

	sbruntime "github.com/starbook/starbook/runtime"
)

// Dead-letter reasons: a small fixed vocabulary, the label values of the
// starbook_dead_letters gauge.
const (
	ReasonFailed             = "failed"              // the execution failed (no undo failed)
	ReasonStuck              = "stuck"               // its replay diverged from its history
	ReasonCompensationFailed = "compensation_failed" // it failed and an undo failed too
	ReasonDropped            = "dropped"             // a trigger's on_excess="drop" refused it
	ReasonBudget             = "budget"              // a budget refused it (error "budget: ...")
	ReasonNoRunbook          = "no_runbook"          // a trigger event that matched no runbook
	ReasonRefused            = "refused"             // a trigger event a schema or a budget refused
	ReasonOverflow           = "overflow"            // a coalesced alert its group's run had no room for
	ReasonStorage            = "storage"             // a trigger event refused while the store was full (package quota)
	// ReasonPaused (pause.go): a trigger event that came while its runbook was paused.
)

// DeadLetterReasons lists every reason, executions' first.
var DeadLetterReasons = []string{ReasonFailed, ReasonStuck, ReasonCompensationFailed, ReasonDropped,
	ReasonBudget, ReasonNoRunbook, ReasonRefused, ReasonOverflow, ReasonStorage, ReasonPaused}

// Dead-letter kinds.
const (
	DeadExecution = "execution" // an execution that ended without completing
	DeadEvent     = "event"     // a trigger event that started nothing
)

// DeadLetterReason returns why an ended execution is a dead letter, or ""
// when it is not one: it completed, or a person cancelled it.
func DeadLetterReason(e *sbruntime.Execution) string {
	switch e.Status {
	case sbruntime.StatusFailed:
		if strings.HasPrefix(e.Error, "compensation_failed") {
			return ReasonCompensationFailed
		}
		return ReasonFailed
	case sbruntime.StatusStuck:
		return ReasonStuck
	case sbruntime.StatusCancelled:
		switch {
		case strings.HasPrefix(e.Error, "dropped: "):
			return ReasonDropped
		case strings.HasPrefix(e.Error, "budget: "):
			return ReasonBudget
		}
	}
	return ""
}

// DeadLetter is an execution that ended failed, stuck, dropped, refused by
// a budget or with compensation_failed, or a trigger event that started
// nothing, kept until acknowledged (or, for an event, --retention).
type DeadLetter struct {
	ID     string `json:"id"`   // the execution's id, or the event's
	Kind   string `json:"kind"` // execution or event
	Reason string `json:"reason"`
	// Runbook is the execution's, or the runbook that refused the event
	// ("" when none matched it).
	Runbook string `json:"runbook,omitempty"`
	// Executions: how it ended (error cut to its first KiB) and its attempt.
	Status  sbruntime.Status `json:"status,omitempty"`
	Error   string           `json:"error,omitempty"`
	Trigger string           `json:"trigger,omitempty"` // the execution's trigger type
	Attempt int              `json:"attempt,omitempty"` // when redriven before
	// Events: where from ("alertmanager", "webhook:<name>"), the alert's
	// fingerprint and the payload (the alert, the body), cut at
	// MaxDeadLetterPayload.
	Source           string          `json:"source,omitempty"`
	Fingerprint      string          `json:"fingerprint,omitempty"`
	Detail           string          `json:"detail,omitempty"`
	Payload          json.RawMessage `json:"payload,omitempty"`
	PayloadTruncated bool            `json:"payload_truncated,omitempty"`
	At               time.Time       `json:"at"` // when it became a dead letter
}

// MaxDeadLetterPayload bounds the payload a trigger event's dead letter
// keeps; a larger one is kept as a JSON string of its first bytes.
const MaxDeadLetterPayload = 64 << 10

// Cursor is where dl sorts in a listing, newest first: its time in Unix
// milliseconds, 13 digits, a dot and its id ("1796558400000.01J..."), so
// that cursors compare as the listing orders them (a later one first).
// Pass it as DeadLetterFilter.After for the dead letters listed after dl.
func (dl *DeadLetter) Cursor() string {
	return DeadLetterCursor(dl.At, dl.ID)
}

// DeadLetterCursor is the Cursor of a dead letter with id at at. A time
// before 1970 counts as 1970 and one after 2286 as 2286 (13 digits).
func DeadLetterCursor(at time.Time, id string) string {
	ms := min(max(at.UnixMilli(), 0), maxCursorMillis)
	b := make([]byte, 0, 14+len(id))
	b = strconv.AppendInt(b, ms, 10)
	for len(b) < 13 {
		b = append([]byte{'0'}, b...)
	}
	return string(append(append(b, '.'), id...))
}

// maxCursorMillis is the latest time a cursor holds in 13 digits.
const maxCursorMillis = 9_999_999_999_999

// ParseDeadLetterCursor splits a Cursor into its milliseconds and id; ok is
// false when c is not one.
func ParseDeadLetterCursor(c string) (ms int64, id string, ok bool) {
	if len(c) < 15 || c[13] != '.' {
		return 0, "", false
	}
	for i := 0; i < 13; i++ {
		if c[i] < '0' || c[i] > '9' {
			return 0, "", false
		}
	}
	ms, err := strconv.ParseInt(c[:13], 10, 64)
	return ms, c[14:], err == nil
}

// DeadLetterFilter selects dead letters; empty fields match all.
type DeadLetterFilter struct {
	Runbook string
	Reason  string
	// Limit is the most to list; 0 for all.
	Limit int
	// After is a cursor (DeadLetter.Cursor): only dead letters listed after
	// it, for the next page; "" for the newest.
	After string
}

// Redrive modes and version choices.
const (
	RedriveFromFailed  = "failed"  // same execution, again from its failed step
	RedriveFromStart   = "start"   // a new execution with the same input
	RedriveVersionPin  = "pinned"  // the version the execution ran
	RedriveVersionLast = "current" // the runbook's current version
)

// RedriveRequest is how to redrive an execution.
type RedriveRequest struct {
	From    string `json:"from,omitempty"`    // failed (default) or start
	Version string `json:"version,omitempty"` // pinned (default) or current
	DryRun  bool   `json:"dry_run,omitempty"` // check and say what would happen; store nothing
	// Force runs it even while its runbook is paused (admin only).
	Force bool   `json:"force,omitempty"`
	By    string `json:"-"` // who asks (the token's holder or the user header)
}

// RedriveResult says what a redrive did (or, dry, would do).
type RedriveResult struct {
	Execution string `json:"execution"` // the execution redriven
	From      string `json:"from"`
	Version   string `json:"version"` // the version the run uses
	DryRun    bool   `json:"dry_run,omitempty"`
	// From failed: the attempt that runs, the recorded events it replays
	// and the positions it runs again.
	Attempt int      `json:"attempt,omitempty"`
	Kept    int      `json:"kept,omitempty"`
	Rerun   []string `json:"rerun,omitempty"`
	// From start: the new execution (none on a dry run).
	New string `json:"new_execution,omitempty"`
	// Replay is the replay's verdict when the version changes.
	Replay string `json:"replay,omitempty"`
}

// DeadLetterService is the optional part of a Service that keeps dead
// letters and redrives executions. Errors as Service's; a redrive that
// cannot be done (a running execution, another redrive winning, an
// incompatible version) wraps sbruntime.ErrConflict (409).
type DeadLetterService interface {
	// DeadLetters lists the dead letters matching f, newest first (in
	// the order of their cursors), at most f.Limit (0: all) after f.After.
	DeadLetters(ctx context.Context, f DeadLetterFilter) ([]*DeadLetter, error)
	// AckDeadLetter removes dead letter id (it is audited by the caller).
	AckDeadLetter(ctx context.Context, id string) (*DeadLetter, error)
	// Redrive runs an ended execution again; durable on return.
	Redrive(ctx context.Context, id string, r RedriveRequest) (*RedriveResult, *sbruntime.Execution, error)
}
