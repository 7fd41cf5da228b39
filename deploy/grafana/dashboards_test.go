package dashboards

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/promql/parser"
)

// TestGeneratedFilesAreCurrent: the committed JSON is what the code builds
// (regenerate with go generate in this directory).
func TestGeneratedFilesAreCurrent(t *testing.T) {
	files, err := Render()
	if err != nil {
		t.Fatal(err)
	}
	committed, _ := filepath.Glob("*.json")
	if len(committed) != len(files) {
		t.Errorf("committed %v, generated %d files", committed, len(files))
	}
	for name, want := range files {
		got, err := os.ReadFile(name)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s is not what the code builds (%v): run go generate in deploy/grafana", name, err)
		}
	}
}

// grafanaVars are the values Grafana gives its variables when it sends a
// query, enough for the query to parse.
var grafanaVars = strings.NewReplacer("$__rate_interval", "5m", "$__range", "6h", "$__interval", "1m",
	"${datasource}", "prometheus", `"$runbook"`, `".*"`)

// TestEveryQueryParses parses every query of every dashboard with
// Prometheus' own PromQL parser, and checks that each dashboard has panels,
// queries and the metrics its design names.
func TestEveryQueryParses(t *testing.T) {
	files, err := Render()
	if err != nil {
		t.Fatal(err)
	}
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	seen := map[string]string{} // metric -> dashboard
	promql := parser.NewParser(parser.Options{})
	for _, name := range names {
		var d any
		if err := json.Unmarshal(files[name], &d); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		exprs := collect(d, "expr")
		if len(exprs) < 5 {
			t.Errorf("%s has %d queries", name, len(exprs))
		}
		for _, e := range exprs {
			expr, err := promql.ParseExpr(grafanaVars.Replace(e))
			if err != nil {
				t.Errorf("%s: %q does not parse: %v", name, e, err)
				continue
			}
			if strings.Contains(grafanaVars.Replace(e), "$") {
				t.Errorf("%s: %q has a variable the test does not know", name, e)
			}
			parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
				if vs, ok := n.(*parser.VectorSelector); ok {
					seen[vs.Name] = name
				}
				return nil
			})
		}
	}
	for metric, where := range map[string]string{
		"starbook_executions_ended_total":            "executive.json",
		"starbook:execution_error_ratio:rate1h":      "executive.json",
		"starbook:slo_success_target":                "oncall.json",
		"starbook_queue_depth":                       "oncall.json",
		"starbook_trigger_queued":                    "oncall.json",
		"starbook_dead_letters":                      "oncall.json",
		"starbook_step_duration_seconds_bucket":      "debug.json",
		"starbook_step_retries_total":                "debug.json",
		"starbook_execution_duration_seconds_bucket": "debug.json",
	} {
		if _, ok := seen[metric]; !ok {
			t.Errorf("no dashboard queries %s (want it in %s)", metric, where)
		}
	}
	// The debug dashboard links to an execution's page in the node's UI.
	var debug any
	_ = json.Unmarshal(files["debug.json"], &debug)
	if urls := collect(debug, "url"); !contains(urls, "${starbook_url}/ui/#/executions/${execution}") {
		t.Errorf("debug.json links %v, want the execution page", urls)
	}
}

// collect returns every string value of key anywhere in v.
func collect(v any, key string) []string {
	var out []string
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			if s, ok := x.(string); ok && k == key {
				out = append(out, s)
			} else {
				out = append(out, collect(x, key)...)
			}
		}
	case []any:
		for _, x := range v {
			out = append(out, collect(x, key)...)
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
