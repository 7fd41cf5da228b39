package check_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/starbook/starbook/triggers"
)

// TestBudgetDeclarations: budget() is checked as apply checks it: every
// argument a known budget and a positive integer, at least one, at most one
// budget() per runbook; an error names the file:line of the call. A valid
// one is stored with the bundle's declarations.
func TestBudgetDeclarations(t *testing.T) {
	main := "\ndef main(event):\n    pass\n"
	tests := []struct {
		name string
		src  string
		want string // the error, as a prefix; "" for valid
		// budget is what a valid declaration stores.
		budget triggers.Budget
	}{
		{"all five", "budget(runs_per_day = 100, steps_per_run = 50, steps_per_day = 10000, http_calls_per_day = 500, fan_out_items_per_day = 2000)",
			"", triggers.Budget{RunsPerDay: 100, StepsPerRun: 50, StepsPerDay: 10000, HTTPCallsPerDay: 500, FanOutItemsPerDay: 2000, Where: "a.star:1:7"}},
		{"one", "budget(steps_per_day = 1)", "", triggers.Budget{StepsPerDay: 1, Where: "a.star:1:7"}},
		{"computed", "N = 10\nbudget(runs_per_day = N * 2)", "", triggers.Budget{RunsPerDay: 20, Where: "a.star:2:7"}},
		{"none", "budget()", "a.star:1:7: budget: declares no limit: give at least one of runs_per_day, steps_per_run", triggers.Budget{}},
		{"zero", "budget(steps_per_day = 0)", "a.star:1:7: budget: steps_per_day=0: want a positive integer", triggers.Budget{}},
		{"negative", "budget(runs_per_day = -5)", "a.star:1:7: budget: runs_per_day=-5: want a positive integer", triggers.Budget{}},
		{"a string", `budget(steps_per_run = "10")`, "a.star:1:7: budget: steps_per_run: want a positive integer, got string", triggers.Budget{}},
		{"a float", "budget(steps_per_run = 1.5)", "a.star:1:7: budget: steps_per_run: want a positive integer, got float", triggers.Budget{}},
		{"a bool", "budget(steps_per_run = True)", "a.star:1:7: budget: steps_per_run: want a positive integer, got bool", triggers.Budget{}},
		{"too large", "budget(steps_per_day = 1 << 70)", "a.star:1:7: budget: steps_per_day=1180591620717411303424: too large", triggers.Budget{}},
		{"unknown", "budget(steps_per_week = 10)", "a.star:1:7: budget: unexpected keyword argument \"steps_per_week\"", triggers.Budget{}},
		{"positional", "budget(10)", "a.star:1:7: budget: takes keyword arguments only", triggers.Budget{}},
		{"twice", "budget(runs_per_day = 1)\nbudget(steps_per_day = 2)", "a.star:2:7: budget: a runbook declares one budget: already declared at a.star:1:7", triggers.Budget{}},
		{"in a loaded file too", "load(\"lib.star\", \"x\")\nbudget(runs_per_day = 1)", "a.star:2:7: budget: a runbook declares one budget: already declared at lib.star:1:7", triggers.Budget{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files := map[string]string{"a.star": tt.src + main, "lib.star": "budget(steps_per_day = 5)\nx = 1\n"}
			if !strings.Contains(tt.src, "load(") {
				delete(files, "lib.star")
			}
			res := run(files, nil)
			err := res.Err()
			if tt.want != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
					t.Fatalf("error %v, want %q", err, tt.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Bundles) != 1 {
				t.Fatalf("%d bundles", len(res.Bundles))
			}
			set, err := triggers.DecodeSet(res.Bundles[0].Triggers)
			if err != nil {
				t.Fatal(err)
			}
			if set.Budget == nil || *set.Budget != tt.budget {
				t.Errorf("stored budget %+v, want %+v (declarations %s)", set.Budget, tt.budget, res.Bundles[0].Triggers)
			}
			if !set.Empty() {
				t.Errorf("a budget alone declares triggers: %s", res.Bundles[0].Triggers)
			}
		})
	}
}

// TestBudgetInARunbookThatDoesNotCompile: a literal budget() is still
// checked when the runbook has another error.
func TestBudgetInARunbookThatDoesNotCompile(t *testing.T) {
	res := run(map[string]string{"a.star": "budget(steps_per_day = 0)\ndef main(event):\n    return undefined_thing\n"}, nil)
	got := strings.Join(findings(res), "\n")
	for _, want := range []string{"a.star:1:7: budget: steps_per_day=0: want a positive integer", "a.star:3:12: undefined: undefined_thing"} {
		if !strings.Contains(got, want) {
			t.Errorf("findings\n%s\ndo not contain %q", got, want)
		}
	}
}

// TestBudgetWithTriggersStoresBoth: declarations keep the triggers and the
// budget side by side.
func TestBudgetWithTriggersStoresBoth(t *testing.T) {
	res := run(map[string]string{"a.star": "trigger.cron(\"@hourly\")\nbudget(runs_per_day = 24)\ndef main(event):\n    pass\n"}, nil)
	if err := res.Err(); err != nil {
		t.Fatal(err)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(res.Bundles[0].Triggers, &raw); err != nil {
		t.Fatal(err)
	}
	if raw["crons"] == nil || string(raw["budget"]) != `{"runs_per_day":24,"where":"a.star:2:7"}` {
		t.Errorf("declarations %s", res.Bundles[0].Triggers)
	}
}
