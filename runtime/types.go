package runtime

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Status is the lifecycle state of an execution.
type Status string

// Execution statuses. Terminal statuses never change again.
const (
	StatusPending      Status = "pending"      // runnable, not claimed by a node
	StatusRunning      Status = "running"      // claimed and replaying or running a step
	StatusWaiting      Status = "waiting"      // parked on a timer, signal or approval
	StatusCompleted    Status = "completed"    // main returned
	StatusFailed       Status = "failed"       // main raised, after any compensation
	StatusCompensating Status = "compensating" // running registered undos after a failure
	StatusCancelled    Status = "cancelled"    // stopped by a user
	StatusStuck        Status = "stuck"        // replay diverged from history; needs a human
)

// Statuses lists every status, in lifecycle order.
var Statuses = []Status{StatusPending, StatusRunning, StatusWaiting, StatusCompleted,
	StatusFailed, StatusCompensating, StatusCancelled, StatusStuck}

// Terminal reports whether s is final.
func (s Status) Terminal() bool {
	switch s {
	case StatusCompleted, StatusFailed, StatusCancelled, StatusStuck:
		return true
	}
	return false
}

// ParseStatus returns the status named s or an error listing the valid ones.
func ParseStatus(s string) (Status, error) {
	for _, st := range Statuses {
		if string(st) == s {
			return st, nil
		}
	}
	names := make([]string, len(Statuses))
	for i, st := range Statuses {
		names[i] = string(st)
	}
	return "", fmt.Errorf("unknown status %q (want one of %s)", s, strings.Join(names, ", "))
}

// Trigger records what started an execution.
type Trigger struct {
	Type   string            `json:"type"`             // manual, alert, cron, webhook, api
	Source string            `json:"source,omitempty"` // user, alert fingerprint, schedule, hook name
	Attrs  map[string]string `json:"attrs,omitempty"`
}

// Execution is one run of one runbook version.
type Execution struct {
	ID        string          `json:"id"`
	Runbook   string          `json:"runbook"`
	Version   string          `json:"version"`
	Status    Status          `json:"status"`
	Trigger   Trigger         `json:"trigger"`
	Input     json.RawMessage `json:"input,omitempty"`
	Result    json.RawMessage `json:"result,omitempty"`
	Error     string          `json:"error,omitempty"`
	Node      string          `json:"node,omitempty"`
	CreatedAt time.Time       `json:"created_at"`
	UpdatedAt time.Time       `json:"updated_at"`
	EndedAt   *time.Time      `json:"ended_at,omitempty"`

	// TraceParent is the W3C traceparent of the request that started the
	// execution, if it carried one: the traces of its runs continue it.
	TraceParent string `json:"traceparent,omitempty"`

	// Redrives are the attempt boundaries: one per redrive --from failed,
	// oldest first (see Attempt). The execution runs attempt
	// len(Redrives)+1.
	Redrives []Redrive `json:"redrives,omitempty"`
	// RedriveOf is the execution this one redrives from the start.
	RedriveOf string `json:"redrive_of,omitempty"`
	// RedrivenAs are the executions that redrove this one from the start.
	RedrivenAs []string `json:"redriven_as,omitempty"`
	// Migrations are the re-pins of this execution onto newer versions of
	// its runbook (apply --migrate), oldest first: why it runs a version it
	// did not start with.
	Migrations []Migration `json:"migrations,omitempty"`
}

// Migration is one re-pin of an in-flight execution from one version to
// another, made after its history was proved to replay on the new one. It is
// appended to the record, never rewritten.
type Migration struct {
	From string    `json:"from"`
	To   string    `json:"to"`
	At   time.Time `json:"at"`
	By   string    `json:"by,omitempty"`
}

// Redrive is an attempt boundary: how the previous attempt ended and who
// started the next one. It is appended to the record, never rewritten.
type Redrive struct {
	Attempt int       `json:"attempt"` // the attempt it starts (2 for the first redrive)
	At      time.Time `json:"at"`
	By      string    `json:"by,omitempty"`
	// Status and Error are how the previous attempt ended.
	Status Status `json:"status"`
	Error  string `json:"error,omitempty"`
	// Version is the version the previous attempt ran, when the redrive
	// re-pinned the execution to another one.
	Version string `json:"version,omitempty"`
}

// Attempt returns the attempt the execution runs: 1, plus one per redrive
// from the failed step.
func (e *Execution) Attempt() int { return len(e.Redrives) + 1 }

