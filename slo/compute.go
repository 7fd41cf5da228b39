package slo

import (
	"math"
	"slices"
	"time"

	"github.com/starbook/starbook"
	sbruntime "github.com/starbook/starbook/runtime"
	"github.com/starbook/starbook/triggers"
)

// BurnWindows are the windows burn rates are reported over.
var BurnWindows = []time.Duration{5 * time.Minute, time.Hour, 6 * time.Hour, 3 * 24 * time.Hour}

// Run is an ended execution as an objective counts it.
type Run struct {
	Status  sbruntime.Status
	Created time.Time
	Ended   time.Time
}

// Span is how far back the runs of o must be read to compute its status:
// its window, or the longest burn window if that is longer.
func Span(o *triggers.SLO) time.Duration { return max(o.Window, BurnWindows[len(BurnWindows)-1]) }

// outcome says how a run counts: +1 success, -1 failure, 0 left out.
func outcome(s sbruntime.Status) int {
	switch s {
	case sbruntime.StatusCompleted:
		return 1
	case sbruntime.StatusFailed, sbruntime.StatusStuck:
		return -1
	}
	return 0
}

// Compute returns the status at at of runbook's objective o over runs: a
// run counts in a window when it ended in it (after the window's start, at
// or before at). Runs that have not ended are ignored.
func Compute(runbook, version string, o *triggers.SLO, runs []Run, at time.Time) *starbook.SLOStatus {
	st := &starbook.SLOStatus{Runbook: runbook, Version: version, Objective: Declared(o), From: at.Add(-o.Window),
		Latency: []starbook.LatencyStatus{}, BurnRates: []starbook.BurnRate{}}
	in := func(r Run, d time.Duration) bool {
		return !r.Ended.IsZero() && r.Ended.After(at.Add(-d)) && !r.Ended.After(at)
	}
	var durations []time.Duration
	for _, r := range runs {
		if !in(r, o.Window) {
			continue
		}
		switch outcome(r.Status) {
		case 1:
			st.Successes++
		case -1:
			st.Failures++
		default:
			if r.Status == sbruntime.StatusCancelled {
				st.Cancelled++
			}
			continue
		}
		durations = append(durations, r.Ended.Sub(r.Created))
	}
	st.Runs = st.Successes + st.Failures
	allowed := 1 - o.Success
	st.ErrorBudget = starbook.ErrorBudget{Allowed: allowed * float64(st.Runs), Failures: st.Failures, Remaining: 1}
	if st.Runs > 0 {
		rate := float64(st.Successes) / float64(st.Runs)
		st.SuccessRate = &rate
		st.ErrorBudget.Remaining = 1 - float64(st.Failures)/st.ErrorBudget.Allowed
	}
	slices.Sort(durations)
	for _, l := range o.Latency {
		ls := starbook.LatencyStatus{Percentile: l.Name, Objective: triggers.FormatDuration(l.Max),
			ObjectiveSeconds: l.Max.Seconds(), Met: true}
		if d, ok := Percentile(durations, l.Quantile); ok {
			s := d.Seconds()
			ls.Seconds, ls.Met = &s, d <= l.Max
		}
		st.Latency = append(st.Latency, ls)
	}
	for _, w := range BurnWindows {
		br := starbook.BurnRate{Window: triggers.FormatDuration(w)}
		for _, r := range runs {
			if !in(r, w) {
				continue
			}
			switch outcome(r.Status) {
			case 1:
				br.Runs++
			case -1:
				br.Runs++
				br.Failures++
			}
		}
		if br.Runs > 0 {
			br.Rate = float64(br.Failures) / float64(br.Runs) / allowed
		}
		st.BurnRates = append(st.BurnRates, br)
	}
	return st
}

// Percentile returns the nearest-rank q-quantile of sorted: the smallest
// value at least a fraction q of the values are at or under. It reports false
// for no values.
func Percentile(sorted []time.Duration, q float64) (time.Duration, bool) {
	if len(sorted) == 0 {
		return 0, false
	}
	// A small epsilon keeps 0.95 * 20 at rank 19, not 20 from float error.
	rank := int(math.Ceil(q*float64(len(sorted)) - 1e-9))
	return sorted[min(max(rank, 1), len(sorted))-1], true
}

// Declared returns o as declared.
func Declared(o *triggers.SLO) starbook.SLOObjective {
	obj := starbook.SLOObjective{Success: o.Success, Window: triggers.FormatDuration(o.Window), Where: o.Where}
	if len(o.Latency) > 0 {
		obj.Latency = map[string]string{}
		for _, l := range o.Latency {
			obj.Latency[l.Name] = triggers.FormatDuration(l.Max)
		}
	}
	return obj
}
