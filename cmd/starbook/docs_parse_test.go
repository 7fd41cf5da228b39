package main

import (
	"slices"
	"testing"

	"github.com/spf13/cobra"
)

// The docs tests are only as good as their parsers: each is checked here
// on the shapes the pages use.

func TestSlug(t *testing.T) {
	tests := []struct{ heading, want string }{
		{"Storage quota", "storage-quota"},
		{"Upgrading in-flight runs (apply --migrate)", "upgrading-in-flight-runs-apply---migrate"},
		{"@std/k8s", "stdk8s"},
		{"SLOs, alert rules and dashboards", "slos-alert-rules-and-dashboards"},
		{"Single sign-on (OpenID Connect)", "single-sign-on-openid-connect"},
	}
	for _, tt := range tests {
		if got := slug(tt.heading); got != tt.want {
			t.Errorf("slug(%q) = %q, want %q", tt.heading, got, tt.want)
		}
	}
	a := anchors("# A\n\n## `starbook test`\n\n```\n# not a heading\n```\n\n## Dup\n\n## Dup\n")
	for _, want := range []string{"a", "starbook-test", "dup", "dup-1"} {
		if !a[want] {
			t.Errorf("anchors lack #%s: %v", want, a)
		}
	}
	if a["not-a-heading"] {
		t.Error("a comment in a code block counted as a heading")
	}
}

func TestShellWords(t *testing.T) {
	tests := []struct {
		line string
		want []string
	}{
		{`starbook approve <ID> --comment "clean it"`, []string{"starbook", "approve", "<ID>", "--comment", "clean it"}},
		{`curl -H 'Content-Type: application/json' --data @a.json`, []string{"curl", "-H", "Content-Type: application/json", "--data", "@a.json"}},
		{`echo "a \"b\"" c\ d`, []string{"echo", `a "b"`, "c d"}},
	}
	for _, tt := range tests {
		got, err := shellWords(tt.line)
		if err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("shellWords(%q) = %q, %v; want %q", tt.line, got, err, tt.want)
		}
	}
	if _, err := shellWords(`echo 'open`); err == nil {
		t.Error("an unclosed quote was accepted")
	}
}

func TestMatchOutput(t *testing.T) {
	got := "ID:       01ABC\nStatus:   waiting\nPOSITION  KIND\n1         call      usage    ok     -   3µs\n"
	none := func(string) string { return "" }
	tests := []struct {
		name    string
		want    []string
		getenv  func(string) string
		missing string
		capture map[string]string
	}{
		{"captures a placeholder", []string{"ID: <ID>", "...", "Status: waiting"}, none, "", map[string]string{"ID": "01ABC"}},
		{"blanks and ... are loose", []string{"1 call usage ok ..."}, none, "", map[string]string{}},
		{"order matters", []string{"Status: waiting", "ID: <ID>"}, none, "ID: <ID>", nil},
		{"a set placeholder must match", []string{"ID: <ID>"}, func(string) string { return "01XYZ" }, "ID: <ID>", nil},
		{"a changed word fails", []string{"Status: completed"}, none, "Status: completed", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			captured, missing := matchOutput(got, tt.want, tt.getenv)
			if missing != tt.missing {
				t.Fatalf("missing %q, want %q", missing, tt.missing)
			}
			for k, v := range tt.capture {
				if captured[k] != v {
					t.Errorf("captured %s=%q, want %q", k, captured[k], v)
				}
			}
		})
	}
}

func TestCheckWord(t *testing.T) {
	rootCmd.InitDefaultHelpCmd()
	tests := []struct {
		line    []string
		problem bool
	}{
		{[]string{"ls", "--waiting", "[--limit", "K]"}, false},
		{[]string{"rollout", `status\|promote\|abort`, "RUNBOOK", "[--json]"}, false},
		{[]string{"rollout", `status\|promote\|abort`, "--nope"}, true},
		{[]string{"logs", "ID", "-f"}, false},
		{[]string{"test", "runbooks/", "-run", "REGEX", "-v"}, false},
		{[]string{"frobnicate"}, true},
		{[]string{"ls", "--nope"}, true},
		{[]string{"check", "disk.star", "--strict"}, false},
	}
	for _, tt := range tests {
		cmds := []*cobra.Command{rootCmd}
		positional, problem := false, false
		for _, w := range tt.line {
			for _, alt := range splitAlternatives(w) {
				if checkWord(&cmds, &positional, alt) != "" {
					problem = true
				}
			}
		}
		if problem != tt.problem {
			t.Errorf("starbook %q: problem %v, want %v", tt.line, problem, tt.problem)
		}
	}
}