// Event kinds recorded in history.
const (
	KindCall       = "call"
	KindFanOut     = "fan_out"
	KindCompensate = "compensate"
	KindUndo       = "undo"
	KindSleep      = "sleep"
	KindNow        = "now"
	KindUUID       = "uuid"
	KindSignal     = "signal"
	KindApproval   = "approval"
)

// Event is one recorded step outcome at a position.
type Event struct {
	Position string          `json:"position"`
	Kind     string          `json:"kind"`
	Name     string          `json:"name,omitempty"`
	ArgsHash string          `json:"args_hash,omitempty"`
	Result   json.RawMessage `json:"result,omitempty"`
	Error    string          `json:"error,omitempty"`
	Attempts int             `json:"attempts,omitempty"`
	// HTTPCalls counts the HTTP requests the step sent, retries included.
	HTTPCalls int `json:"http_calls,omitempty"`
	// Items is a fan_out's item count.
	Items     int       `json:"items,omitempty"`
	StartedAt time.Time `json:"started_at"`
	EndedAt   time.Time `json:"ended_at"`
	// Where is the file:line of the call that made the event, for people.
	Where string `json:"where,omitempty"`
	// Attempt is the execution's attempt that recorded the event, when it
	// is not the first (see Effective).
	Attempt int `json:"attempt,omitempty"`
}

// Failed reports whether the event records an error.
func (e *Event) Failed() bool { return e.Error != "" }

// Wait is a pending wait registered at a position: a durable timer, a signal or
// an approval. It is removed when an event is written at its position.
type Wait struct {
	// Execution and Position are set on every wait a Journal is given or a
	// store returns. A store may leave them out of what it writes when its
	// key holds them (hence omitempty), and fills them back in on reading.
	Execution string          `json:"execution,omitempty"`
	Position  string          `json:"position,omitempty"`
	Kind      string          `json:"kind"`
	Name      string          `json:"name,omitempty"`
	ArgsHash  string          `json:"args_hash,omitempty"`
	Since     time.Time       `json:"since"`
	Deadline  *time.Time      `json:"deadline,omitempty"`   // when the timer fires, if any
	OnTimeout json.RawMessage `json:"on_timeout,omitempty"` // result recorded when the deadline passes
	// TimeoutError, when set, is recorded as the wait's error at the deadline.
	TimeoutError string          `json:"timeout_error,omitempty"`
	Detail       json.RawMessage `json:"detail,omitempty"` // kind-specific request (approval text, ...)
	Where        string          `json:"where,omitempty"`  // file:line of the waiting call
	// Attempt is the execution's attempt that registered the wait, when it
	// is not the first: its event is recorded as that attempt's.
	Attempt int `json:"attempt,omitempty"`
}

// Position is a hierarchical step position: "4", "4/0/2".
type Position string

// Child returns the prefix for the k-th call inside item i of the fan_out at p.
func (p Position) Child(i int) string { return string(p) + "/" + strconv.Itoa(i) + "/" }

// ComparePositions orders positions by their numeric segments ("2" < "10" and
// "4" < "4/0/1" < "5").
func ComparePositions(a, b string) int {
	as, bs := strings.Split(a, "/"), strings.Split(b, "/")
	for i := 0; i < len(as) && i < len(bs); i++ {
		x, _ := strconv.Atoi(as[i])
		y, _ := strconv.Atoi(bs[i])
		if x != y {
			if x < y {
				return -1
			}
			return 1
		}
	}
	return len(as) - len(bs)
}

// IdempotencyKey is the key a step's effects carry: stable across retries and
// replays of the same step.
func IdempotencyKey(execution, position string) string { return execution + "/" + position }

// SignalResult is what wait_for_signal returns when the signal arrives: its
// name, data, sender and time, and timed_out false.
func SignalResult(name string, data json.RawMessage, by string, at time.Time) json.RawMessage {
	if len(data) == 0 {
		data = json.RawMessage("null")
	}
	out, _ := json.Marshal(struct {
		Name     string          `json:"name"`
		Data     json.RawMessage `json:"data"`
		By       string          `json:"by,omitempty"`
		At       time.Time       `json:"at"`
		TimedOut bool            `json:"timed_out"`
	}{name, data, by, at.UTC(), false})
	return out
}

// SignalTimeout is what wait_for_signal returns when its timeout passes first.
func SignalTimeout(name string) json.RawMessage {
	out, _ := json.Marshal(map[string]any{"name": name, "data": nil, "timed_out": true})
	return out
}
