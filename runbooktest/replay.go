package runbooktest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"

	sbruntime "github.com/starbook/starbook/runtime"
)

// ReplayReport says whether a script replays an execution's history.
type ReplayReport struct {
	Execution  *sbruntime.Execution
	Bundle     *sbruntime.Bundle // the script replayed
	Compatible bool
	// Outcome is how the replay ended: Divergence for a script that calls
	// something else at a recorded position.
	Outcome sbruntime.Outcome
	// Recorded is the history's event (or pending wait) at the diverging
	// position, if any.
	Recorded *sbruntime.Event
	// Beyond is the first call the script makes past the recorded history
	// (its position, kind, name and file:line), if it gets there.
	Beyond *sbruntime.Event
	// Unreached are recorded positions the script ended without reaching.
	Unreached []*sbruntime.Event
	Events    int // events in the history
	Reason    string
}

// Replay runs the script b against an execution's recorded history and
// pending waits, offline: every durable call must find its recorded event
// (whose result it returns) or its pending wait; no step function, effect or
// timer runs, and nothing is recorded. The report is compatible when the
// script reaches the end of the history (wanting new steps, or parked on the
// pending wait, or ending as the execution did) without diverging.
func Replay(ctx context.Context, b *sbruntime.Bundle, e *sbruntime.Execution, history []*sbruntime.Event,
	waits []*sbruntime.Wait, limits sbruntime.Limits) (*ReplayReport, error) {
	m := NewMocks()
	m.replay = true
	tr := &trace{steps: map[string]*traced{}}
	pre := m.predeclared(tr)
	prog, err := sbruntime.Compile(b, pre)
	if err != nil {
		return nil, err
	}
	j := newJournal(m.Clock.Now, nil)
	j.frozen = true
	// A redriven execution replays its attempt's history: earlier attempts'
	// failed events are void (runtime.Effective).
	history = sbruntime.EffectiveList(history, e.Attempt())
	h := make(map[string]*sbruntime.Event, len(history))
	for _, ev := range history {
		c := *ev
		h[ev.Position] = &c
	}
	ws := make(map[string]*sbruntime.Wait, len(waits))
	for _, w := range waits {
		c := *w
		ws[w.Position] = &c
	}
	exec := *e
	eng := &sbruntime.Engine{Builtins: pre, Limits: limits, Now: m.Clock.Now, Sleep: m.Clock.Sleep,
		Logger: slog.New(slog.DiscardHandler)}
	out := eng.Execute(ctx, prog, &sbruntime.Run{Execution: &exec, History: h, Waits: ws, Journal: j})
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r := &ReplayReport{Execution: e, Bundle: b, Outcome: out, Events: len(history), Beyond: j.beyond}
	switch {
	case out.Divergence != nil:
		r.Recorded = h[out.Divergence.Position]
		if w := ws[out.Divergence.Position]; r.Recorded == nil && w != nil {
			r.Recorded = &sbruntime.Event{Position: w.Position, Kind: w.Kind, Name: w.Name, ArgsHash: w.ArgsHash, Where: w.Where}
		}
		r.Reason = fmt.Sprintf("position %s diverges", out.Divergence.Position)
	case errors.Is(out.Err, errBeyondHistory):
		r.Compatible = true
		r.Reason = fmt.Sprintf("the script goes on past the recorded history: %s at position %s (%s)",
			describeEvent(j.beyond), j.beyond.Position, j.beyond.Where)
	case out.Status == "":
		return nil, fmt.Errorf("replay aborted: %w", out.Err)
	case out.Status == sbruntime.StatusWaiting:
		r.Compatible = true
		var pending []string
		for _, w := range waits {
			pending = append(pending, w.Position)
		}
		r.Reason = "the script reaches the pending wait at position " + strings.Join(pending, ", ")
	default:
		r.Unreached = unreached(history, tr.visited(), out.Status == sbruntime.StatusFailed)
		for _, w := range waits { // the script ended where the execution waits
			r.Unreached = append(r.Unreached, &sbruntime.Event{Position: w.Position, Kind: w.Kind, Name: w.Name, Where: w.Where})
		}
		switch {
		case len(r.Unreached) > 0:
			first := r.Unreached[0]
			r.Reason = fmt.Sprintf("the script ends (%s) before %d recorded step(s), from %s at position %s (%s)",
				out.Status, len(r.Unreached), describeEvent(first), first.Position, first.Where)
		case out.Status == sbruntime.StatusFailed && e.Status != sbruntime.StatusFailed && e.Status != sbruntime.StatusCompensating:
			r.Reason = "the script fails on the recorded history"
		default:
			r.Compatible = true
			r.Reason = fmt.Sprintf("the script replays the whole history and ends %s", out.Status)
		}
	}
	return r, nil
}

