package node

import (
	"context"
	"log/slog"
	"time"

	"github.com/starbook/starbook/cluster"
	sbruntime "github.com/starbook/starbook/runtime"
	"github.com/starbook/starbook/triggers"
)

// budgetGate admits the new steps of one run of a runbook version that
// declares a budget: steps_per_run from the execution's history length,
// the day budgets from this node's chunks of the cluster-wide counters
// (cluster.Budgets). It is consulted only for new steps, never replayed
// ones (runtime.Gate).
type budgetGate struct {
	budgets *cluster.Budgets
	runbook string
	b       *triggers.Budget
	log     *slog.Logger
}

var _ sbruntime.Gate = (*budgetGate)(nil)

// gate returns the gate of a run of e, nil when its version declares no
// budget.
func (n *Node) gate(ctx context.Context, e *sbruntime.Execution, log *slog.Logger) (sbruntime.Gate, error) {
	b, err := n.store.Budgets().Declared(ctx, e.Runbook, e.Version)
	if err != nil || b == nil {
		return nil, err
	}
	return &budgetGate{budgets: n.store.Budgets(), runbook: e.Runbook, b: b, log: log}, nil
}

// Admit checks what spends nothing first (steps_per_run, whether
// http_calls_per_day is reached), then spends the step and a fan_out's
// items. An undo (a.Force) is counted and never refused.
func (g *budgetGate) Admit(ctx context.Context, a sbruntime.Admission) error {
	refuse := !a.Force
	if limit := g.b.StepsPerRun; refuse && limit > 0 && int64(a.Events) >= limit {
		return &sbruntime.BudgetError{Budget: triggers.BudgetStepsPerRun, Limit: limit}
	}
	if limit := g.b.HTTPCallsPerDay; refuse && limit > 0 {
		if err := g.budgets.Spend(ctx, g.runbook, triggers.BudgetHTTPCallsPerDay, limit, 0, true); err != nil {
			return err
		}
	}
	if limit := g.b.StepsPerDay; limit > 0 {
		if err := g.budgets.Spend(ctx, g.runbook, triggers.BudgetStepsPerDay, limit, 1, refuse); err != nil {
			return err
		}
	}
	if limit := g.b.FanOutItemsPerDay; limit > 0 && a.Kind == sbruntime.KindFanOut && a.Items > 0 {
		return g.budgets.Spend(ctx, g.runbook, triggers.BudgetFanOutItemsPerDay, limit, int64(a.Items), refuse)
	}
	return nil
}

// Spent counts the step's HTTP calls, made already: whatever the limit.
func (g *budgetGate) Spent(ev *sbruntime.Event) {
	limit := g.b.HTTPCallsPerDay
	if limit == 0 || ev.HTTPCalls == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := g.budgets.SpendAfter(ctx, g.runbook, triggers.BudgetHTTPCallsPerDay, limit, int64(ev.HTTPCalls)); err != nil {
		g.log.Warn("count http calls against the budget", "position", ev.Position, "calls", ev.HTTPCalls, "err", err)
	}
}
