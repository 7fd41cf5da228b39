package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRulesGolden: the shipped rule file is what "starbook rules --runbooks
// runbooks" writes for the shipped runbooks (.ci/run checks it with promtool
// check rules and promtool test rules). Regenerate it with
//
//	go run ./cmd/starbook rules --runbooks runbooks > deploy/prometheus/rules.yml
func TestRulesGolden(t *testing.T) {
	want, err := os.ReadFile(filepath.Join("..", "..", "deploy", "prometheus", "rules.yml"))
	if err != nil {
		t.Fatal(err)
	}
	res := cli(t, &sloFake{}, "", "rules", "--runbooks", filepath.Join("..", "..", "runbooks"))
	if res.code != 0 {
		t.Fatalf("rules: %d %s", res.code, res.stderr)
	}
	if res.stdout != string(want) {
		t.Errorf("deploy/prometheus/rules.yml is stale: regenerate it (see this test's comment)\n%s", firstDiff(res.stdout, string(want)))
	}
	if res.requests != 0 {
		t.Errorf("rules --runbooks sent %d requests to the server, want none", res.requests)
	}
	for _, name := range []string{"deploy_saga", "nightly_report"} {
		if !strings.Contains(res.stdout, "  - name: starbook-slo-"+name+"\n") {
			t.Errorf("no burn-rate group for %s", name)
		}
	}
}

// TestRulesFromServer: without --runbooks the objectives come from GET
// /api/v1/slo, and give the same alerts as the same declarations in files.
func TestRulesFromServer(t *testing.T) {
	dir := t.TempDir()
	// The fake server's objectives, as files.
	writeFiles(t, dir, map[string]string{
		"deploy.star": "slo(success = 0.9, window = \"7d\", latency = {\"p50\": \"10m\", \"p90\": \"30m\"})\ndef main(event):\n    pass\n",
		"quiet.star":  "slo(success = 0.999)\ndef main(event):\n    pass\n",
	})
	svc := &sloFake{}
	online := cli(t, svc, "", "rules")
	offline := cli(t, svc, "", "rules", "--runbooks", dir)
	if online.code != 0 || offline.code != 0 {
		t.Fatalf("rules: %d %s / %d %s", online.code, online.stderr, offline.code, offline.stderr)
	}
	if online.stdout != offline.stdout {
		t.Errorf("rules from the server and from files differ:\n%s", firstDiff(online.stdout, offline.stdout))
	}
	if !strings.Contains(online.stdout, `starbook:execution_error_ratio:rate1h{runbook="quiet"} > (14.4 * 0.001)`) ||
		!strings.Contains(online.stdout, `histogram_quantile(0.9, sum by (le) (rate(starbook_execution_duration_seconds_bucket{runbook="deploy",`) {
		t.Errorf("rules from the server:\n%s", online.stdout)
	}
}

// TestRulesRefuseBadRunbooks: a runbook whose slo() does not check gives no
// rules, but its file:line.
func TestRulesRefuseBadRunbooks(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"bad.star": "slo(success = 0.9, window = \"1w\")\ndef main(event):\n    pass\n"})
	res := cli(t, &sloFake{}, "", "rules", "--runbooks", dir)
	if res.code != 1 || res.stdout != "" || !strings.Contains(res.stderr, `bad.star:1:4: slo: window: invalid duration "1w"`) {
		t.Fatalf("rules of a bad runbook: %d %q %q", res.code, res.stdout, res.stderr)
	}
}

// firstDiff shows the first line where got and want differ.
func firstDiff(got, want string) string {
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	for i := 0; i < len(g) || i < len(w); i++ {
		var gl, wl string
		if i < len(g) {
			gl = g[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if gl != wl {
			return fmt.Sprintf("line %d:\n got: %s\nwant: %s", i+1, gl, wl)
		}
	}
	return ""
}
