package runbooktest_test

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/starbook/starbook/runbooktest"
	"github.com/starbook/starbook/stdlib"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// golden compares got with testdata/name, or writes it there with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs (go test -update rewrites it)\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

// stopped is a clock that does not move: every test takes 0.00s.
func stopped() time.Time { return time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC) }

func runTests(t *testing.T, r *runbooktest.Runner, paths ...string) (string, runbooktest.Summary) {
	t.Helper()
	var out bytes.Buffer
	r.Out, r.Now = &out, stopped
	sum, err := r.Run(context.Background(), paths)
	if err != nil {
		t.Fatal(err)
	}
	return out.String(), sum
}

func TestRunnerOutput(t *testing.T) {
	tests := []struct {
		name         string
		runner       runbooktest.Runner
		paths        []string
		pass, failed int
	}{
		{"pass.golden", runbooktest.Runner{}, []string{"testdata/runner/pass_test.star"}, 4, 0},
		{"pass_verbose.golden", runbooktest.Runner{Verbose: true}, []string{"testdata/runner/pass_test.star"}, 4, 0},
		{"fail.golden", runbooktest.Runner{}, []string{"testdata/runner/fail_test.star"}, 1, 5},
		{"filter.golden", runbooktest.Runner{Verbose: true, Filter: regexp.MustCompile("status|greets")}, []string{"testdata/runner"}, 1, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, sum := runTests(t, &tt.runner, tt.paths...)
			golden(t, "runner/"+tt.name, out)
			if sum.Passed != tt.pass || sum.Failed != tt.failed {
				t.Errorf("summary %+v, want %d passed, %d failed", sum, tt.pass, tt.failed)
			}
		})
	}
}

func TestRunnerFindsNothing(t *testing.T) {
	r := &runbooktest.Runner{Out: &bytes.Buffer{}}
	if _, err := r.Run(context.Background(), []string{t.TempDir()}); err == nil || !strings.Contains(err.Error(), "no test files") {
		t.Fatalf("Run = %v", err)
	}
	if _, err := r.Run(context.Background(), []string{"testdata/runner/greet.star"}); err == nil {
		t.Fatal("a runbook was taken for a test file")
	}
}

// TestShippedRunbooks is `starbook test runbooks/` in CI: every shipped
// runbook's tests pass.
func TestShippedRunbooks(t *testing.T) {
	// The shipped runbooks load @std modules: the embedded ones.
	std, err := stdlib.Default(func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	out, sum := runTests(t, &runbooktest.Runner{Libraries: std}, "../runbooks")
	if sum.Failed > 0 || sum.Passed == 0 {
		t.Fatalf("starbook test runbooks/:\n%s", out)
	}
	for _, name := range []string{"crashloop", "disk_cleanup", "deploy_saga", "incident", "signup", "nightly_report", "hello"} {
		if !strings.Contains(out, "ok  \t../runbooks/"+name+"_test.star") {
			t.Errorf("no passing tests for runbooks/%s.star:\n%s", name, out)
		}
	}
}
