package check_test

import (
	"strings"
	"testing"
	"time"

	"github.com/starbook/starbook/triggers"
)

// TestSLODeclarations: slo() validates at apply time; a bad declaration is an
// error at its file:line:col and yields no bundle, a good one is stored in
// the bundle's declarations as declared.
func TestSLODeclarations(t *testing.T) {
	const main = "\ndef main(event):\n    pass\n"
	good := []struct {
		name, src string
		want      triggers.SLO
	}{
		{"full", `slo(success = 0.99, latency = {"p95": "10m", "p50": "90s", "p99.9": "1h"}, window = "28d")`,
			triggers.SLO{Success: 0.99, Window: 28 * 24 * time.Hour, Where: "a.star:1:4", Latency: []triggers.LatencyTarget{
				{Name: "p50", Quantile: 0.5, Max: 90 * time.Second},
				{Name: "p95", Quantile: 0.95, Max: 10 * time.Minute},
				{Name: "p99.9", Quantile: 0.999, Max: time.Hour}}}},
		{"success only, default window", `slo(0.995)`,
			triggers.SLO{Success: 0.995, Window: 28 * 24 * time.Hour, Where: "a.star:1:4"}},
		{"window in hours, days and seconds", `slo(success = 0.9, window = "1d12h")`,
			triggers.SLO{Success: 0.9, Window: 36 * time.Hour, Where: "a.star:1:4"}},
		{"with triggers", "trigger.cron(\"@hourly\")\nslo(success = 0.9, latency = {\"p90\": 60}, window = \"7d\")",
			triggers.SLO{Success: 0.9, Window: 7 * 24 * time.Hour, Where: "a.star:2:4",
				Latency: []triggers.LatencyTarget{{Name: "p90", Quantile: 0.9, Max: time.Minute}}}},
	}
	for _, tc := range good {
		t.Run(tc.name, func(t *testing.T) {
			res := run(map[string]string{"a.star": tc.src + main}, nil)
			if err := res.Err(); err != nil || len(res.Bundles) != 1 {
				t.Fatalf("err %v, %d bundles", err, len(res.Bundles))
			}
			set, err := triggers.DecodeSet(res.Bundles[0].Triggers)
			if err != nil {
				t.Fatal(err)
			}
			if set.SLO == nil {
				t.Fatalf("no SLO stored: %s", res.Bundles[0].Triggers)
			}
			got, want := *set.SLO, tc.want
			if got.Success != want.Success || got.Window != want.Window || got.Where != want.Where ||
				len(got.Latency) != len(want.Latency) {
				t.Fatalf("stored %+v, want %+v", got, want)
			}
			for i := range got.Latency {
				if got.Latency[i] != want.Latency[i] {
					t.Errorf("latency %d: %+v, want %+v", i, got.Latency[i], want.Latency[i])
				}
			}
		})
	}

	bad := []struct{ name, src, want string }{
		{"success 1", `slo(success = 1.0)`, "a.star:1:4: slo: success=1: want a ratio strictly between 0 and 1"},
		{"success 0", `slo(success = 0)`, "a.star:1:4: slo: success=0: want a ratio strictly between 0 and 1"},
		{"success over 1", `slo(success = 99)`, "a.star:1:4: slo: success=99: want a ratio"},
		{"success a string", `slo(success = "99%")`, "a.star:1:4: slo: success: want a ratio such as 0.99, got string"},
		{"no success", `slo(window = "28d")`, "a.star:1:4: slo: missing argument for success"},
		{"unknown argument", `slo(success = 0.9, target = 1)`, "a.star:1:4: slo: unexpected keyword argument \"target\""},
		{"latency key not a percentile", `slo(success = 0.9, latency = {"median": "1m"})`,
			`a.star:1:4: slo: latency key "median": want a percentile such as "p50"`},
		{"latency p100", `slo(success = 0.9, latency = {"p100": "1m"})`, `a.star:1:4: slo: latency key "p100"`},
		{"latency p0", `slo(success = 0.9, latency = {"p0": "1m"})`, `a.star:1:4: slo: latency key "p0"`},
		{"latency bad duration", `slo(success = 0.9, latency = {"p95": "ten minutes"})`,
			`a.star:1:4: slo: latency p95: invalid duration "ten minutes"`},
		{"latency zero", `slo(success = 0.9, latency = {"p95": "0s"})`, `a.star:1:4: slo: latency p95="0s": want a positive duration`},
		{"latency same percentile twice", `slo(success = 0.9, latency = {"p90": "1m", "p90.0": "2m"})`,
			`a.star:1:4: slo: latency keys "p90" and "p90.0" name the same percentile`},
		{"latency not a dict", `slo(success = 0.9, latency = ["p95", "1m"])`, `a.star:1:4: slo: for parameter "latency": got list, want dict`},
		{"window bad", `slo(success = 0.9, window = "four weeks")`, `a.star:1:4: slo: window: invalid duration "four weeks"`},
		{"window too short", `slo(success = 0.9, window = "5m")`, `a.star:1:4: slo: window="5m": want from 1h to 366d`},
		{"window too long", `slo(success = 0.9, window = "400d")`, `a.star:1:4: slo: window="400d": want from 1h to 366d`},
		{"two objectives", "slo(success = 0.9)\nslo(success = 0.99)", "a.star:2:4: slo: an slo() is already declared at a.star:1:4"},
		{"bad slo in a runbook that does not compile", "slo(success = 2)\ndef main(event):\n    return undefined_thing\n",
			"a.star:1:4: slo: success=2: want a ratio"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			src := tc.src
			if !strings.Contains(src, "def main") {
				src += main
			}
			res := run(map[string]string{"a.star": src}, nil)
			err := res.Err()
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Fatalf("error:\n%v\nwant it to start with:\n%s", err, tc.want)
			}
			if len(res.Bundles) != 0 {
				t.Errorf("a refused runbook gave %d bundles to store", len(res.Bundles))
			}
		})
	}
}

// TestSLOStoredOnlyWhenDeclared: a runbook without slo() or triggers
// stores no declarations.
func TestSLOStoredOnlyWhenDeclared(t *testing.T) {
	res := run(map[string]string{"a.star": "def main(event):\n    pass\n"}, nil)
	if res.Err() != nil || len(res.Bundles) != 1 || res.Bundles[0].Triggers != nil {
		t.Fatalf("a runbook without declarations stored %q (%v)", res.Bundles[0].Triggers, res.Err())
	}
}
