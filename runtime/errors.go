package runtime

import (
	"errors"
	"fmt"
)

var (
	// ErrSuspended ends a run that reached a pending wait; the execution parks.
	ErrSuspended = errors.New("execution suspended on a wait")
	// ErrNotOwner is returned by a Journal whose claim on the execution is gone:
	// the run must stop at once without writing anything else.
	ErrNotOwner = errors.New("not the owner of the execution")
	// ErrPositionTaken is returned by a Journal when the position already holds
	// an event: another writer recorded it first.
	ErrPositionTaken = errors.New("history position already recorded")
	// ErrStopping ends a run whose node is shutting down, before its next step
	// starts; the execution stays runnable for another node.
	ErrStopping = errors.New("node stopping")
	// ErrCancelled is the cancellation cause of a run stopped by a user.
	ErrCancelled = errors.New("execution cancelled")
)

// Nondeterminism error codes.
const (
	// CodeMismatch: the script called a different kind, name or arguments at a
	// recorded position.
	CodeMismatch = "SB1001"
	// CodeWaitMismatch: a pending wait at the position is not what the script
	// now waits for.
	CodeWaitMismatch = "SB1002"
)

// NondeterminismError reports a replay that diverged from the recorded history.
// It makes the execution stuck; nothing at or after Position is executed.
type NondeterminismError struct {
	Code     string
	Position string
	Expected string // what the history holds
	Actual   string // what the script called
	Where    string // file:line of the call
	// Backtrace is the Starlark call stack of the diverging call, one frame
	// per line ("Traceback (most recent call last):" first).
	Backtrace string
}

func (e *NondeterminismError) Error() string {
	return fmt.Sprintf("[%s] position %s: history has %s, script called %s (%s)",
		e.Code, e.Position, e.Expected, e.Actual, e.Where)
}

// Report is the error followed by its backtrace: what a stuck execution shows.
func (e *NondeterminismError) Report() string {
	if e.Backtrace == "" {
		return e.Error()
	}
	return e.Error() + "\n" + e.Backtrace
}

// StepError is a step's recorded failure, raised again on every replay.
type StepError struct {
	Position string
	Kind     string
	Name     string
	Msg      string
}

func (e *StepError) Error() string {
	if e.Name == "" {
		return fmt.Sprintf("%s at position %s failed: %s", e.Kind, e.Position, e.Msg)
	}
	return fmt.Sprintf("%s %s at position %s failed: %s", e.Kind, e.Name, e.Position, e.Msg)
}

// LimitError reports a configured limit an execution ran into.
type LimitError struct {
	Limit string // the configuration name, e.g. max_result_bytes
	Msg   string
}

func (e *LimitError) Error() string { return fmt.Sprintf("%s (limit %s)", e.Msg, e.Limit) }

// abort reports whether err must end the run without recording anything: the
// run lost its claim, was stopped, suspended or diverged.
func abort(err error) bool {
	var nd *NondeterminismError
	return errors.Is(err, ErrSuspended) || errors.Is(err, ErrNotOwner) ||
		errors.As(err, &nd) || errors.Is(err, ErrStore) || errors.Is(err, ErrStopping)
}

// ErrStore marks a storage failure during a run (etcd unavailable): the run
// stops without an outcome and is retried by whichever node claims it next.
var ErrStore = errors.New("store unavailable")

// ErrStorageFull marks a start refused because the store is nearly out of
// space (its etcd quota): nothing was stored; running executions go on.
var ErrStorageFull = errors.New("storage full")

type storeError struct{ err error }

func (e *storeError) Error() string   { return "checkpoint: " + e.err.Error() }
func (e *storeError) Unwrap() []error { return []error{ErrStore, e.err} }
func wrapStore(err error) error       { return &storeError{err} }

// ErrNotFound reports an unknown runbook, version or execution.
var ErrNotFound = errors.New("not found")

// InputError is bad input from a user (a malformed payload, a script that does
// not compile): it is refused before anything is stored.
type InputError struct {
	Msg string
	// Pointer is the JSON pointer of the value an input schema refused
	// ("/replicas"; "" for the whole input or another kind of refusal), so
	// that a form can show the refusal at its field.
	Pointer string
}

func (e *InputError) Error() string { return e.Msg }

// Inputf returns an *InputError with a formatted message.
func Inputf(format string, args ...any) error { return &InputError{Msg: fmt.Sprintf(format, args...)} }
