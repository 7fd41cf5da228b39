package stdlib_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/starbook/starbook/builtins"
	"github.com/starbook/starbook/check"
	"github.com/starbook/starbook/stdlib"
)

// TestPrometheusAlertmanagerCheck checks a runbook loading @std/prometheus
// and @std/alertmanager as apply does: it passes, its bundle holds both
// modules, and the modules' requests are in its effects (each at its line
// in the module), so that policies see them; their secrets are read by a
// computed name (token_secret=), never at load.
func TestPrometheusAlertmanagerCheck(t *testing.T) {
	set, err := stdlib.Default(func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	res := check.Files(map[string]string{"remediate.star": `
load("@std/prometheus.star", "prometheus")
load("@std/alertmanager.star", "alertmanager")

def main(event):
    if prometheus.above("http://prom:9090", "up == 0", 0):
        id = alertmanager.silence_alert("http://am:9093", event, "1h", "starbook")
        alertmanager.expire("http://am:9093", id)
    return alertmanager.silences("http://am:9093")
`}, check.Options{Builtins: builtins.New(builtins.Options{}), Libraries: set})
	if err := res.Err(); err != nil {
		t.Fatal(err)
	}
	if len(res.Bundles) != 1 {
		t.Fatalf("%d bundles", len(res.Bundles))
	}
	for _, m := range []string{"@std/prometheus.star", "@std/alertmanager.star"} {
		if res.Bundles[0].Files[m] == "" {
			t.Errorf("the bundle lacks %s: %v", m, res.Bundles[0].Files)
		}
	}
	effects := map[string]bool{}
	for _, e := range res.Facts["remediate"].Effects {
		effects[fmt.Sprintf("%s %s %s", e.Kind, e.Method, e.File)] = true
	}
	for _, want := range []string{"http GET @std/prometheus.star", "http POST @std/alertmanager.star",
		"http DELETE @std/alertmanager.star", "http GET @std/alertmanager.star"} {
		if !effects[want] {
			t.Errorf("no effect %q in check's list: %v", want, effects)
		}
	}
}

// TestModuleFunctionInsideAStep: a module's function is a step; called from
// inside the runbook's own step, check refuses it with file:line, as a
// direct call().
func TestModuleFunctionInsideAStep(t *testing.T) {
	set, err := stdlib.Default(func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	res := check.Files(map[string]string{"nested.star": `
load("@std/prometheus.star", "prometheus")

def probe(url):
    return prometheus.query(url, "up")

def main(event):
    return call(probe, "http://prom:9090")
`}, check.Options{Builtins: builtins.New(builtins.Options{}), Libraries: set})
	err = res.Err()
	if err == nil || !strings.Contains(err.Error(), "@std/prometheus.star:") || !strings.Contains(err.Error(), "steps do not nest") {
		t.Fatalf("check: %v", err)
	}
}
