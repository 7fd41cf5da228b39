package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/starbook/starbook"
	"github.com/starbook/starbook/api"
	sbruntime "github.com/starbook/starbook/runtime"
)

// stdlibRunbook is started by the real Alertmanager when the rule fires. On
// @std/prometheus and @std/alertmanager it checks the rule's expression
// (above), lists Prometheus's alerts, silences its own alert, parks until the
// test has seen the silence, then expires it, and again: no error (Debian's
// Alertmanager 0.25 answers 200; later ones "already expired").
const stdlibRunbook = `
load("@std/prometheus.star", "prometheus")
load("@std/alertmanager.star", "alertmanager")

trigger.alert(alertname = "E2EStdlibFiring")

PROMETHEUS = %q
ALERTMANAGER = %q

def main(event):
    still = prometheus.above(PROMETHEUS, "vector(1) > 0", 0.5)
    series = prometheus.query(PROMETHEUS, "vector(1) > 0")
    firing = [a["labels"]["alertname"] for a in prometheus.alerts(PROMETHEUS) if a["state"] == "firing"]
    id = alertmanager.silence_alert(ALERTMANAGER, event, "1h", "starbook e2e: remediating", created_by = "e2e")
    listed = [s["id"] for s in alertmanager.silences(ALERTMANAGER, matchers = {"alertname": event["labels"]["alertname"]})]
    wait_for_signal("lift", timeout = "2m")
    expired = alertmanager.expire(ALERTMANAGER, id)
    again = alertmanager.expire(ALERTMANAGER, id, step_name = "expire again")
    return {"above": still, "value": series[0]["value"], "firing": firing, "silence": id, "listed": listed, "expired": expired, "again": again,
            "active_after": alertmanager.silences(ALERTMANAGER, matchers = {"alertname": event["labels"]["alertname"]})}
`

