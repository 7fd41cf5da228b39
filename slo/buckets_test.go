package slo_test

import (
	"math/rand/v2"
	"testing"
	"time"

	sbruntime "github.com/starbook/starbook/runtime"
	"github.com/starbook/starbook/slo"
	"github.com/starbook/starbook/slo/tally"
	"github.com/starbook/starbook/triggers"
)

// TestComputeBucketsOfRuns: a bucket per run (Start == End, its end) gives
// what Compute gives over the runs, latency within tally's resolution; the
// same runs folded into minute buckets give the same counts at a whole
// minute.
func TestComputeBucketsOfRuns(t *testing.T) {
	o, err := triggers.NewSLO(0.9, map[string]time.Duration{"p50": time.Minute, "p99": time.Hour}, 2*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(5, 6))
	at := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	var runs []slo.Run
	var each []tally.Bucket
	minutes := map[time.Time]*tally.Bucket{}
	statuses := []sbruntime.Status{sbruntime.StatusCompleted, sbruntime.StatusFailed, sbruntime.StatusStuck,
		sbruntime.StatusCancelled, sbruntime.StatusCompleted, sbruntime.StatusRunning}
	for range 3000 {
		ended := at.Add(-time.Duration(r.Int64N(int64(4 * time.Hour))))
		created := ended.Add(-time.Duration(r.ExpFloat64() * float64(5*time.Minute)))
		st := statuses[r.IntN(len(statuses))]
		if st == sbruntime.StatusRunning {
			runs = append(runs, slo.Run{Status: st, Created: created})
			continue // not ended: counted nowhere
		}
		runs = append(runs, slo.Run{Status: st, Created: created, Ended: ended})
		b := tally.Bucket{Start: ended, End: ended}
		b.Add(st, ended.Sub(created), 1)
		each = append(each, b)
		m := ended.Truncate(time.Minute)
		if minutes[m] == nil {
			minutes[m] = &tally.Bucket{Start: m, End: m.Add(time.Minute)}
		}
		minutes[m].Add(st, ended.Sub(created), 1)
	}
	var folded []tally.Bucket
	for _, b := range minutes {
		folded = append(folded, *b)
	}
	want := slo.Compute("r", "v1", o, runs, at)
	for name, buckets := range map[string][]tally.Bucket{"a bucket per run": each, "minutes": folded} {
		got := slo.ComputeBuckets("r", "v1", o, buckets, at)
		if got.Runs != want.Runs || got.Successes != want.Successes || got.Failures != want.Failures ||
			got.Cancelled != want.Cancelled || got.ErrorBudget != want.ErrorBudget {
			t.Errorf("%s: %+v, want %+v", name, got, want)
		}
		for i := range want.BurnRates {
			if got.BurnRates[i] != want.BurnRates[i] {
				t.Errorf("%s: burn rate %+v, want %+v", name, got.BurnRates[i], want.BurnRates[i])
			}
		}
		for i, l := range want.Latency {
			g := got.Latency[i]
			if *g.Seconds < *l.Seconds || *g.Seconds > *l.Seconds*(1+tally.RelativeError)+0.001 || g.Met && !l.Met {
				t.Errorf("%s: %s %+v, exact %+v", name, l.Percentile, g, l)
			}
		}
	}
}
