package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/starbook/starbook"
	"github.com/starbook/starbook/api"
	sbruntime "github.com/starbook/starbook/runtime"
	"github.com/starbook/starbook/triggers"
)

const (
	amToken    = "am-e2e-token"
	hookSecret = "e2e-hook-secret"
)

var e2eRunbooks = map[string]string{
	// Only api-* pods; waits for its alert to resolve.
	"crash.star": `
trigger.alert(alertname = "E2ECrash", matchers = ['pod=~"api-.*"'])
def main(event):
    sig = wait_for_signal("resolved", timeout = "5m")
    return {"pod": event.labels["pod"], "resolved": not sig["timed_out"]}
`,
	// Every E2E alert; ends at once.
	"inventory.star": `
trigger.alert(matchers = ['alertname=~"E2E.*"'])
def main(event):
    return event.labels["pod"]
`,
	"deploy.star": `
trigger.webhook("deploy-done", secret_env = "E2E_HOOK_SECRET")
def main(event):
    return event.service
`,
}

// notificationLog sits between Alertmanager and starbook and records every
// notification it forwards.
type notificationLog struct {
	target string
	mu     sync.Mutex
	seen   map[string]int // "status pod" -> notifications
	cond   *sync.Cond
}

func (l *notificationLog) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	req, _ := http.NewRequestWithContext(r.Context(), http.MethodPost, l.target+r.URL.Path, bytes.NewReader(body))
	req.Header = r.Header.Clone()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusOK {
		if n, err := triggers.DecodeNotification(body); err == nil {
			l.mu.Lock()
			for _, a := range n.Alerts {
				l.seen[a.Status+" "+a.Labels["pod"]]++
			}
			l.cond.Broadcast()
			l.mu.Unlock()
		}
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = w.Write(out)
}

// await blocks until cond holds on the counts, or the deadline.
func (l *notificationLog) await(t *testing.T, what string, cond func(map[string]int) bool) {
	t.Helper()
	deadline := time.AfterFunc(60*time.Second, func() { l.mu.Lock(); l.cond.Broadcast(); l.mu.Unlock() })
	defer deadline.Stop()
	start := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	for !cond(l.seen) {
		if time.Since(start) >= 60*time.Second {
			t.Fatalf("no %s after 60s; notifications seen: %v", what, l.seen)
		}
		l.cond.Wait()
	}
}

