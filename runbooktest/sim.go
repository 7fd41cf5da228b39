package runbooktest

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	sbruntime "github.com/starbook/starbook/runtime"
)

// maxRuns bounds how often one offline execution is replayed (once per wait
// it parks on), so a loop around sleep() cannot run forever.
const maxRuns = 10_000

// Result is how an offline execution went.
type Result struct {
	Execution *sbruntime.Execution // final status, result or error
	Steps     []*Step              // recorded steps in position order
	Waits     []*sbruntime.Wait    // pending, when the execution still waits
	Logs      []*sbruntime.LogLine
	Calls     []*Call // the effects its steps made
	Runs      int     // times the engine ran it: the first run and a replay per wait
}

// Step is a recorded event with the arguments its call was made with.
type Step struct {
	*sbruntime.Event
	Args    json.RawMessage // a JSON list; nil for undos and waits resolved offline
	Kwargs  json.RawMessage // a JSON object
	Summary string          // the arguments on one line
	Effects []*Call         // what it did to the (mocked) world
}

// Execute runs the runbook b from the top with input, offline: the
// real replay engine over an in-memory history, effects answered by m, time
// on m.Clock. Each wait the execution parks on is resolved as the mocks say
// (a decision, a signal, its deadline on the virtual clock) and the
// execution is replayed, as a node would, until it ends or nothing can
// resolve its waits (it then ends "waiting", Error saying why). Execute
// fails only when ctx is done or the engine aborts.
func (m *Mocks) Execute(ctx context.Context, b *sbruntime.Bundle, input json.RawMessage, limits sbruntime.Limits) (*Result, error) {
	tr := &trace{steps: map[string]*traced{}}
	pre := m.predeclared(tr)
	p, err := sbruntime.Compile(b, pre)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	m.runs++
	id := fmt.Sprintf("offline-%d", m.runs)
	firstCall := len(m.calls)
	m.mu.Unlock()
	now := m.Clock.Now()
	exec := &sbruntime.Execution{ID: id, Runbook: b.Name, Version: b.Version,
		Status: sbruntime.StatusRunning, Trigger: sbruntime.Trigger{Type: "manual", Source: "starbook"},
		Input: input, CreatedAt: now, UpdatedAt: now}
	j := newJournal(m.Clock.Now, m.takeSignal)
	eng := &sbruntime.Engine{Builtins: pre, Limits: limits, Now: m.Clock.Now, Sleep: m.Clock.Sleep,
		Logger: slog.New(slog.DiscardHandler)}
	res := &Result{Execution: exec}
	for {
		if res.Runs >= maxRuns {
			return nil, fmt.Errorf("execution parked %d times: a loop around a wait?", maxRuns)
		}
		res.Runs++
		history, waits := j.snapshot()
		out := eng.Execute(ctx, p, &sbruntime.Run{Execution: exec, History: history, Waits: waits, Journal: j})
		if out.Status == "" {
			return nil, fmt.Errorf("run aborted: %w", out.Err)
		}
		exec.Status, exec.Result, exec.Error = out.Status, out.Result, out.Error
		if out.Status != sbruntime.StatusWaiting {
			break
		}
		progressed, why := m.resolve(j)
		if !progressed {
			exec.Error = why
			break
		}
	}
	end := m.Clock.Now()
	exec.UpdatedAt = end
	if exec.Status.Terminal() {
		exec.EndedAt = &end
	}
	m.mu.Lock()
	res.Calls = slices.Clone(m.calls[firstCall:])
	m.mu.Unlock()
	res.Waits = j.pending()
	res.Logs = j.logs
	for _, ev := range j.events() {
		s := &Step{Event: ev}
		if t := tr.get(ev.Position); t != nil {
			s.Args, s.Kwargs, s.Summary = t.args, t.kwargs, t.summary
		}
		for _, c := range res.Calls {
			if c.Position == ev.Position {
				s.Effects = append(s.Effects, c)
			}
		}
		res.Steps = append(res.Steps, s)
	}
	undoArgs(res.Steps)
	m.addSteps(res.Steps)
	return res, nil
}

// undoArgs gives each undo the arguments of the compensate that registered it.
func undoArgs(steps []*Step) {
	for _, u := range steps {
		if u.Kind != sbruntime.KindUndo {
			continue
		}
		for _, c := range steps {
			if c.Kind == sbruntime.KindCompensate && c.Name == u.Name && c.Args != nil {
				u.Args, u.Kwargs, u.Summary = c.Args, c.Kwargs, c.Summary
				break
			}
		}
	}
}

