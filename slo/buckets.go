package slo

import (
	"time"

	"github.com/starbook/starbook"
	"github.com/starbook/starbook/slo/tally"
	"github.com/starbook/starbook/triggers"
)

// ComputeBuckets is Compute over counted buckets instead of runs (the
// store's rollups, see tally): it reads no run. A bucket counts in a window
// when its middle is in it, so a window's far edge is at most half a bucket
// off (a bucket of Start == End, one run's end, counts exactly as Compute
// counts the run). Counts are exact for the windows so rounded; latency
// percentiles are within tally.RelativeError above the exact ones (or 1 ms),
// never below, so a percentile reported met is met.
func ComputeBuckets(runbook, version string, o *triggers.SLO, buckets []tally.Bucket, at time.Time) *starbook.SLOStatus {
	st := &starbook.SLOStatus{Runbook: runbook, Version: version, Objective: Declared(o), From: at.Add(-o.Window),
		Latency: []starbook.LatencyStatus{}, BurnRates: []starbook.BurnRate{}}
	var total tally.Bucket
	for i := range buckets {
		if buckets[i].In(at, o.Window) {
			total.Merge(&buckets[i], 1)
		}
	}
	st.Successes, st.Failures, st.Cancelled = int(total.Successes), int(total.Failures), int(total.Cancelled)
	st.Runs = st.Successes + st.Failures
	allowed := 1 - o.Success
	st.ErrorBudget = starbook.ErrorBudget{Allowed: allowed * float64(st.Runs), Failures: st.Failures, Remaining: 1}
	if st.Runs > 0 {
		rate := float64(st.Successes) / float64(st.Runs)
		st.SuccessRate = &rate
		st.ErrorBudget.Remaining = 1 - float64(st.Failures)/st.ErrorBudget.Allowed
	}
	for _, l := range o.Latency {
		ls := starbook.LatencyStatus{Percentile: l.Name, Objective: triggers.FormatDuration(l.Max),
			ObjectiveSeconds: l.Max.Seconds(), Met: true}
		if d, ok := total.Latency.Quantile(l.Quantile); ok {
			s := d.Seconds()
			ls.Seconds, ls.Met = &s, d <= l.Max
		}
		st.Latency = append(st.Latency, ls)
	}
	for _, w := range BurnWindows {
		br := starbook.BurnRate{Window: triggers.FormatDuration(w)}
		for i := range buckets {
			if b := &buckets[i]; b.In(at, w) {
				br.Runs += int(b.Successes + b.Failures)
				br.Failures += int(b.Failures)
			}
		}
		if br.Runs > 0 {
			br.Rate = float64(br.Failures) / float64(br.Runs) / allowed
		}
		st.BurnRates = append(st.BurnRates, br)
	}
	return st
}