// startAlertmanager runs the Debian package's Alertmanager with a webhook
// receiver at url and returns its API address.
func startAlertmanager(t *testing.T, bin, url string) string {
	t.Helper()
	dir := t.TempDir()
	cfg := fmt.Sprintf(`route:
  receiver: starbook
  group_by: ['alertname', 'pod']
  group_wait: 100ms
  group_interval: 500ms
  repeat_interval: 1s
receivers:
  - name: starbook
    webhook_configs:
      - url: %s/hooks/alertmanager
        send_resolved: true
        http_config:
          authorization:
            credentials: %s
`, url, amToken)
	if err := os.WriteFile(filepath.Join(dir, "alertmanager.yml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	cmd := exec.Command(bin, "--config.file="+filepath.Join(dir, "alertmanager.yml"),
		"--storage.path="+filepath.Join(dir, "data"), "--web.listen-address="+addr, "--cluster.listen-address=")
	startReady(t, "alertmanager", cmd, filepath.Join(dir, "alertmanager.log"), addr)
	return addr
}

// postAlerts posts alerts to Alertmanager's API v2.
func postAlerts(t *testing.T, amAddr string, alerts []map[string]any) {
	t.Helper()
	body, _ := json.Marshal(alerts)
	resp, err := http.Post("http://"+amAddr+"/api/v2/alerts", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("post alerts: %d %s", resp.StatusCode, b)
	}
}

func e2eAlert(pod string, startsAt time.Time, endsAt *time.Time) map[string]any {
	a := map[string]any{
		"labels":       map[string]string{"alertname": "E2ECrash", "pod": pod, "severity": "critical"},
		"annotations":  map[string]string{"summary": pod + " is crash looping"},
		"startsAt":     startsAt.Format(time.RFC3339Nano),
		"generatorURL": "http://prometheus.invalid/graph",
	}
	if endsAt != nil {
		a["endsAt"] = endsAt.Format(time.RFC3339Nano)
	}
	return a
}

func runsOf(t *testing.T, ctx context.Context, c *api.Client, runbook string) []*sbruntime.Execution {
	t.Helper()
	list, err := c.Executions(ctx, starbook.Filter{Runbook: runbook, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return list
}

// TestAlertmanager drives starbook with a real Alertmanager: each firing
// alert starts exactly one run per matching runbook however often
// Alertmanager repeats its notification, and resolving an alert delivers
// "resolved" to its run.
func TestAlertmanager(t *testing.T) {
	if testing.Short() {
		t.Skip("runs Alertmanager and the real binary")
	}
	bin, err := exec.LookPath("prometheus-alertmanager")
	if err != nil {
		if bin, err = exec.LookPath("alertmanager"); err != nil {
			t.Skip("Alertmanager is not installed (apt-get install prometheus-alertmanager; .ci/run installs it)")
		}
	}
	t.Setenv(api.EnvAlertmanagerToken, amToken)
	t.Setenv("E2E_HOOK_SECRET", hookSecret)
	d := startDaemon(t, t.TempDir()+"/node")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if _, err := d.Client.Apply(ctx, e2eRunbooks); err != nil {
		t.Fatal(err)
	}

	// Without the token, starbook refuses a notification, a valid one too.
	valid, err := os.ReadFile(filepath.Join("..", "testdata", "alertmanager", "valid_firing.json"))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(d.URL+"/hooks/alertmanager", "application/json", bytes.NewReader(valid))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("unauthenticated notification: %d, want 401", resp.StatusCode)
	}

	log := &notificationLog{target: d.URL, seen: map[string]int{}}
	log.cond = sync.NewCond(&log.mu)
	proxy := httptest.NewServer(log)
	defer proxy.Close()
	am := startAlertmanager(t, bin, proxy.URL)

	start := time.Now().Add(-time.Minute).UTC().Truncate(time.Second)
	postAlerts(t, am, []map[string]any{e2eAlert("api-1", start, nil), e2eAlert("api-2", start, nil), e2eAlert("web-1", start, nil)})
	// Wait for Alertmanager to repeat every group's notification twice.
	log.await(t, "three notifications per alert", func(seen map[string]int) bool {
		return seen["firing api-1"] >= 3 && seen["firing api-2"] >= 3 && seen["firing web-1"] >= 3
	})
	crash, inventory := runsOf(t, ctx, d.Client, "crash"), runsOf(t, ctx, d.Client, "inventory")
	if len(crash) != 2 || len(inventory) != 3 {
		t.Fatalf("%d crash runs (want 2: api-1, api-2) and %d inventory runs (want 3)", len(crash), len(inventory))
	}
	pods := map[string]string{}
	for _, e := range crash {
		var ev struct{ Labels map[string]string }
		if err := json.Unmarshal(e.Input, &ev); err != nil {
			t.Fatal(err)
		}
		if e.Trigger.Type != "alert" || e.Trigger.Attrs["alertname"] != "E2ECrash" || !strings.HasPrefix(ev.Labels["pod"], "api-") {
			t.Fatalf("crash run %s: trigger %+v, input %s", e.ID, e.Trigger, e.Input)
		}
		pods[ev.Labels["pod"]] = e.ID
	}

	// Resolve api-1: Alertmanager sends it resolved, its crash run gets the
	// signal and completes; api-2's run keeps waiting.
	ended := time.Now().Add(-time.Second).UTC()
	postAlerts(t, am, []map[string]any{e2eAlert("api-1", start, &ended)})
	e, _, err := d.Client.Wait(ctx, pods["api-1"], time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if e.Status != sbruntime.StatusCompleted || string(e.Result) != `{"pod":"api-1","resolved":true}` {
		t.Fatalf("api-1's run: %s %s %s", e.Status, e.Result, e.Error)
	}
	_, history, err := d.Client.Execution(ctx, pods["api-1"])
	if err != nil {
		t.Fatal(err)
	}
	if len(history) != 1 || history[0].Kind != "signal" || !strings.Contains(string(history[0].Result), `"by":"alertmanager"`) {
		t.Fatalf("api-1's history: %+v", history)
	}
	if e, _, _ := d.Client.Execution(ctx, pods["api-2"]); e.Status != sbruntime.StatusWaiting {
		t.Fatalf("api-2's run is %s, want waiting", e.Status)
	}
	// More repeats change nothing.
	log.mu.Lock()
	before := log.seen["firing api-2"]
	log.mu.Unlock()
	log.await(t, "two more repeats", func(seen map[string]int) bool { return seen["firing api-2"] >= before+2 })
	if c, i := runsOf(t, ctx, d.Client, "crash"), runsOf(t, ctx, d.Client, "inventory"); len(c) != 2 || len(i) != 3 {
		t.Fatalf("after repeats and a resolution: %d crash runs, %d inventory runs", len(c), len(i))
	}

	// A signed webhook with an Idempotency-Key starts one run however often
	// it is delivered; a bad signature starts none.
	body := []byte(`{"service":"api"}`)
	for i := range 3 {
		req, _ := http.NewRequest(http.MethodPost, d.URL+"/hooks/deploy-done", bytes.NewReader(body))
		req.Header.Set(triggers.SignatureHeader, triggers.Sign(hookSecret, body))
		req.Header.Set(triggers.IdempotencyHeader, "deploy-7")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if want := map[bool]int{true: 201, false: 200}[i == 0]; resp.StatusCode != want {
			t.Fatalf("delivery %d: %d, want %d", i, resp.StatusCode, want)
		}
	}
	req, _ := http.NewRequest(http.MethodPost, d.URL+"/hooks/deploy-done", bytes.NewReader(body))
	req.Header.Set(triggers.SignatureHeader, triggers.Sign("wrong", body))
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("bad signature: %v %v", resp, err)
	}
	if runs := runsOf(t, ctx, d.Client, "deploy"); len(runs) != 1 || runs[0].Trigger.Type != "webhook" {
		t.Fatalf("deploy runs: %+v", runs)
	}
}
