package runbooktest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/starbook/starbook/runbooktest"
	sbruntime "github.com/starbook/starbook/runtime"
)

func TestDryRun(t *testing.T) {
	tests := []struct {
		golden string
		file   string
		mocks  string
		input  string
		want   sbruntime.Status
	}{
		// Without mocks the pod list is {} : the script fails on it, and says where.
		{"restart_defaults.golden", "testdata/dryrun/restart.star", "", `{"namespace": "shop"}`, sbruntime.StatusFailed},
		{"restart_mocked.golden", "testdata/dryrun/restart.star", "testdata/dryrun/pods_mocks.star", `{"namespace": "shop"}`, sbruntime.StatusCompleted},
		{"hello.golden", "../runbooks/hello.star", "", `{"who": "dry"}`, sbruntime.StatusCompleted},
		// ssh.run answers exit 0 with no output: nothing measured is full.
		{"disk_cleanup.golden", "../runbooks/disk_cleanup.star", "", `{"hosts": ["web-1"]}`, sbruntime.StatusCompleted},
	}
	for _, tt := range tests {
		t.Run(tt.golden, func(t *testing.T) {
			b, err := runbooktest.LoadFile(tt.file)
			if err != nil {
				t.Fatal(err)
			}
			m := runbooktest.NewMocks()
			if tt.mocks != "" {
				if err := m.LoadMocks(tt.mocks); err != nil {
					t.Fatal(err)
				}
			}
			res, err := runbooktest.DryRun(context.Background(), b, json.RawMessage(tt.input), m, sbruntime.Limits{})
			if err != nil {
				t.Fatal(err)
			}
			if res.Execution.Status != tt.want {
				t.Errorf("status %s (%s), want %s", res.Execution.Status, res.Execution.Error, tt.want)
			}
			var out bytes.Buffer
			if err := runbooktest.WritePlan(&out, b, res); err != nil {
				t.Fatal(err)
			}
			// The plan names the version: normalize the shipped runbook's.
			got := out.String()
			if strings.HasPrefix(tt.file, "../runbooks/") {
				got = string(bytes.Replace([]byte(got), []byte(b.Version), []byte("VERSION"), 1))
			}
			golden(t, "dryrun/"+tt.golden, got)
		})
	}
}

// TestMockAPI runs testdata/mockapi: Starlark tests of the mock module
// itself, which all pass.
func TestMockAPI(t *testing.T) {
	out, sum := runTests(t, &runbooktest.Runner{Verbose: true}, "testdata/mockapi")
	if sum.Failed > 0 || sum.Passed == 0 {
		t.Fatalf("%s", out)
	}
}

// TestDryRunSignalTimesOut: in a dry run a signal nobody sends times out at
// once with wait_for_signal's timeout value, with or without a timeout=
// (a wait without a deadline stores no timeout outcome).
func TestDryRunSignalTimesOut(t *testing.T) {
	tests := []struct {
		name string
		call string
	}{
		{"no timeout", `wait_for_signal("go")`},
		{"timeout", `wait_for_signal("go", timeout = "1h")`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "sig.star")
			src := "def main(event):\n    s = " + tt.call + "\n    return {\"name\": s[\"name\"], \"timed_out\": s[\"timed_out\"]}\n"
			if err := os.WriteFile(file, []byte(src), 0o600); err != nil {
				t.Fatal(err)
			}
			b, err := runbooktest.LoadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			res, err := runbooktest.DryRun(context.Background(), b, nil, nil, sbruntime.Limits{})
			if err != nil {
				t.Fatal(err)
			}
			if res.Execution.Status != sbruntime.StatusCompleted {
				t.Fatalf("status %s (%s), want completed", res.Execution.Status, res.Execution.Error)
			}
			if got, want := string(res.Execution.Result), `{"name":"go","timed_out":true}`; got != want {
				t.Errorf("result %s, want %s", got, want)
			}
		})
	}
}