// resolve decides the pending waits it can, as the mocks say, and reports
// whether it decided any; if not, why the execution cannot go on.
// Decisions and sent signals come first; otherwise the earliest deadline
// passes on the virtual clock.
func (m *Mocks) resolve(j *journal) (bool, string) {
	pending := j.pending()
	if len(pending) == 0 {
		return false, "waiting with no pending wait"
	}
	var stuck []string
	type timed struct {
		w  *sbruntime.Wait
		at time.Time
		ev func(at time.Time) *sbruntime.Event
	}
	var timers []timed
	progressed := false
	for _, w := range pending {
		switch w.Kind {
		case sbruntime.KindApproval:
			req, err := sbruntime.ParseApprovalRequest(w)
			if err != nil {
				stuck = append(stuck, fmt.Sprintf("approval at %s: %v", w.Where, err))
				continue
			}
			d := m.takeDecision(w, req)
			if d == nil && m.DryRun {
				d = &decision{kind: sbruntime.DecisionApprove, by: []string{"dry-run"}}
			}
			if d == nil {
				stuck = append(stuck, fmt.Sprintf("wait_for_approval(%q) at %s has no decision: "+
					"call mock.approve(), mock.reject() or mock.timeout() before run()", req.Message, w.Where))
				continue
			}
			if d.kind == sbruntime.DecisionTimeout {
				if w.Deadline == nil {
					stuck = append(stuck, fmt.Sprintf("mock.timeout() for wait_for_approval(%q) at %s, which has no timeout", req.Message, w.Where))
					continue
				}
				at := *w.Deadline
				if req.Escalation != nil {
					at = at.Add(req.Escalation.Timeout)
				}
				timers = append(timers, timed{w, at, func(at time.Time) *sbruntime.Event { return timeoutEvent(w, at) }})
				continue
			}
			ev, err := approvalEvent(w, req, d, m.Clock.Now())
			if err != nil {
				stuck = append(stuck, err.Error())
				continue
			}
			j.resolve(ev)
			progressed = true
		case sbruntime.KindSignal:
			if data, ok := m.takeSignal(w.Name); ok {
				at := m.Clock.Now()
				j.resolve(&sbruntime.Event{Position: w.Position, Kind: w.Kind, Name: w.Name, ArgsHash: w.ArgsHash,
					Result: data, StartedAt: w.Since, EndedAt: at, Where: w.Where})
				progressed = true
				continue
			}
			at := m.Clock.Now()
			if w.Deadline != nil {
				at = *w.Deadline
			} else if !m.DryRun {
				stuck = append(stuck, fmt.Sprintf("wait_for_signal(%q) at %s has no timeout and no signal: "+
					"call mock.signal(%q, data) before run()", w.Name, w.Where, w.Name))
				continue
			}
			timers = append(timers, timed{w, at, func(at time.Time) *sbruntime.Event {
				ev := timeoutEvent(w, at)
				if w.Deadline == nil {
					// A wait without a deadline stores no timeout outcome;
					// the dry run times it out as if it had one.
					ev.Result = sbruntime.SignalTimeout(w.Name)
				}
				return ev
			}})
		default: // sleep
			at := m.Clock.Now()
			if w.Deadline != nil {
				at = *w.Deadline
			}
			timers = append(timers, timed{w, at, func(at time.Time) *sbruntime.Event { return timeoutEvent(w, at) }})
		}
	}
	if progressed {
		return true, ""
	}
	if len(timers) > 0 {
		first := slices.MinFunc(timers, func(a, b timed) int { return a.at.Compare(b.at) })
		m.Clock.AdvanceTo(first.at)
		for _, t := range timers {
			if !t.at.After(first.at) {
				j.resolve(t.ev(first.at))
			}
		}
		return true, ""
	}
	return false, "waiting: " + strings.Join(stuck, "; ")
}

// timeoutEvent is what a wait records when its deadline passes.
func timeoutEvent(w *sbruntime.Wait, at time.Time) *sbruntime.Event {
	ev := &sbruntime.Event{Position: w.Position, Kind: w.Kind, Name: w.Name, ArgsHash: w.ArgsHash,
		Result: w.OnTimeout, Error: w.TimeoutError, StartedAt: w.Since, EndedAt: at, Where: w.Where}
	if ev.Result == nil && ev.Error == "" {
		ev.Result = json.RawMessage("null")
	}
	return ev
}

// approvalEvent records decision d on the approval w, as the approval rules
// of a node would: approvers must be allowed, and an approval needs
// required distinct people.
func approvalEvent(w *sbruntime.Wait, req *sbruntime.ApprovalRequest, d *decision, at time.Time) (*sbruntime.Event, error) {
	by := d.by
	if len(by) == 0 {
		n := 1
		if d.kind == sbruntime.DecisionApprove {
			n = req.Required
		}
		for i := 1; i <= n; i++ {
			by = append(by, fmt.Sprintf("approver-%d", i))
		}
	}
	if named := plainApprovers(req.Approvers); named != nil {
		for _, u := range by {
			if !slices.Contains(named, u) && !strings.HasPrefix(u, "approver-") && u != "dry-run" {
				return nil, fmt.Errorf("mock.%s(by=%q) for wait_for_approval(%q) at %s: %s is not among the approvers %v",
					d.kind, u, req.Message, w.Where, u, req.Approvers)
			}
		}
	}
	if d.kind == sbruntime.DecisionApprove && len(by) < req.Required {
		return nil, fmt.Errorf("wait_for_approval(%q) at %s needs %d approvals; mock.approve gave %d (pass by=[...])",
			req.Message, w.Where, req.Required, len(by))
	}
	r := &sbruntime.ApprovalResult{Approved: d.kind == sbruntime.DecisionApprove, Decision: d.kind, By: by,
		At: at.UTC(), Comment: d.comment, Via: "test"}
	for _, u := range by {
		r.Decisions = append(r.Decisions, sbruntime.ApprovalDecision{User: u, Decision: d.kind, Comment: d.comment, Via: "test", At: at.UTC()})
	}
	return &sbruntime.Event{Position: w.Position, Kind: w.Kind, Name: w.Name, ArgsHash: w.ArgsHash,
		Result: r.JSON(), StartedAt: w.Since, EndedAt: at, Where: w.Where}, nil
}

// plainApprovers returns the approvers when they name people only, nil when
// the list is empty (anyone) or holds a group nobody can expand offline.
func plainApprovers(list []string) []string {
	if len(list) == 0 {
		return nil
	}
	for _, a := range list {
		if sbruntime.IsSlackGroup(a) {
			return nil
		}
	}
	return list
}
