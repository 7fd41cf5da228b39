package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/starbook/starbook"
	"github.com/starbook/starbook/api/apitest"
	sbruntime "github.com/starbook/starbook/runtime"
)

// sloFake is a fake service with the optional SLO part.
type sloFake struct {
	apitest.Service
	asked []string
}

func (s *sloFake) SLOs(_ context.Context, runbook string) (*starbook.SLOReport, error) {
	s.asked = append(s.asked, runbook)
	if runbook == "plain" {
		return nil, sbruntime.ErrNotFound
	}
	at := time.Date(2031, 3, 10, 12, 0, 0, 0, time.UTC)
	rate, p50, p90 := 0.5, 120.0, 2400.0
	return &starbook.SLOReport{At: at, SLOs: []*starbook.SLOStatus{
		{Runbook: "deploy", Objective: starbook.SLOObjective{Success: 0.9, Window: "7d", Latency: map[string]string{"p50": "10m", "p90": "30m"}},
			Runs: 6, Successes: 3, Failures: 3, Cancelled: 1, SuccessRate: &rate,
			ErrorBudget: starbook.ErrorBudget{Allowed: 0.6, Failures: 3, Remaining: -4},
			Latency: []starbook.LatencyStatus{{Percentile: "p50", Objective: "10m", Seconds: &p50, Met: true},
				{Percentile: "p90", Objective: "30m", Seconds: &p90}},
			BurnRates: []starbook.BurnRate{{Window: "5m", Rate: 10}, {Window: "1h", Rate: 10},
				{Window: "6h", Rate: 6.666666666666667}, {Window: "3d", Rate: 5}}},
		{Runbook: "quiet", Objective: starbook.SLOObjective{Success: 0.999, Window: "28d"},
			ErrorBudget: starbook.ErrorBudget{Remaining: 1},
			BurnRates:   []starbook.BurnRate{{Window: "5m"}, {Window: "1h"}, {Window: "6h"}, {Window: "3d"}}},
	}}, nil
}

// TestSloCommand: starbook slo prints one line per objective, --json the
// API's report as is, and RUNBOOK asks for that runbook only.
func TestSloCommand(t *testing.T) {
	svc := &sloFake{}
	res := cli(t, svc, "", "slo")
	if res.code != 0 {
		t.Fatalf("slo: %d %s", res.code, res.stderr)
	}
	want := strings.Join([]string{
		"RUNBOOK  WINDOW  TARGET  SUCCESS  RUNS                       BUDGET LEFT  BURN 5m/1h/6h/3d  LATENCY",
		"deploy   7d      90%     50%      6 (3 failed) +1 cancelled  -400%        10/10/6.67/5      p50 2m/10m ok, p90 40m/30m MISSED",
		"quiet    28d     99.9%   -        0 (0 failed)               100%         0/0/0/0           -",
		""}, "\n")
	if res.stdout != want {
		t.Errorf("slo printed:\n%s\nwant:\n%s", res.stdout, want)
	}

	res = cli(t, svc, "", "slo", "deploy", "--json")
	var report starbook.SLOReport
	if res.code != 0 || json.Unmarshal([]byte(res.stdout), &report) != nil || len(report.SLOs) != 2 ||
		report.SLOs[0].ErrorBudget.Remaining != -4 || *report.SLOs[0].Latency[1].Seconds != 2400 {
		t.Fatalf("slo --json: %d %s %s", res.code, res.stdout, res.stderr)
	}
	if strings.Join(svc.asked, ",") != ",deploy" {
		t.Errorf("asked for %q, want all then deploy", svc.asked)
	}
	if res := cli(t, svc, "", "slo", "plain"); res.code != 1 || !strings.Contains(res.stderr, "not found") {
		t.Errorf("slo of a runbook without one: %d %q", res.code, res.stderr)
	}
}
