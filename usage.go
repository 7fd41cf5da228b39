package starbook

import (
	"context"

	sbruntime "github.com/starbook/starbook/runtime"
)

// DayUsage is what one runbook's executions did on one UTC day, counted from
// their histories (each event on the day it ended), and where its day
// budgets stood.
type DayUsage struct {
	Runbook string `json:"runbook"`
	Day     string `json:"day"` // 2006-01-02, UTC
	// Executions counts those that made a step or ended that day.
	Executions int64 `json:"executions"`
	sbruntime.Usage
	// Budgets are the runbook's day budgets as counted that day.
	Budgets []BudgetUse `json:"budgets,omitempty"`
}

// BudgetUse is where one day budget of a runbook stands: Used counts the
// units nodes have taken of it (spent, or held by a node for its next
// steps: at most a chunk and a half per node).
type BudgetUse struct {
	Runbook string `json:"runbook,omitempty"`
	Day     string `json:"day,omitempty"`
	Budget  string `json:"budget"` // runs_per_day, steps_per_day, http_calls_per_day, fan_out_items_per_day
	Used    int64  `json:"used"`
	Limit   int64  `json:"limit"`
}

// UsageService is the optional part of a Service that reports usage.
type UsageService interface {
	// Usage returns what runbook ("" for every runbook) did on each of the
	// last days UTC days, today included: newest day first, then by runbook.
	// Days without activity are left out.
	Usage(ctx context.Context, runbook string, days int) ([]*DayUsage, error)
}
