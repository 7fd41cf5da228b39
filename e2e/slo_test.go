package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// startPrometheus runs Debian's Prometheus on a free port with a temp dir,
// scraping target's /metrics every second and evaluating rules (a file)
// every second; it returns its address.
func startPrometheus(t *testing.T, bin, target, rules string) string {
	t.Helper()
	dir := t.TempDir()
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
  - %s
scrape_configs:
  - job_name: starbook
    static_configs:
      - targets: ['%s']
`, rules, target)
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	cmd := exec.Command(bin, "--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.listen-address="+addr)
	startReady(t, "prometheus", cmd, filepath.Join(dir, "prometheus.log"), addr)
	return addr
}

// promGet decodes the data of a Prometheus API answer.
func promGet(t *testing.T, addr, path string, data any) {
	t.Helper()
	resp, err := http.Get("http://" + addr + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Status string          `json:"status"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || body.Status != "success" {
		t.Fatalf("GET %s: %s %v", path, body.Status, err)
	}
	if err := json.Unmarshal(body.Data, data); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
}

type promRules struct {
	Groups []struct {
		Name  string `json:"name"`
		Rules []struct {
			Name      string `json:"name"`
			Type      string `json:"type"`
			Health    string `json:"health"`
			LastError string `json:"lastError"`
		} `json:"rules"`
	} `json:"groups"`
}

type promAlerts struct {
	Alerts []struct {
		Labels map[string]string `json:"labels"`
		State  string            `json:"state"`
	} `json:"alerts"`
}

// TestPrometheusRulesAgainstANode runs a real node and a real Prometheus
// that scrapes it every second with the rules "starbook rules" writes for
// the node's runbooks: the rules load and evaluate cleanly, a runbook whose
// runs all fail gets its burn-rate alert, and its dead letters their alert.
func TestPrometheusRulesAgainstANode(t *testing.T) {
	if testing.Short() {
		t.Skip("runs Prometheus and the real binary")
	}
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Skip("Prometheus is not installed (apt-get install prometheus; .ci/run installs it)")
	}
	d := startDaemon(t, t.TempDir()+"/node")
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	if _, err := d.Client.Apply(ctx, map[string]string{"flaky.star": `
slo(success = 0.99, latency = {"p95": "1m"}, window = "1d")

def main(event):
    fail("the service is down")
`}); err != nil {
		t.Fatal(err)
	}
	// The rules, from the node's runbooks, as an operator writes them.
	out, err := run(ctx, d.URL, "rules")
	if err != nil {
		t.Fatalf("starbook rules: %v\n%s", err, out)
	}
	rules := filepath.Join(t.TempDir(), "starbook-rules.yml")
	if err := os.WriteFile(rules, []byte(out), 0o600); err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(d.URL)
	prom := startPrometheus(t, bin, u.Host, rules)

	// Fail runs until the test is done, so that the counters grow while
	// Prometheus watches.
	var wg sync.WaitGroup
	failing, stopFailing := context.WithCancel(ctx)
	defer func() { stopFailing(); wg.Wait() }()
	wg.Add(1)
	go func() {
		defer wg.Done()
		for failing.Err() == nil {
			e, err := d.Client.Start(failing, "flaky", nil)
			if err == nil {
				_, _, _ = d.Client.Wait(failing, e.ID, 30*time.Second)
			}
			select {
			case <-failing.Done():
			case <-time.After(300 * time.Millisecond): // a run every ~0.3s, not synchronisation
			}
		}
	}()

	// The rules load and evaluate without error.
	notYet := "" // the last rule not evaluated yet, for the timeout's message
	defer func() {
		if t.Failed() && notYet != "" {
			t.Logf("last rule not evaluated: %s", notYet)
		}
	}()
	waitUntil(t, 60*time.Second, "Prometheus to load and evaluate the rules", func() bool {
		var r promRules
		promGet(t, prom, "/api/v1/rules", &r)
		groups := map[string]bool{}
		for _, g := range r.Groups {
			groups[g.Name] = true
			for _, rule := range g.Rules {
				if rule.Health != "ok" {
					if rule.Health == "err" {
						t.Fatalf("rule %s of %s: %s", rule.Name, g.Name, rule.LastError)
					}
					notYet = g.Name + "/" + rule.Name + " (" + rule.Health + ")"
					return false // not evaluated yet
				}
			}
		}
		return groups["starbook-slo-ratios"] && groups["starbook-slo-flaky"] && groups["starbook-health"]
	})

	// Every run fails: the fast burn-rate alert of flaky goes pending (it
	// fires after 2 minutes).
	alertOf := func(name, runbook string) string {
		var a promAlerts
		promGet(t, prom, "/api/v1/alerts", &a)
		for _, al := range a.Alerts {
			if al.Labels["alertname"] == name && al.Labels["runbook"] == runbook {
				return al.State
			}
		}
		return ""
	}
	waitUntil(t, 90*time.Second, "StarbookSLOBurnRateFast for flaky", func() bool {
		s := alertOf("StarbookSLOBurnRateFast", "flaky")
		return s == "pending" || s == "firing"
	})
	if s := alertOf("StarbookNoLeader", ""); s != "" {
		t.Errorf("StarbookNoLeader is %s on a node that leads", s)
	}

	// The failing runs are dead letters: the leader's gauge grows.
	waitUntil(t, 90*time.Second, "StarbookDeadLettersGrowing for flaky", func() bool {
		return alertOf("StarbookDeadLettersGrowing", "flaky") == "firing"
	})
}
