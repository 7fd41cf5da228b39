package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/starbook/starbook/api/apitest"
)

// TestNewPassesCheckTestAndFmt generates every combination of triggers into
// a temp dir and runs the real check, test and fmt --check on the result.
func TestNewPassesCheckTestAndFmt(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		triggers []string // declarations the runbook must have, in order
		approval bool
		tests    int // test_* functions, all passing
	}{
		{"by-hand", nil, nil, false, 2},
		{"alert", []string{"--alert", "alertname=HighLatency"}, []string{`trigger.alert(alertname = "HighLatency"`}, true, 4},
		{"cron", []string{"--cron", "*/15 * * * *"}, []string{`trigger.cron("*/15 * * * *"`}, false, 3},
		{"webhook", []string{"--webhook", "deploy-done"}, []string{`trigger.webhook("deploy-done", secret_env = "WEBHOOK_HOOK_SECRET")`}, false, 2},
		{"alert-cron", []string{"--alert", "alertname=DiskFull", "--alert", "severity=page", "--cron", "@every 10m"},
			[]string{`trigger.alert(alertname = "DiskFull", severity = "page"`, `trigger.cron("@every 10m"`}, false, 4},
		{"alert-webhook", []string{"--webhook", "incident", "--alert", "severity=page"},
			[]string{`trigger.alert(severity = "page"`, `trigger.webhook("incident"`}, true, 4},
		{"cron-webhook", []string{"--cron", "0 6 * * 1-5", "--webhook", "report"},
			[]string{`trigger.cron("0 6 * * 1-5"`, `trigger.webhook("report"`}, false, 3},
		{"all_three", []string{"--alert", "alertname=X", "--cron", "@daily", "--webhook", "x"},
			[]string{`trigger.alert(alertname = "X"`, `trigger.cron("@daily"`, `trigger.webhook("x"`}, false, 4},
		{"odd-labels", []string{"--alert", `for=a "quoted" \ value`, "--alert", "rate=high", "--alert", "team=sre"},
			[]string{`trigger.alert(team = "sre", matchers = ["for=\"a \\\"quoted\\\" \\\\ value\"", "rate=\"high\""]`}, true, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "runbooks")
			res := cli(t, &apitest.Service{}, "", append([]string{"new", tt.name, "--dir", dir}, tt.args...)...)
			want := strings.Join([]string{
				filepath.Join(dir, tt.name+".star"), filepath.Join(dir, tt.name+".schema.json"), filepath.Join(dir, tt.name+"_test.star"),
			}, "\n") + "\n"
			if res.code != 0 || res.stdout != want {
				t.Fatalf("new: exit %d, stdout %q (want %q), stderr %s", res.code, res.stdout, want, res.stderr)
			}
			src, err := os.ReadFile(filepath.Join(dir, tt.name+".star"))
			if err != nil {
				t.Fatal(err)
			}
			got := regexp.MustCompile(`(?m)^trigger\..*$`).FindAllString(string(src), -1)
			if len(got) != len(tt.triggers) {
				t.Errorf("triggers %q, want %d: %q", got, len(tt.triggers), tt.triggers)
			}
			for i := range got {
				if i < len(tt.triggers) && !strings.HasPrefix(got[i], tt.triggers[i]) {
					t.Errorf("trigger %d: %s\nwant it to start with %s", i, got[i], tt.triggers[i])
				}
			}
			if strings.Contains(string(src), "wait_for_approval(") != tt.approval {
				t.Errorf("wait_for_approval in the runbook: %v, want %v:\n%s", !tt.approval, tt.approval, src)
			}
			if !strings.HasPrefix(string(src), "# "+tt.name+": ") {
				t.Errorf("no opening comment naming the runbook:\n%s", src)
			}

			check := cli(t, &apitest.Service{}, "", "check", "--strict", dir)
			if check.code != 0 || check.stdout != "ok: 1 runbook ("+tt.name+"), 0 warnings\n" {
				t.Errorf("check: exit %d\n%s%s", check.code, check.stdout, check.stderr)
			}
			test := cli(t, &apitest.Service{}, "", "test", "-v", dir)
			if passed := regexp.MustCompile(`(?m)^(\d+) passed, 0 failed$`).FindStringSubmatch(test.stdout); test.code != 0 || passed == nil || passed[1] != itoa(tt.tests) {
				t.Errorf("test: exit %d, want %d passed\n%s%s", test.code, tt.tests, test.stdout, test.stderr)
			}
			fmtc := cli(t, &apitest.Service{}, "", "fmt", "--check", dir)
			if fmtc.code != 0 || fmtc.stdout != "" {
				t.Errorf("fmt --check: exit %d\n%s%s", fmtc.code, fmtc.stdout, fmtc.stderr)
			}
		})
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

func TestNewRefuses(t *testing.T) {
	tests := []struct {
		name   string
		args   []string
		stderr string
	}{
		{"invalid name", []string{"Bad_Name"}, `runbook name "Bad_Name": want 1 to 100 lower-case letters`},
		{"name of a test file", []string{"x_test"}, `runbook name "x_test": NAME_test.star is a test file`},
		{"label without =", []string{"x", "--alert", "severity"}, `alert label "severity": want LABEL=VALUE`},
		{"bad label name", []string{"x", "--alert", "1sev=page"}, `"1sev" is not a label name`},
		{"label without value", []string{"x", "--alert", "sev="}, `alert label "sev=": give a value`},
		{"label twice", []string{"x", "--alert", "a=1", "--alert", "a=2"}, `alert label a given twice`},
		{"bad cron", []string{"x", "--cron", "61 * * * *"}, `--cron: cron "61 * * * *": `},
		{"cron of six fields", []string{"x", "--cron", "0 0 * * * *"}, `--cron: cron "0 0 * * * *": `},
		{"bad webhook", []string{"x", "--webhook", "Deploy"}, `--webhook: webhook name "Deploy"`},
		{"reserved webhook", []string{"x", "--webhook", "alertmanager"}, `reserved for Alertmanager`},
		{"no name", nil, `accepts 1 arg(s), received 0`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			res := cli(t, &apitest.Service{}, "", append([]string{"new", "--dir", dir}, tt.args...)...)
			if res.code != 1 || !strings.Contains(res.stderr, tt.stderr) {
				t.Errorf("exit %d, stderr %q; want 1 and %q", res.code, res.stderr, tt.stderr)
			}
			if ents, _ := os.ReadDir(dir); len(ents) != 0 {
				t.Errorf("wrote %v", ents)
			}
		})
	}
}

func TestNewNeverOverwrites(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"x_test.star": "# mine\n"})
	res := cli(t, &apitest.Service{}, "", "new", "x", "--dir", dir)
	if res.code != 1 || res.stderr != "starbook: "+filepath.Join(dir, "x_test.star")+": exists already (--force overwrites)\n" {
		t.Fatalf("exit %d, stderr %q", res.code, res.stderr)
	}
	ents, _ := os.ReadDir(dir)
	if b, _ := os.ReadFile(filepath.Join(dir, "x_test.star")); string(b) != "# mine\n" || len(ents) != 1 {
		t.Fatalf("the existing file is now %q; dir holds %v", b, ents)
	}
	if res := cli(t, &apitest.Service{}, "", "new", "x", "--dir", dir, "--force"); res.code != 0 {
		t.Fatalf("--force: exit %d: %s", res.code, res.stderr)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "x_test.star")); !strings.Contains(string(b), "def test_") {
		t.Errorf("--force did not overwrite x_test.star: %q", b)
	}
}