func describeEvent(ev *sbruntime.Event) string {
	if ev.Name == "" {
		return ev.Kind
	}
	return ev.Kind + " " + ev.Name
}

// unreached returns the recorded events a replay did not reach: neither
// visited nor inside a recorded fan_out that was (whose items replay from
// its result), nor an undo when the replay compensated.
func unreached(history []*sbruntime.Event, visited map[string]bool, compensated bool) []*sbruntime.Event {
	recorded := map[string]bool{}
	for _, ev := range history {
		recorded[ev.Position] = true
	}
	var out []*sbruntime.Event
	for _, ev := range history {
		if visited[ev.Position] || (compensated && ev.Kind == sbruntime.KindUndo) {
			continue
		}
		inside := false
		segs := strings.Split(ev.Position, "/")
		for n := len(segs) - 2; n > 0; n -= 2 { // n/i/k: the fan_out is n
			p := strings.Join(segs[:n], "/")
			if visited[p] && recorded[p] {
				inside = true
				break
			}
		}
		if !inside {
			out = append(out, ev)
		}
	}
	slices.SortFunc(out, func(a, b *sbruntime.Event) int { return sbruntime.ComparePositions(a.Position, b.Position) })
	return out
}

// Write prints the report: "compatible: ..." or "incompatible: ..." with
// the diverging position, what history and script each have, and where.
func (r *ReplayReport) Write(w io.Writer) {
	e := r.Execution
	if r.Compatible {
		fmt.Fprintf(w, "compatible: execution %s (%s@%s, %s, %d events) replays on %s@%s\n  %s\n",
			e.ID, e.Runbook, e.Version, e.Status, r.Events, r.Bundle.Name, r.Bundle.Version, r.Reason)
		return
	}
	fmt.Fprintf(w, "incompatible: execution %s (%s@%s, %s, %d events) does not replay on %s@%s: %s\n",
		e.ID, e.Runbook, e.Version, e.Status, r.Events, r.Bundle.Name, r.Bundle.Version, r.Reason)
	if d := r.Outcome.Divergence; d != nil {
		rec := "?"
		if r.Recorded != nil && r.Recorded.Where != "" {
			rec = r.Recorded.Where
		}
		fmt.Fprintf(w, "  expected: %s, recorded at %s (version %s)\n", d.Expected, rec, e.Version)
		fmt.Fprintf(w, "  actual:   %s, called at %s\n", d.Actual, d.Where)
		if d.Backtrace != "" {
			fmt.Fprintf(w, "%s\n", indentBy(d.Backtrace, "  "))
		}
		return
	}
	for _, ev := range r.Unreached {
		fmt.Fprintf(w, "  not reached: position %s %s (%s)\n", ev.Position, describeEvent(ev), ev.Where)
	}
	if r.Outcome.Error != "" {
		fmt.Fprintf(w, "%s\n", indentBy(r.Outcome.Error, "  "))
	}
}

func indentBy(s, pad string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return pad + strings.Join(lines, "\n"+pad)
}

// Mismatch names the first place an incompatible replay parts from the
// history: the position, the file:line where the script parts (or, when the
// script ends early, where the history's step was recorded), what the
// history holds there and what the script does instead. It is empty for a
// compatible replay.
type Mismatch struct {
	Position, Where, Expected, Actual string
}

// Mismatch returns where an incompatible replay first parts from the
// history; the zero Mismatch for a compatible one.
func (r *ReplayReport) Mismatch() Mismatch {
	switch {
	case r.Compatible:
		return Mismatch{}
	case r.Outcome.Divergence != nil:
		d := r.Outcome.Divergence
		return Mismatch{Position: d.Position, Where: d.Where, Expected: d.Expected, Actual: d.Actual}
	case len(r.Unreached) > 0:
		first := r.Unreached[0]
		return Mismatch{Position: first.Position, Where: first.Where, Expected: describeEvent(first),
			Actual: "the script ends " + string(r.Outcome.Status)}
	}
	return Mismatch{Expected: "the recorded history", Actual: firstLine(r.Outcome.Error)}
}
