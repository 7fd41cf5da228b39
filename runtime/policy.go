package runtime

import (
	"context"
	"errors"
	"slices"
)

// Effect is what a step is about to do to the world, as a Policy sees it:
// one HTTP request or one Slack message.
type Effect struct {
	Kind    string // "http", "slack" or "ssh"
	Method  string // HTTP method, upper case
	Host    string // HTTP or SSH host (no port)
	User    string // SSH user
	Runbook string // the runbook a child start names
	URL     string // HTTP URL, redacted as it is shown (no user info)
	Channel string // Slack channel
}

// Policy decides whether a step may perform an effect: the host's run-time
// policies. It is asked inside a new step's work, before each effect, and
// never during a replay (a replayed step's work does not run: its recorded
// result or error is returned), so a decision is never taken twice: a
// refusal is recorded as the step's error, an allowed effect as the step's
// outcome.
type Policy interface {
	// Decide is asked before an effect of the step at position pos of
	// execution e, with the execution's history so far in position order.
	// A *PolicyError refuses the effect: the step fails with it and is not
	// retried. It must not block for long: the step waits for it.
	Decide(ctx context.Context, e *Execution, pos string, eff Effect, history []*Event) error
}

// PolicyError refuses an effect, or a runbook at apply, on behalf of a
// policy. Its message is what is recorded and shown:
// "policy: prod_delete.star:12: DELETE to a prod host needs an approval".
type PolicyError struct {
	Policy string // file:line of the policy's deny() (or of its failure)
	Why    string
}

// PolicyErrorPrefix starts the error of every effect a policy refused.
const PolicyErrorPrefix = "policy: "

func (e *PolicyError) Error() string { return PolicyErrorPrefix + e.Policy + ": " + e.Why }

// IsPolicyError reports whether err is, or wraps, a policy's refusal: a
// step that fails with one is not retried.
func IsPolicyError(err error) bool {
	var pe *PolicyError
	return errors.As(err, &pe)
}

// Effect asks the run's policy whether the step may perform eff; nil when
// it may (or no policy is set). Effect built-ins call it before they touch
// the world, after their arguments are checked.
func (sc *StepContext) Effect(eff Effect) error {
	rs := sc.run
	if rs == nil || rs.policy == nil {
		return nil
	}
	return rs.policy.Decide(sc.Ctx, rs.exec, sc.Position, eff, rs.historySoFar())
}

// remember keeps ev, a step's event recorded (or held) by this run, for
// historySoFar; only a run with a policy keeps them.
func (rs *run) remember(ev *Event) {
	if rs.policy == nil {
		return
	}
	rs.doneMu.Lock()
	rs.done = append(rs.done, ev)
	rs.doneMu.Unlock()
}

// historySoFar is the history loaded at claim time and the events this run
// recorded since, in position order. The order is kept across calls (the
// loaded history sorted once, each new event inserted where it goes), so
// a check costs a copy of the slice, not a sort of the whole history.
func (rs *run) historySoFar() []*Event {
	rs.doneMu.Lock()
	defer rs.doneMu.Unlock()
	if rs.sorted == nil {
		rs.sorted = make([]*Event, 0, len(rs.history)+len(rs.done))
		for _, ev := range rs.history {
			rs.sorted = append(rs.sorted, ev)
		}
		slices.SortFunc(rs.sorted, func(a, b *Event) int { return ComparePositions(a.Position, b.Position) })
	}
	for ; rs.sortedDone < len(rs.done); rs.sortedDone++ {
		ev := rs.done[rs.sortedDone]
		i := len(rs.sorted)
		if i > 0 && ComparePositions(rs.sorted[i-1].Position, ev.Position) > 0 { // out of order (fan_out items)
			i, _ = slices.BinarySearchFunc(rs.sorted, ev, func(a, b *Event) int { return ComparePositions(a.Position, b.Position) })
		}
		rs.sorted = slices.Insert(rs.sorted, i, ev)
	}
	return slices.Clone(rs.sorted)
}
