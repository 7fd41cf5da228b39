package triggers

import (
	"errors"
	"fmt"
	"strings"

	"github.com/starbook/starbook/downstream"
)

// Budget is what a runbook may spend, declared with budget(...) at its top
// level: each limit is a positive count, 0 when not declared. Day limits
// count per UTC day, cluster-wide; see README's "Budgets and usage".
type Budget struct {
	RunsPerDay        int64 `json:"runs_per_day,omitempty"`
	StepsPerRun       int64 `json:"steps_per_run,omitempty"`
	StepsPerDay       int64 `json:"steps_per_day,omitempty"`
	HTTPCallsPerDay   int64 `json:"http_calls_per_day,omitempty"`
	FanOutItemsPerDay int64 `json:"fan_out_items_per_day,omitempty"`
	// Where is the file:line of the budget() call.
	Where string `json:"where,omitempty"`
}

// Budget names, as budget() takes them and as refusals name them.
const (
	BudgetRunsPerDay        = "runs_per_day"
	BudgetStepsPerRun       = "steps_per_run"
	BudgetStepsPerDay       = "steps_per_day"
	BudgetHTTPCallsPerDay   = "http_calls_per_day"
	BudgetFanOutItemsPerDay = "fan_out_items_per_day"
)

// BudgetNames lists the budgets in the order budget() takes them.
var BudgetNames = []string{BudgetRunsPerDay, BudgetStepsPerRun, BudgetStepsPerDay, BudgetHTTPCallsPerDay, BudgetFanOutItemsPerDay}

// DayBudgets lists the budgets counted per UTC day, cluster-wide.
var DayBudgets = []string{BudgetRunsPerDay, BudgetStepsPerDay, BudgetHTTPCallsPerDay, BudgetFanOutItemsPerDay}

// Limit returns the limit named name (0: not declared).
func (b *Budget) Limit(name string) int64 {
	if b == nil {
		return 0
	}
	switch name {
	case BudgetRunsPerDay:
		return b.RunsPerDay
	case BudgetStepsPerRun:
		return b.StepsPerRun
	case BudgetStepsPerDay:
		return b.StepsPerDay
	case BudgetHTTPCallsPerDay:
		return b.HTTPCallsPerDay
	case BudgetFanOutItemsPerDay:
		return b.FanOutItemsPerDay
	}
	return 0
}

// NewBudget validates budget()'s arguments (name -> value, only those
// given): each a known budget and a positive integer, at least one.
func NewBudget(limits map[string]int64) (*Budget, error) {
	if len(limits) == 0 {
		return nil, fmt.Errorf("declares no limit: give at least one of %s", strings.Join(BudgetNames, ", "))
	}
	b := &Budget{}
	var errs []error
	for _, name := range BudgetNames {
		v, ok := limits[name]
		if !ok {
			continue
		}
		if v < 1 {
			errs = append(errs, fmt.Errorf("%s=%d: want a positive integer", name, v))
			continue
		}
		switch name {
		case BudgetRunsPerDay:
			b.RunsPerDay = v
		case BudgetStepsPerRun:
			b.StepsPerRun = v
		case BudgetStepsPerDay:
			b.StepsPerDay = v
		case BudgetHTTPCallsPerDay:
			b.HTTPCallsPerDay = v
		case BudgetFanOutItemsPerDay:
			b.FanOutItemsPerDay = v
		}
	}
	for name := range limits {
		if !isBudget(name) {
			errs = append(errs, fmt.Errorf("unknown budget %s (want %s)", name, strings.Join(BudgetNames, ", ")))
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return b, nil
}

func isBudget(name string) bool {
	for _, n := range BudgetNames {
		if n == name {
			return true
		}
	}
	return false
}

// SetBudget records the runbook's budget, declared at where: a runbook
// declares one.
func (s *Set) SetBudget(b *Budget, where string) error {
	if s.Budget != nil {
		return fmt.Errorf("a runbook declares one budget: already declared at %s", s.Budget.Where)
	}
	b.Where = where
	s.Budget = b
	return nil
}

// AddHTTPLimit records an http_limit() declared at where: one per host.
func (s *Set) AddHTTPLimit(l *downstream.Limit, where string) error {
	for _, prev := range s.HTTPLimits {
		if prev.Host == l.Host {
			return fmt.Errorf("a runbook declares one limit per host: %s already declared at %s", l.Host, prev.Where)
		}
	}
	l.Where = where
	s.HTTPLimits = append(s.HTTPLimits, l)
	return nil
}
