package starbook

import (
	"context"
	"time"
)

// SLOService is the optional part of a Service that reports how runbooks
// meet the objectives they declare with slo().
type SLOService interface {
	// SLOs computes the status of the objective of runbook's current version,
	// or of every runbook that declares one when runbook is "". A runbook
	// that is unknown or declares no slo() wraps sbruntime.ErrNotFound.
	SLOs(ctx context.Context, runbook string) (*SLOReport, error)
}

// SLOReport is what GET /api/v1/slo answers.
type SLOReport struct {
	At   time.Time    `json:"at"` // the time the report was computed at: windows end here
	SLOs []*SLOStatus `json:"slos"`
}

// SLOStatus is how one runbook meets its objective over its window, computed
// from its stored executions. Only ended executions count: completed ones
// are successes, failed and stuck ones failures; cancelled ones are left out
// (someone chose to stop them, or a trigger policy dropped them).
type SLOStatus struct {
	Runbook   string       `json:"runbook"`
	Version   string       `json:"version"`
	Objective SLOObjective `json:"objective"`
	From      time.Time    `json:"from"` // the window: From to the report's At
	Runs      int          `json:"runs"` // successes + failures
	Successes int          `json:"successes"`
	Failures  int          `json:"failures"`
	Cancelled int          `json:"cancelled"` // ended in the window, left out of every figure
	// SuccessRate is Successes / Runs; null without runs.
	SuccessRate *float64        `json:"success_rate"`
	ErrorBudget ErrorBudget     `json:"error_budget"`
	Latency     []LatencyStatus `json:"latency"`
	BurnRates   []BurnRate      `json:"burn_rates"`
}

// SLOObjective is an slo() declaration as written: {"success": 0.99,
// "latency": {"p95": "10m"}, "window": "28d"}.
type SLOObjective struct {
	Success float64           `json:"success"`
	Latency map[string]string `json:"latency,omitempty"`
	Window  string            `json:"window"`
	Where   string            `json:"where,omitempty"` // file:line:col of the slo() call
}

// ErrorBudget is the share of the window's failures the objective allows
// that is left: Remaining = 1 - Failures / Allowed, where Allowed = (1 -
// success target) * runs. It is 1 with no runs and negative once overspent.
type ErrorBudget struct {
	Allowed   float64 `json:"allowed_failures"`
	Failures  int     `json:"failures"`
	Remaining float64 `json:"remaining"`
}

// LatencyStatus is one latency objective: the percentile of the durations
// (ended_at - created_at) of the window's runs, nearest-rank, against its
// maximum.
type LatencyStatus struct {
	Percentile       string   `json:"percentile"` // "p95"
	Objective        string   `json:"objective"`  // "10m"
	ObjectiveSeconds float64  `json:"objective_seconds"`
	Seconds          *float64 `json:"seconds"` // observed; null without runs
	Met              bool     `json:"met"`     // true without runs
}

// BurnRate is how fast the error budget burns over a recent window: the
// failure ratio of the runs that ended in it divided by the ratio the
// objective allows (1 - success). 1 spends the budget exactly over the SLO
// window; 0 without runs.
type BurnRate struct {
	Window   string  `json:"window"` // "5m", "1h", "6h", "3d"
	Runs     int     `json:"runs"`
	Failures int     `json:"failures"`
	Rate     float64 `json:"rate"`
}
