package runtime

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Gate decides whether a run may start a new step: the host's budgets. It is
// asked only before a step that history does not answer, never for a
// replayed one, so that a replay stays deterministic: a refusal is recorded
// as the step's error event, and a replay raises it again from history.
type Gate interface {
	// Admit is asked before a new step or wait starts. A *BudgetError
	// refuses it: the step's work does not run, the refusal is recorded at
	// its position and raised to the script as a StepError (not retried:
	// retries happen inside a step's work). Any other error is a storage
	// failure: the run stops without an outcome and is tried again.
	Admit(ctx context.Context, a Admission) error
	// Spent is told of a new step's event once its work ended, before the
	// event is recorded: what the step did (its HTTP calls) is counted then.
	Spent(ev *Event)
}

// Admission is a step about to start, as a Gate sees it.
type Admission struct {
	Position string
	Kind     string
	Items    int  // the items of a fan_out
	Events   int  // events the execution's history holds: its steps so far
	Force    bool // an undo: counted, never refused (compensation must run)
}

// BudgetError refuses a step, or a new run, because a budget its runbook
// declares is reached. Its message is what is recorded and shown:
// "budget: steps_per_day 10000 reached".
type BudgetError struct {
	Budget string // runs_per_day, steps_per_run, steps_per_day, http_calls_per_day, fan_out_items_per_day
	Limit  int64
}

func (e *BudgetError) Error() string { return fmt.Sprintf("budget: %s %d reached", e.Budget, e.Limit) }

// BudgetErrorPrefix starts the error of every step and execution a budget
// refused.
const BudgetErrorPrefix = "budget: "

// BudgetRefused reports whether ev records a step a budget refused: it did
// no work, and usage does not count it.
func BudgetRefused(ev *Event) bool {
	return ev.Attempts == 0 && strings.HasPrefix(ev.Error, BudgetErrorPrefix) && strings.HasSuffix(ev.Error, " reached")
}

// admit asks the run's gate whether the new step at pos may start. It
// returns the event recording a refusal (already recorded or held), or an
// error that stops the run; neither when the step may start.
func (rs *run) admit(f *frame, pos, where string, spec StepSpec, hash string, held bool) (*Event, error) {
	err := rs.gate.Admit(f.ctx, Admission{Position: pos, Kind: spec.Kind, Items: spec.Items,
		Events: int(rs.events.Load()), Force: spec.Kind == KindUndo})
	if err == nil {
		return nil, nil
	}
	if cause := context.Cause(f.ctx); cause != nil {
		return nil, cause
	}
	var be *BudgetError
	if !errors.As(err, &be) || spec.Kind == KindUndo {
		if abort(err) {
			return nil, err
		}
		return nil, wrapStore(fmt.Errorf("budget of step %s: %w", pos, err))
	}
	now := rs.engine.now()
	ev := &Event{Position: pos, Kind: spec.Kind, Name: spec.Name, ArgsHash: hash, Error: be.Error(),
		StartedAt: now, EndedAt: now, Where: where}
	if held {
		rs.hold(ev)
	} else if err := rs.record(ev); err != nil {
		return nil, err
	}
	rs.events.Add(1)
	rs.remember(ev)
	return ev, nil
}

// Usage is what executions did, counted from their histories: every event
// but those a budget refused is a step.
type Usage struct {
	Steps       int64 `json:"steps"`
	Retries     int64 `json:"retries"` // attempts beyond the first
	HTTPCalls   int64 `json:"http_calls"`
	FanOutItems int64 `json:"fan_out_items"`
	// WallTimeMS is from creation to end (UsageOf); per day, of the
	// executions that ended on a node that day.
	WallTimeMS int64 `json:"wall_time_ms"`
}

// Count adds one event to u.
func (u *Usage) Count(ev *Event) {
	if BudgetRefused(ev) {
		return
	}
	u.Steps++
	if ev.Attempts > 1 {
		u.Retries += int64(ev.Attempts - 1)
	}
	u.HTTPCalls += int64(ev.HTTPCalls)
	if ev.Kind == KindFanOut {
		u.FanOutItems += int64(ev.Items)
	}
}

// Add adds o to u.
func (u *Usage) Add(o Usage) {
	u.Steps += o.Steps
	u.Retries += o.Retries
	u.HTTPCalls += o.HTTPCalls
	u.FanOutItems += o.FanOutItems
	u.WallTimeMS += o.WallTimeMS
}

// UsageOf is what execution e did, from its history. Its wall time runs
// from its creation to its end or, while it has not ended, to the end of
// its latest recorded step: derived from what is stored, it reads the same
// every time.
func UsageOf(e *Execution, history []*Event) Usage {
	var u Usage
	var last time.Time
	for _, ev := range history {
		u.Count(ev)
		if ev.EndedAt.After(last) {
			last = ev.EndedAt
		}
	}
	end := last
	if e.EndedAt != nil {
		end = *e.EndedAt
	}
	if d := end.Sub(e.CreatedAt); d > 0 && !end.IsZero() {
		u.WallTimeMS = d.Milliseconds()
	}
	return u
}
