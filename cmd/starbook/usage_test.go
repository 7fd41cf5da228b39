package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/starbook/starbook"
	"github.com/starbook/starbook/api/apitest"
	sbruntime "github.com/starbook/starbook/runtime"
)

// usageService is a service that reports usage through fn.
type usageService struct {
	*apitest.Service
	fn func(ctx context.Context, runbook string, days int) ([]*starbook.DayUsage, error)
}

func (s *usageService) Usage(ctx context.Context, runbook string, days int) ([]*starbook.DayUsage, error) {
	return s.fn(ctx, runbook, days)
}

func TestUsage(t *testing.T) {
	var asked []any
	svc := &usageService{Service: &apitest.Service{}, fn: func(_ context.Context, runbook string, days int) ([]*starbook.DayUsage, error) {
		asked = append(asked, runbook, days)
		return []*starbook.DayUsage{
			{Runbook: "crashloop", Day: "2026-11-25", Executions: 3,
				Usage:   sbruntime.Usage{Steps: 40, Retries: 2, HTTPCalls: 17, FanOutItems: 10, WallTimeMS: 95_000},
				Budgets: []starbook.BudgetUse{{Budget: "steps_per_day", Used: 100, Limit: 10000}, {Budget: "runs_per_day", Used: 3, Limit: 50}}},
			{Runbook: "crashloop", Day: "2026-11-24", Executions: 1, Usage: sbruntime.Usage{Steps: 4, WallTimeMS: 1500}},
		}, nil
	}}
	res := cli(t, svc, "", "usage", "crashloop", "--days", "2")
	if res.code != 0 {
		t.Fatalf("exit %d: %s", res.code, res.stderr)
	}
	want := `DAY         RUNBOOK    EXECUTIONS  STEPS  RETRIES  HTTP CALLS  FAN_OUT ITEMS  WALL TIME  BUDGETS
2026-11-25  crashloop  3           40     2        17          10             1m35s      steps_per_day 100/10000, runs_per_day 3/50
2026-11-24  crashloop  1           4      0        0           0              1.5s       -
`
	if res.stdout != want {
		t.Errorf("stdout =\n%s\nwant\n%s", res.stdout, want)
	}
	if len(asked) != 2 || asked[0] != "crashloop" || asked[1] != 2 {
		t.Errorf("asked %v, want crashloop for 2 days", asked)
	}

	res = cli(t, svc, "", "usage", "--json")
	if res.code != 0 {
		t.Fatalf("exit %d: %s", res.code, res.stderr)
	}
	var got struct {
		Usage []map[string]any `json:"usage"`
	}
	if err := json.Unmarshal([]byte(res.stdout), &got); err != nil {
		t.Fatal(err)
	}
	first := got.Usage[0]
	for key, want := range map[string]any{"runbook": "crashloop", "day": "2026-11-25", "executions": 3.0, "steps": 40.0,
		"retries": 2.0, "http_calls": 17.0, "fan_out_items": 10.0, "wall_time_ms": 95000.0} {
		if first[key] != want {
			t.Errorf("usage[0].%s = %v, want %v", key, first[key], want)
		}
	}
	if asked[2] != "" || asked[3] != 7 {
		t.Errorf("without arguments asked %v, want every runbook for 7 days", asked[2:])
	}

	if res := cli(t, svc, "", "usage", "--days", "0"); res.code != 1 || !strings.Contains(res.stderr, "--days 0: want 1 to 400") || res.requests != 0 {
		t.Errorf("--days 0: exit %d, stderr %q, %d requests", res.code, res.stderr, res.requests)
	}
}
