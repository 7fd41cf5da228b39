package node_test

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/starbook/starbook"
	sbruntime "github.com/starbook/starbook/runtime"
	"github.com/starbook/starbook/slo/tally"
)

const sloRunbook = `
slo(success = 0.9, latency = {"p50": "10m", "p90": "30m"}, window = "7d")

def main(event):
    s = wait_for_signal("go")
    if not s["data"]["ok"]:
        fail("boom")
    return "ok"
`

// TestSLOFromStoredExecutions runs executions of known outcomes and
// durations on a real node under a clock the test moves, and checks every
// figure of the SLO report computed from what was stored.
func TestSLOFromStoredExecutions(t *testing.T) {
	at := time.Date(2031, 3, 10, 12, 0, 0, 0, time.UTC)
	clk := &fakeClock{t: at.Add(-10 * 24 * time.Hour)}
	tn := startClockedNode(t, clk.Now)
	tn.apply(t, map[string]string{"deploy.star": sloRunbook, "plain.star": "def main(event):\n    return 1\n"})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	set := func(t2 time.Time) { clk.mu.Lock(); clk.t = t2; clk.mu.Unlock() }

	// run starts an execution at start and ends it after d: completed when
	// ok, failed otherwise; cancelled when cancel.
	run := func(start, d time.Duration, ok, cancelIt bool) {
		t.Helper()
		set(at.Add(start))
		e, err := tn.svc.Start(ctx, "deploy", nil, sbruntime.Trigger{Type: "manual"})
		if err != nil {
			t.Fatal(err)
		}
		waitFor(t, func() bool {
			x, _, err := tn.svc.Execution(ctx, e.ID)
			return err == nil && x.Status == sbruntime.StatusWaiting
		})
		set(at.Add(start + d))
		if cancelIt {
			if _, err := tn.svc.Cancel(ctx, e.ID); err != nil {
				t.Fatal(err)
			}
		} else if err := tn.svc.Signal(ctx, e.ID, "go", json.RawMessage(map[bool]string{true: `{"ok":true}`, false: `{"ok":false}`}[ok]), "test"); err != nil {
			t.Fatal(err)
		}
		end, err := tn.svc.AwaitEnd(ctx, e.ID)
		if err != nil {
			t.Fatal(err)
		}
		if end.EndedAt == nil || end.EndedAt.Sub(end.CreatedAt) != d {
			t.Fatalf("run at %v: created %v, ended %v: want %v apart", start, end.CreatedAt, end.EndedAt, d)
		}
	}
	day := 24 * time.Hour
	run(-9*day, time.Minute, true, false)              // before the window and the read
	run(-6*day, 5*time.Minute, true, false)            // in the window only
	run(-5*day, 20*time.Minute, false, false)          // in the window only
	run(-2*day, time.Minute, true, false)              // and the 3d burn window
	run(-3*time.Hour, 30*time.Minute, true, true)      // cancelled: left out
	run(-2*time.Hour, 2*time.Minute, true, false)      // and the 6h one
	run(-50*time.Minute, 40*time.Minute, false, false) // and the 1h one
	run(-4*time.Minute, time.Minute, false, false)     // and the 5m one
	set(at)

	report, err := tn.svc.SLOs(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if !report.At.Equal(at) || len(report.SLOs) != 1 {
		t.Fatalf("report at %v with %d SLOs, want one at %v", report.At, len(report.SLOs), at)
	}
	st := report.SLOs[0]
	approx := func(what string, got, want float64) {
		t.Helper()
		if math.Abs(got-want) > 1e-9 {
			t.Errorf("%s = %v, want %v", what, got, want)
		}
	}
	if st.Runbook != "deploy" || !st.From.Equal(at.Add(-7*day)) || st.Objective.Window != "7d" ||
		st.Objective.Latency["p90"] != "30m" || st.Objective.Where != "deploy.star:2:4" {
		t.Errorf("status header: %+v", st)
	}
	// In the window: successes 5m, 1m, 2m; failures 20m, 40m, 1m; one cancelled.
	if st.Runs != 6 || st.Successes != 3 || st.Failures != 3 || st.Cancelled != 1 || st.SuccessRate == nil {
		t.Fatalf("counts: %d runs, %d ok, %d failed, %d cancelled", st.Runs, st.Successes, st.Failures, st.Cancelled)
	}
	approx("success rate", *st.SuccessRate, 0.5)
	approx("allowed failures", st.ErrorBudget.Allowed, 0.6)
	approx("budget remaining", st.ErrorBudget.Remaining, 1-3/0.6)
	// Durations 1m 1m 2m 5m 20m 40m: nearest rank p50 = 3rd, p90 = 6th,
	// read from the rollups' histogram: at most 1/32 above.
	near := func(got *float64, want float64) bool {
		return got != nil && *got >= want && *got <= want*(1+tally.RelativeError)
	}
	if len(st.Latency) != 2 || st.Latency[0].Percentile != "p50" || !near(st.Latency[0].Seconds, 120) || !st.Latency[0].Met ||
		st.Latency[1].Percentile != "p90" || !near(st.Latency[1].Seconds, 2400) || st.Latency[1].Met || st.Latency[1].ObjectiveSeconds != 1800 {
		t.Errorf("latency: %+v", st.Latency)
	}
	want := []struct {
		window         string
		runs, failures int
		rate           float64
	}{{"5m", 1, 1, 10}, {"1h", 2, 2, 10}, {"6h", 3, 2, 2.0 / 3 / 0.1}, {"3d", 4, 2, 5}}
	if len(st.BurnRates) != len(want) {
		t.Fatalf("burn rates: %+v", st.BurnRates)
	}
	for i, w := range want {
		b := st.BurnRates[i]
		if b.Window != w.window || b.Runs != w.runs || b.Failures != w.failures {
			t.Errorf("burn rate %d: %+v, want %+v", i, b, w)
		}
		approx("burn rate over "+w.window, b.Rate, w.rate)
	}

	// One runbook: the same; one without slo() or unknown: not found.
	one, err := tn.svc.SLOs(ctx, "deploy")
	if err != nil || len(one.SLOs) != 1 || one.SLOs[0].Runs != 6 {
		t.Fatalf("SLOs(deploy): %+v, %v", one, err)
	}
	for name, msg := range map[string]string{"plain": `runbook "plain" declares no slo()`, "nope": `runbook "nope"`} {
		if _, err := tn.svc.SLOs(ctx, name); !errors.Is(err, sbruntime.ErrNotFound) || !strings.Contains(err.Error(), msg) {
			t.Errorf("SLOs(%s): %v, want not found: %s", name, err, msg)
		}
	}
	// A window with no runs: nothing spent, nothing observed.
	set(at.Add(30 * day))
	later, err := tn.svc.SLOs(ctx, "deploy")
	if err != nil {
		t.Fatal(err)
	}
	if l := later.SLOs[0]; l.Runs != 0 || l.SuccessRate != nil || l.ErrorBudget.Remaining != 1 || l.Latency[0].Seconds != nil ||
		!l.Latency[0].Met || l.BurnRates[3].Rate != 0 {
		b, _ := json.Marshal(l)
		t.Errorf("an empty window: %s", b)
	}
}

// TestApplyRefusesBadSLO: an invalid slo() refuses the whole apply with its
// file:line, and nothing is stored: the runbook keeps its version.
func TestApplyRefusesBadSLO(t *testing.T) {
	tn := startTestNode(t, t.TempDir())
	ctx := context.Background()
	tn.apply(t, map[string]string{"deploy.star": sloRunbook})
	before, err := tn.svc.Runbooks(ctx)
	if err != nil || len(before) != 1 {
		t.Fatalf("runbooks: %v, %v", before, err)
	}
	_, err = tn.svc.Apply(ctx, map[string]string{
		"deploy.star": "slo(success = 0.9, latency = {\"p95\": \"soon\"})\ndef main(event):\n    pass\n",
		"other.star":  "def main(event):\n    pass\n",
	})
	var ie *sbruntime.InputError
	if !errors.As(err, &ie) || !strings.Contains(err.Error(), `deploy.star:1:4: slo: latency p95: invalid duration "soon"`) {
		t.Fatalf("apply: %v, want an input error at deploy.star:1:4", err)
	}
	after, err := tn.svc.Runbooks(ctx)
	if err != nil || len(after) != 1 || after[0].Version != before[0].Version {
		t.Fatalf("runbooks after a refused apply: %+v (before %+v), %v", after, before, err)
	}
	report, err := tn.svc.SLOs(ctx, "")
	if err != nil || len(report.SLOs) != 1 || report.SLOs[0].Objective.Latency["p90"] != "30m" {
		t.Fatalf("the stored objective changed: %+v, %v", report, err)
	}
	var _ starbook.SLOService = tn.svc
}
