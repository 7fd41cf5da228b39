package node_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/starbook/starbook/cluster"
	"github.com/starbook/starbook/observe"
	sbruntime "github.com/starbook/starbook/runtime"
	"github.com/starbook/starbook/triggers"
)

const stormRunbook = `
trigger.alert(alertname = "Storm", group_by = ["alertname", "service"], coalesce = True)
def main(event):
    wait_for_signal("done")
    return event.labels["service"]
`

// stormAlert is alert i of the storm: service svc-<i mod groups>.
func stormAlert(i, groups int, status string) *triggers.Alert {
	a := &triggers.Alert{Status: status,
		Labels:      map[string]string{"alertname": "Storm", "service": fmt.Sprintf("svc-%d", i%groups), "instance": fmt.Sprint(i)},
		Annotations: map[string]string{"summary": "storm"}, StartsAt: time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC),
		Fingerprint: fmt.Sprintf("%016x", i)}
	if status == triggers.AlertResolved {
		a.EndsAt = a.StartsAt.Add(time.Hour)
	}
	return a
}

func stormPayload(alerts ...*triggers.Alert) *triggers.Notification {
	return &triggers.Notification{Version: "4", Status: alerts[0].Status, Receiver: "starbook", Alerts: alerts}
}

// TestCoalescedAlertStorm sends 10,000 alerts in 10 groups, in payloads of
// 100, every payload twice (Alertmanager retries), from 8 goroutines through
// two dispatchers over two stores on one etcd (two nodes): exactly 10 runs
// start, and the other 9,990 alerts are kept for them as "alert" signals,
// none lost and none twice.
func TestCoalescedAlertStorm(t *testing.T) {
	env := startTriggerEnv(t, t.TempDir(), true, nil)
	env.apply(t, map[string]string{"storm.star": stormRunbook})
	ctx := context.Background()
	store2 := cluster.NewStore(env.emb.Client, "/t/")
	defer store2.Close()
	tr2 := cluster.NewTriggers(store2, nil, nil)
	// Both nodes count what each alert did (starbook_alerts_total).
	metrics := observe.NewMetrics()
	d2 := &triggers.Dispatcher{Index: tr2.Index(), Starter: tr2, Resolver: tr2, Counted: metrics.AlertCounted}
	env.d.Counted = metrics.AlertCounted

	const total, groups, perPayload, senders = 10_000, 10, 100, 8
	payloads := total / perPayload
	var next atomic.Int64
	var mu sync.Mutex
	statuses := map[string]int{}
	var wg sync.WaitGroup
	for g := range senders {
		d := env.d
		if g%2 == 1 {
			d = d2
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for job := int(next.Add(1)) - 1; job < 2*payloads; job = int(next.Add(1)) - 1 {
				p := job % payloads // every payload twice, the repeats interleaved
				alerts := make([]*triggers.Alert, perPayload)
				for i := range alerts {
					alerts[i] = stormAlert(p*perPayload+i, groups, triggers.AlertFiring)
				}
				res, err := d.Alertmanager(ctx, stormPayload(alerts...))
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				for _, s := range res.Executions {
					statuses[s.Status]++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	if statuses[triggers.StatusStarted] != groups || statuses[triggers.StatusCoalesced] != total-groups ||
		statuses[triggers.StatusDuplicate] != total || len(statuses) != 3 {
		t.Fatalf("outcomes %v: want %d started, %d coalesced, %d duplicates", statuses, groups, total-groups, total)
	}
	if err := testutil.GatherAndCompare(metrics.Registry, strings.NewReader(fmt.Sprintf(`
# HELP starbook_alerts_total %s
# TYPE starbook_alerts_total counter
starbook_alerts_total{runbook="storm",status="coalesced"} %d
starbook_alerts_total{runbook="storm",status="duplicate"} %d
starbook_alerts_total{runbook="storm",status="started"} %d
`, alertsHelp(t, metrics), total-groups, total, groups)), "starbook_alerts_total"); err != nil {
		t.Error(err)
	}
	runs := countExecutions(t, env.store, "storm")
	if len(runs) != groups {
		t.Fatalf("%d runs, want %d", len(runs), groups)
	}
	var kept int64
	services := map[string]bool{}
	for _, e := range runs {
		if e.Trigger.Attrs[triggers.AttrGroup] == "" {
			t.Fatalf("run %s has no group: %+v", e.ID, e.Trigger)
		}
		var in struct {
			Labels map[string]string `json:"labels"`
		}
		if err := json.Unmarshal(e.Input, &in); err != nil {
			t.Fatal(err)
		}
		services[in.Labels["service"]] = true
		n := countKeys(t, env.store, env.store.Keys().Prefix()+"signals/"+e.ID+"/alert/")
		if n != total/groups-1 {
			t.Errorf("run %s (%s) holds %d alert signals, want %d", e.ID, in.Labels["service"], n, total/groups-1)
		}
		kept += n
	}
	if kept != total-groups || len(services) != groups {
		t.Fatalf("%d alert signals kept for %d services, want %d for %d", kept, len(services), total-groups, groups)
	}
	if n := countKeys(t, env.store, env.store.Keys().Prefix()+"groups/storm/"); n != groups {
		t.Fatalf("%d group keys, want %d", n, groups)
	}
}

// TestCoalescedGroupLifecycle: a live group's resolved alert reaches its run
// as "resolved"; a run that ends releases its group, and the group's next
// alert starts a new run.
func TestCoalescedGroupLifecycle(t *testing.T) {
	env := startTriggerEnv(t, t.TempDir(), true, nil)
	env.apply(t, map[string]string{"storm.star": stormRunbook})
	ctx := context.Background()
	send := func(alerts ...*triggers.Alert) *triggers.Result {
		t.Helper()
		res, err := env.d.Alertmanager(ctx, stormPayload(alerts...))
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	// Alerts 0 and 2 are one group (svc-0), 1 another (svc-1).
	res := send(stormAlert(0, 2, triggers.AlertFiring), stormAlert(1, 2, triggers.AlertFiring), stormAlert(2, 2, triggers.AlertFiring))
	if len(res.Executions) != 3 || res.Executions[0].Status != triggers.StatusStarted ||
		res.Executions[1].Status != triggers.StatusStarted || res.Executions[2].Status != triggers.StatusCoalesced ||
		res.Executions[2].ID != res.Executions[0].ID {
		t.Fatalf("first payload: %+v", res.Executions)
	}
	first := res.Executions[0].ID

	// A resolved alert of a live group: "resolved" to its run, once.
	for range 2 {
		res = send(stormAlert(2, 2, triggers.AlertResolved))
	}
	if n := countKeys(t, env.store, env.store.Keys().Prefix()+"signals/"+first+"/resolved/"); n != 1 {
		t.Fatalf("%d resolved signals kept for %s, want 1 (result %+v)", n, first, res)
	}
	// A resolved alert of a group without a run reaches nobody, starts nothing.
	res = send(stormAlert(5, 10, triggers.AlertResolved))
	if len(res.Executions) != 0 || len(res.Resolved) != 0 {
		t.Fatalf("resolved alert of no group: %+v", res)
	}

	// The run ends: its group is released with its end.
	awaitPendingWait(t, env.store, first)
	if err := env.store.Signal(ctx, first, "done", nil, "test"); err != nil {
		t.Fatal(err)
	}
	ctxEnd, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	end, err := env.svc.AwaitEnd(ctxEnd, first)
	if err != nil || end.Status != sbruntime.StatusCompleted {
		t.Fatalf("end of %s: %+v, %v", first, end, err)
	}
	if n := countKeys(t, env.store, env.store.Keys().Prefix()+"groups/storm/"); n != 1 {
		t.Fatalf("%d group keys after one of two runs ended, want 1", n)
	}
	res = send(stormAlert(4, 2, triggers.AlertFiring))
	if len(res.Executions) != 1 || res.Executions[0].Status != triggers.StatusStarted || res.Executions[0].ID == first {
		t.Fatalf("alert of a released group: %+v", res.Executions)
	}
	if got := len(countExecutions(t, env.store, "storm")); got != 3 {
		t.Fatalf("%d runs, want 3", got)
	}

	// A run cancelled while parked releases its group too.
	second := res.Executions[0].ID
	awaitPendingWait(t, env.store, second)
	if _, err := env.store.Cancel(ctx, second); err != nil {
		t.Fatal(err)
	}
	if _, err := env.svc.AwaitEnd(ctxEnd, second); err != nil {
		t.Fatal(err)
	}
	res = send(stormAlert(6, 2, triggers.AlertFiring))
	if len(res.Executions) != 1 || res.Executions[0].Status != triggers.StatusStarted {
		t.Fatalf("alert of a group released by a cancel: %+v", res.Executions)
	}
}

// alertsHelp is starbook_alerts_total's help text, as registered.
func alertsHelp(t *testing.T, m *observe.Metrics) string {
	t.Helper()
	families, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == "starbook_alerts_total" {
			return f.GetHelp()
		}
	}
	t.Fatal("starbook_alerts_total is not registered")
	return ""
}