// startPrometheusAlerting runs Debian's Prometheus on addr evaluating rules
// every second and sending its alerts to the Alertmanager at amAddr,
// again every second while they fire.
func startPrometheusAlerting(t *testing.T, bin, addr, amAddr, rules string) {
	t.Helper()
	dir := t.TempDir()
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
  - %s
alerting:
  alertmanagers:
    - static_configs:
        - targets: ['%s']
`, rules, amAddr)
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.listen-address="+addr,
		// An alert that fires before the Alertmanager is discovered is
		// dropped and sent again only after this delay (1m by default).
		"--rules.alert.resend-delay=1s")
	startReady(t, "prometheus", cmd, filepath.Join(dir, "prometheus.log"), addr)
}

// amSilence is a silence as Alertmanager's API v2 shows it.
type amSilence struct {
	ID        string `json:"id"`
	CreatedBy string `json:"createdBy"`
	Comment   string `json:"comment"`
	Status    struct {
		State string `json:"state"`
	} `json:"status"`
	Matchers []struct {
		Name    string `json:"name"`
		Value   string `json:"value"`
		IsRegex bool   `json:"isRegex"`
		IsEqual *bool  `json:"isEqual"`
	} `json:"matchers"`
}

// amGet decodes an Alertmanager API answer.
func amGet(t *testing.T, addr, path string, into any) {
	t.Helper()
	resp, err := http.Get("http://" + addr + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d", path, resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(into); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
}

// within polls cond every 100ms until it holds, or fails the test after limit.
func within(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s after %s", what, limit)
		}
		time.Sleep(100 * time.Millisecond) // polling interval, not synchronisation
	}
}

// TestStdlibPrometheusAlertmanager runs @std/prometheus and
// @std/alertmanager against Debian's real Prometheus and Alertmanager, in a
// runbook a real node runs: a rule fires at once, Alertmanager starts the
// run, which finds the rule's expression above its threshold and the alert
// firing, silences its own alert (active in Alertmanager's API, the alert
// shown silenced by it), then expires the silence (expired in the API).
func TestStdlibPrometheusAlertmanager(t *testing.T) {
	if testing.Short() {
		t.Skip("runs Prometheus, Alertmanager and the real binary")
	}
	promBin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Skip("Prometheus is not installed (apt-get install prometheus; .ci/run installs it)")
	}
	amBin, err := exec.LookPath("prometheus-alertmanager")
	if err != nil {
		if amBin, err = exec.LookPath("alertmanager"); err != nil {
			t.Skip("Alertmanager is not installed (apt-get install prometheus-alertmanager; .ci/run installs it)")
		}
	}
	t.Setenv(api.EnvAlertmanagerToken, amToken)
	d := startDaemon(t, t.TempDir()+"/node")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	am := startAlertmanager(t, amBin, d.URL)
	prom := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	if _, err := d.Client.Apply(ctx, map[string]string{
		"remediate.star": fmt.Sprintf(stdlibRunbook, "http://"+prom, "http://"+am+"/"),
	}); err != nil {
		t.Fatal(err)
	}
	rules := filepath.Join(t.TempDir(), "rules.yml")
	if err := os.WriteFile(rules, []byte(`groups:
  - name: e2e
    interval: 1s
    rules:
      - alert: E2EStdlibFiring
        expr: vector(1) > 0
        for: 0s
        labels:
          severity: page
          service: e2e
`), 0o600); err != nil {
		t.Fatal(err)
	}
	startPrometheusAlerting(t, promBin, prom, am, rules)

	// The rule fires, Alertmanager notifies the node, the run starts and
	// parks once its silence is in place.
	var run *sbruntime.Execution
	defer func() {
		if t.Failed() { // what each side saw
			for _, u := range []string{"http://" + prom + "/api/v1/alerts", "http://" + am + "/api/v2/alerts", "http://" + am + "/api/v2/silences"} {
				if resp, err := http.Get(u); err == nil {
					b, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					t.Logf("GET %s: %s", u, b)
				}
			}
		}
	}()
	within(t, time.Minute, "run parked on its signal", func() bool {
		list, err := d.Client.Executions(ctx, starbook.Filter{Runbook: "remediate", Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		if len(list) > 0 && list[0].Status.Terminal() {
			t.Fatalf("run %s ended %s before its signal: %s", list[0].ID, list[0].Status, list[0].Error)
		}
		if len(list) == 1 && list[0].Status == sbruntime.StatusWaiting {
			run = list[0]
			return true
		}
		return false
	})

	// The silence is active in Alertmanager, made of the alert's labels,
	// and Alertmanager shows the alert silenced by it.
	var silences []amSilence
	amGet(t, am, "/api/v2/silences", &silences)
	if len(silences) != 1 || silences[0].Status.State != "active" || silences[0].CreatedBy != "e2e" ||
		silences[0].Comment != "starbook e2e: remediating" {
		t.Fatalf("Alertmanager's silences: %+v", silences)
	}
	got := map[string]string{}
	for _, m := range silences[0].Matchers {
		if m.IsRegex || (m.IsEqual != nil && !*m.IsEqual) {
			t.Fatalf("matcher %+v: want an equality matcher", m)
		}
		got[m.Name] = m.Value
	}
	if want := map[string]string{"alertname": "E2EStdlibFiring", "severity": "page", "service": "e2e"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("silence matchers %v, want %v", got, want)
	}
	id := silences[0].ID
	within(t, 30*time.Second, "alert shown silenced", func() bool {
		var alerts []struct {
			Labels map[string]string `json:"labels"`
			Status struct {
				State      string   `json:"state"`
				SilencedBy []string `json:"silencedBy"`
			} `json:"status"`
		}
		amGet(t, am, "/api/v2/alerts", &alerts)
		return len(alerts) == 1 && alerts[0].Status.State == "suppressed" &&
			len(alerts[0].Status.SilencedBy) == 1 && alerts[0].Status.SilencedBy[0] == id
	})

	// Lift it: the run expires the silence and ends.
	if err := d.Client.Signal(ctx, run.ID, "lift", nil); err != nil {
		t.Fatal(err)
	}
	e, _, err := d.Client.Wait(ctx, run.ID, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if e.Status != sbruntime.StatusCompleted {
		t.Fatalf("run %s: %s %s", e.ID, e.Status, e.Error)
	}
	var result struct {
		Above       bool     `json:"above"`
		Value       float64  `json:"value"`
		Firing      []string `json:"firing"`
		Silence     string   `json:"silence"`
		Listed      []string `json:"listed"`
		Expired     bool     `json:"expired"`
		Again       *bool    `json:"again"`
		ActiveAfter []any    `json:"active_after"`
	}
	if err := json.Unmarshal(e.Result, &result); err != nil {
		t.Fatal(err)
	}
	if !result.Above || result.Value != 1 || fmt.Sprint(result.Firing) != "[E2EStdlibFiring]" || result.Silence != id ||
		fmt.Sprint(result.Listed) != "["+id+"]" || !result.Expired || result.Again == nil || len(result.ActiveAfter) != 0 {
		t.Fatalf("run result: %s (silence in Alertmanager: %s)", e.Result, id)
	}
	var after amSilence
	amGet(t, am, "/api/v2/silence/"+id, &after)
	if after.Status.State != "expired" {
		t.Fatalf("silence %s after expire: %s", id, after.Status.State)
	}
}
