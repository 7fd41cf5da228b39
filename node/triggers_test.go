package node_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/starbook/starbook/builtins"
	"github.com/starbook/starbook/cluster"
	"github.com/starbook/starbook/node"
	sbruntime "github.com/starbook/starbook/runtime"
	"github.com/starbook/starbook/service"
	"github.com/starbook/starbook/triggers"
	"github.com/starbook/starbook/triggers/triggerstest"
)

// triggerEnv is an embedded etcd with a store, a service, the trigger store
// and a dispatcher; with run, also a node (the leader: one node).
type triggerEnv struct {
	emb   *cluster.Embedded
	store *cluster.Store
	svc   *service.Service
	tr    *cluster.Triggers
	d     *triggers.Dispatcher
	node  *node.Node
	stop  func()
}

func startTriggerEnv(t *testing.T, dir string, withNode bool, clock triggers.Clock) *triggerEnv {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	emb, err := cluster.StartEmbedded(ctx, cluster.EmbeddedConfig{Dir: dir, Fast: true, NoFsync: true})
	if err != nil {
		t.Fatal(err)
	}
	bi := builtins.New(builtins.Options{})
	store := cluster.NewStore(emb.Client, "/t/")
	env := &triggerEnv{emb: emb, store: store, svc: service.New(store, bi)}
	env.tr = cluster.NewTriggers(store, nil, nil)
	env.d = &triggers.Dispatcher{Index: env.tr.Index(), Starter: env.tr, Resolver: env.tr}
	done := make(chan error, 1)
	if withNode {
		cfg := node.Config{ID: "n1", Builtins: bi, SessionTTL: 2 * time.Second, StopGrace: time.Second, Clock: clock}
		if clock != nil {
			cfg.Now = clock.Now
		}
		env.node, err = node.New(ctx, store, cfg)
		if err != nil {
			t.Fatal(err)
		}
		go func() { done <- env.node.Run(ctx) }()
	} else {
		done <- nil
	}
	var once sync.Once
	env.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("node run: %v", err)
			}
			store.Close()
			emb.Close()
		})
	}
	t.Cleanup(env.stop)
	return env
}

func (env *triggerEnv) apply(t *testing.T, files map[string]string) {
	t.Helper()
	if _, err := env.svc.Apply(context.Background(), files); err != nil {
		t.Fatal(err)
	}
}

func readTestPayload(t *testing.T, name string) *triggers.Notification {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", "alertmanager", name))
	if err != nil {
		t.Fatal(err)
	}
	n, err := triggers.DecodeNotification(b)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestApplyCollectsTriggers(t *testing.T) {
	env := startTriggerEnv(t, t.TempDir(), false, nil)
	ctx := context.Background()
	env.apply(t, map[string]string{
		"crash.star": `
load("common.star", "SEVERITY")
trigger.alert(alertname = "KubePodCrashLooping", severity = SEVERITY, matchers = ['pod=~"api-.*"'],
              max_concurrent = 3, on_excess = "drop")
trigger.cron("*/5 * * * *", tz = "Europe/Paris")
trigger.webhook("deploy-done", secret_env = "DEPLOY_HOOK_SECRET", max_body_bytes = 4096)
def main(event):
    return event
`,
		"common.star": `SEVERITY = "critical"`,
		"plain.star":  "def main(event):\n    return 1\n",
	})
	b, _, err := env.store.Bundle(ctx, "crash", "")
	if err != nil {
		t.Fatal(err)
	}
	set, err := triggers.DecodeSet(b.Triggers)
	if err != nil {
		t.Fatal(err)
	}
	if len(set.Alerts) != 1 || len(set.Crons) != 1 || len(set.Webhooks) != 1 {
		t.Fatalf("triggers %s", b.Triggers)
	}
	if got := fmt.Sprint(set.Alerts[0].Matchers); got != `[alertname="KubePodCrashLooping" severity="critical" pod=~"api-.*"]` {
		t.Errorf("matchers %s", got)
	}
	if set.Alerts[0].Where != "crash.star:3:14" || set.Policy.MaxConcurrent != 3 || !set.Policy.Drop() {
		t.Errorf("alert %+v policy %+v", set.Alerts[0], set.Policy)
	}
	if c := set.Crons[0]; c.Spec != "*/5 * * * *" || c.TZ != "Europe/Paris" {
		t.Errorf("cron %+v", c)
	}
	if w := set.Webhooks[0]; w.Name != "deploy-done" || w.SecretEnv != "DEPLOY_HOOK_SECRET" || w.Limit() != 4096 {
		t.Errorf("webhook %+v", w)
	}
	if b, _, _ := env.store.Bundle(ctx, "plain", ""); len(b.Triggers) != 0 {
		t.Errorf("plain runbook has triggers %s", b.Triggers)
	}
	rbs, err := env.tr.Index().Runbooks(ctx)
	if err != nil || len(rbs) != 1 || rbs[0].Name != "crash" {
		t.Fatalf("index %v %v", rbs, err)
	}
}

func TestApplyRefusesBadTriggers(t *testing.T) {
	env := startTriggerEnv(t, t.TempDir(), false, nil)
	main := "\ndef main(event):\n    pass\n"
	tests := []struct {
		decl string
		want string
	}{
		{`trigger.alert(matchers = ['pod=~"("'])`, `x.star:1:14: trigger.alert: bad matcher "pod=~\"(\""`},
		{`trigger.alert(matchers = ['pod'])`, `x.star:1:14: trigger.alert: bad matcher "pod"`},
		{`trigger.alert()`, "x.star:1:14: trigger.alert: no label matcher"},
		{`trigger.alert("x")`, "takes keyword arguments only"},
		{`trigger.alert(alertname = 3)`, "label alertname: want a string, got int"},
		{`trigger.alert(alertname = "x", max_concurrent = "3")`, `for parameter "max_concurrent": got string, want int`},
		{`trigger.alert(alertname = "x", rate = "fast")`, `rate "fast": want COUNT/PERIOD`},
		{`trigger.alert(alertname = "x", on_excess = "panic")`, `on_excess="panic"`},
		{`trigger.alert(alertname = "x", on_excess = "drop")`, "needs max_concurrent= or rate="},
		{`trigger.cron("*/5 * * *")`, "x.star:1:13: trigger.cron: cron \"*/5 * * *\": expected exactly 5 fields"},
		{`trigger.cron("0 9 * * *", tz = "Europe/Pariss")`, `unknown time zone "Europe/Pariss"`},
		{`trigger.cron("0 9 * * *", catch_up = "some")`, `catch_up="some"`},
		{`trigger.cron("0 9 * * *", catch_up = "all", max_catch_up = -2)`, "max_catch_up=-2"},
		{`trigger.webhook("deploy")`, "x.star:1:16: trigger.webhook: webhook \"deploy\" has no authentication"},
		{`trigger.webhook("Deploy", token_env = "T")`, "webhook name"},
		{"trigger.webhook(\"a\", token_env = \"T\")\ntrigger.webhook(\"a\", token_env = \"T\")", "x.star:2:16: trigger.webhook: webhook \"a\" is already declared at x.star:1:16"},
		{"trigger.alert(alertname = \"a\", max_concurrent = 2)\ntrigger.cron(\"@hourly\", max_concurrent = 3)", "x.star:2:13: trigger.cron: max_concurrent=3 conflicts"},
		{"def f():\n    trigger.alert(alertname = 5)\nf()", "x.star:2:18: trigger.alert"},
		{"trigger.alert(alertname = \"a\")\nfail(\"boom\")", "its top level failed while its triggers were collected"},
		{`trigger.alert(alertname = "x", coalesce = True)`, "x.star:1:14: trigger.alert: coalesce=True needs group_by=[...]"},
		{`trigger.alert(alertname = "x", coalesce = "yes", group_by = ["service"])`, "x.star:1:14: trigger.alert: coalesce: want True or False, got string"},
		{`trigger.alert(alertname = "x", group_by = [])`, "x.star:1:14: trigger.alert: group_by=[]: give at least one label name"},
		{`trigger.alert(alertname = "x", group_by = "service")`, "x.star:1:14: trigger.alert: group_by: want a list of label names, got string"},
		{`trigger.alert(alertname = "x", group_by = ["service", 3])`, "x.star:1:14: trigger.alert: group_by[1]: want a label name (a string), got int"},
		{`trigger.alert(alertname = "x", group_by = ["bad-name"])`, `x.star:1:14: trigger.alert: group_by[0]="bad-name": want a label name`},
		{`trigger.alert(alertname = "x", group_by = ["a", "a"], coalesce = True)`, `x.star:1:14: trigger.alert: group_by[1]="a": the label is already in group_by`},
	}
	for _, tt := range tests {
		t.Run(tt.decl, func(t *testing.T) {
			_, err := env.svc.Apply(context.Background(), map[string]string{"x.star": tt.decl + main})
			var ie *sbruntime.InputError
			if !errors.As(err, &ie) {
				t.Fatalf("Apply = %v; want an InputError", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Apply error:\n%s\nwant it to contain:\n%s", err, tt.want)
			}
		})
	}
	if rbs, _ := env.store.CurrentVersions(context.Background()); len(rbs) != 0 {
		t.Fatalf("refused applies stored %v", rbs)
	}
}

const crashRunbook = `
trigger.alert(alertname = "KubePodCrashLooping", matchers = ['pod=~"api-.*"'])
def main(event):
    sig = wait_for_signal("resolved", timeout = "5m")
    return {"pod": event.labels["pod"], "resolved": not sig["timed_out"], "endsAt": sig["data"]["endsAt"] if sig["data"] else None}
`

func countExecutions(t *testing.T, s *cluster.Store, runbook string) []*sbruntime.Execution {
	t.Helper()
	list, err := s.Executions(context.Background(), cluster.ListFilter{Runbook: runbook, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return list
}

// TestAlertDedupAcrossRestart posts a notification, restarts etcd on the same
// data dir, posts it again: the second delivery starts nothing.
func TestAlertDedupAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	env := startTriggerEnv(t, dir, false, nil)
	env.apply(t, map[string]string{"crash.star": crashRunbook, "all.star": `
trigger.alert(severity = "critical")
def main(event):
    return event.fingerprint
`})
	ctx := context.Background()
	n := readTestPayload(t, "valid_firing.json")
	res, err := env.d.Alertmanager(ctx, n)
	if err != nil {
		t.Fatal(err)
	}
	statuses := map[string]int{}
	for _, s := range res.Executions {
		statuses[s.Runbook+" "+s.Status]++
	}
	// api-7f9c matches both runbooks; web-1 only "all".
	if statuses["crash started"] != 1 || statuses["all started"] != 2 || len(res.Executions) != 3 {
		t.Fatalf("first delivery: %+v", res.Executions)
	}
	crash := countExecutions(t, env.store, "crash")
	if len(crash) != 1 || crash[0].Trigger.Type != "alert" || crash[0].Trigger.Source != "c6a1f1e2b3d4a5f6" ||
		crash[0].Trigger.Attrs["alertname"] != "KubePodCrashLooping" {
		t.Fatalf("crash executions %+v", crash)
	}
	var input map[string]any
	if err := json.Unmarshal(crash[0].Input, &input); err != nil || input["labels"].(map[string]any)["pod"] != "api-7f9c" {
		t.Fatalf("input %s", crash[0].Input)
	}
	env.stop()

	env = startTriggerEnv(t, dir, false, nil)
	res, err = env.d.Alertmanager(ctx, n)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range res.Executions {
		if s.Status != triggers.StatusDuplicate || s.ID == "" {
			t.Fatalf("second delivery after restart: %+v", res.Executions)
		}
	}
	if got := len(countExecutions(t, env.store, "")); got != 3 {
		t.Fatalf("%d executions after the repeat, want 3", got)
	}
	// The same alert firing again later (a new startsAt) is a new run.
	n.Alerts[0].StartsAt = n.Alerts[0].StartsAt.Add(time.Hour)
	res, err = env.d.Alertmanager(ctx, n)
	if err != nil {
		t.Fatal(err)
	}
	if got := len(countExecutions(t, env.store, "crash")); got != 2 {
		t.Fatalf("%d crash runs after a new firing, want 2 (%+v)", got, res.Executions)
	}
}

// TestAlertStormManyDeliveries sends the same notifications from many
// goroutines at once: each alert starts exactly one run per runbook.
func TestAlertConcurrentDeliveries(t *testing.T) {
	env := startTriggerEnv(t, t.TempDir(), false, nil)
	env.apply(t, map[string]string{"any.star": "trigger.alert(matchers = ['alertname=~\"Storm.*\"'])\ndef main(event):\n    pass\n"})
	n := stormNotification(200)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			if _, err := env.d.Alertmanager(context.Background(), n); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	list := countExecutions(t, env.store, "any")
	seen := map[string]bool{}
	for _, e := range list {
		if seen[e.Trigger.Source] {
			t.Fatalf("alert %s started twice", e.Trigger.Source)
		}
		seen[e.Trigger.Source] = true
	}
	if len(list) != 200 {
		t.Fatalf("%d executions, want 200", len(list))
	}
}

func stormNotification(alerts int) *triggers.Notification {
	n := &triggers.Notification{Version: "4", Status: "firing", Receiver: "starbook"}
	start := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	for i := range alerts {
		n.Alerts = append(n.Alerts, &triggers.Alert{Status: "firing", StartsAt: start,
			Labels:      map[string]string{"alertname": "StormAlert", "instance": fmt.Sprintf("host-%d", i)},
			Fingerprint: fmt.Sprintf("%016x", i+1)})
	}
	return n
}

// awaitStore polls cond on every change under the store's prefix until it holds.
func awaitStore(t *testing.T, s *cluster.Store, what string, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	w := s.Client().Watch(ctx, s.Keys().Prefix(), clientv3.WithPrefix())
	for !cond() {
		select {
		case <-w:
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// TestResolvedReachesRun: a firing alert starts a run that waits for
// "resolved"; the resolved notification completes it, once.
func TestResolvedReachesRun(t *testing.T) {
	env := startTriggerEnv(t, t.TempDir(), true, nil)
	env.apply(t, map[string]string{"crash.star": crashRunbook})
	ctx := context.Background()
	res, err := env.d.Alertmanager(ctx, readTestPayload(t, "valid_firing.json"))
	if err != nil || len(res.Executions) != 1 {
		t.Fatalf("%+v %v", res, err)
	}
	id := res.Executions[0].ID
	awaitStore(t, env.store, "the run to wait", func() bool {
		e, _, err := env.store.Execution(ctx, id)
		return err == nil && e.Status == sbruntime.StatusWaiting
	})
	resolved := readTestPayload(t, "valid_resolved.json")
	for range 2 { // Alertmanager may send a resolved alert more than once
		res, err = env.d.Alertmanager(ctx, resolved)
		if err != nil {
			t.Fatal(err)
		}
	}
	end, err := env.store.AwaitEnd(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if end.Status != sbruntime.StatusCompleted || string(end.Result) != `{"endsAt":"2026-03-01T10:20:00Z","pod":"api-7f9c","resolved":true}` {
		t.Fatalf("run ended %s %s %s", end.Status, end.Result, end.Error)
	}
}

// TestPolicyQueueAndDrop: max_concurrent=1 queues the excess and starts it
// when the running one ends; on_excess="drop" records the excess as dropped.
func TestPolicyQueueAndDrop(t *testing.T) {
	env := startTriggerEnv(t, t.TempDir(), true, nil)
	env.apply(t, map[string]string{
		"serial.star": "trigger.alert(alertname = \"StormAlert\", max_concurrent = 1)\n" +
			"def main(event):\n    return wait_for_signal(\"go\")[\"name\"]\n",
		"dropper.star": "trigger.alert(alertname = \"StormAlert\", max_concurrent = 1, on_excess = \"drop\")\n" +
			"def main(event):\n    return wait_for_signal(\"go\")[\"name\"]\n",
	})
	ctx := context.Background()
	res, err := env.d.Alertmanager(ctx, stormNotification(3))
	if err != nil {
		t.Fatal(err)
	}
	byStatus := map[string][]string{}
	for _, s := range res.Executions {
		byStatus[s.Runbook+" "+s.Status] = append(byStatus[s.Runbook+" "+s.Status], s.ID)
		if s.Status != triggers.StatusStarted && !strings.Contains(s.Reason, "max_concurrent 1 reached") {
			t.Errorf("reason %q", s.Reason)
		}
	}
	if len(byStatus["serial started"]) != 1 || len(byStatus["serial queued"]) != 2 ||
		len(byStatus["dropper started"]) != 1 || len(byStatus["dropper dropped"]) != 2 {
		t.Fatalf("outcomes %v", byStatus)
	}
	for _, id := range byStatus["dropper dropped"] {
		e, _, _ := env.store.Execution(ctx, id)
		if e.Status != sbruntime.StatusCancelled || e.Error != "dropped: max_concurrent 1 reached" {
			t.Fatalf("dropped run %+v", e)
		}
	}
	queued := byStatus["serial queued"]
	for _, id := range queued {
		e, _, _ := env.store.Execution(ctx, id)
		if e.Status != sbruntime.StatusPending || e.Error != "queued: max_concurrent 1 reached" {
			t.Fatalf("queued run %+v", e)
		}
	}
	// The first run ends: the oldest queued one starts, and only it.
	first := byStatus["serial started"][0]
	awaitStore(t, env.store, "the first run to wait", func() bool {
		e, _, _ := env.store.Execution(ctx, first)
		return e.Status == sbruntime.StatusWaiting
	})
	if err := env.store.Signal(ctx, first, "go", nil, "test"); err != nil {
		t.Fatal(err)
	}
	awaitStore(t, env.store, "the oldest queued run to wait", func() bool {
		e, _, _ := env.store.Execution(ctx, queued[0])
		return e.Status == sbruntime.StatusWaiting && e.Error == ""
	})
	if e, _, _ := env.store.Execution(ctx, queued[1]); e.Status != sbruntime.StatusPending {
		t.Fatalf("second queued run is %s while the slot is taken", e.Status)
	}
	// Cancelling a queued run releases its place; ending the running one
	// then leaves nothing queued.
	if _, err := env.store.Cancel(ctx, queued[1]); err != nil {
		t.Fatal(err)
	}
	if err := env.store.Signal(ctx, queued[0], "go", nil, "test"); err != nil {
		t.Fatal(err)
	}
	awaitStore(t, env.store, "the slot and queue to empty", func() bool {
		resp, _ := env.store.Client().Txn(ctx).Then(
			clientv3.OpGet(key(env.store, "slots", "serial")+"/", clientv3.WithPrefix(), clientv3.WithCountOnly()),
			clientv3.OpGet(key(env.store, "queued", "serial")+"/", clientv3.WithPrefix(), clientv3.WithCountOnly())).Commit()
		return resp.Responses[0].GetResponseRange().Count == 0 && resp.Responses[1].GetResponseRange().Count == 0
	})
}

// TestPolicyRate: rate="2/m" starts two runs and queues the third until the
// window opens on the leader's clock.
func TestPolicyRate(t *testing.T) {
	clock := triggerstest.NewClock(time.Now())
	env := startTriggerEnv(t, t.TempDir(), true, clock)
	env.tr = cluster.NewTriggers(env.store, clock.Now, nil)
	env.d.Starter = env.tr
	env.apply(t, map[string]string{"limited.star": "trigger.alert(alertname = \"StormAlert\", rate = \"2/m\")\n" +
		"def main(event):\n    return 1\n"})
	ctx := context.Background()
	res, err := env.d.Alertmanager(ctx, stormNotification(3))
	if err != nil {
		t.Fatal(err)
	}
	if res.Executions[0].Status != "started" || res.Executions[1].Status != "started" ||
		res.Executions[2].Status != "queued" || res.Executions[2].Reason != "rate 2/m reached" {
		t.Fatalf("outcomes %+v", res.Executions)
	}
	third := res.Executions[2].ID
	awaitStore(t, env.store, "the first two runs to complete", func() bool {
		done := 0
		for _, s := range res.Executions[:2] {
			if e, _, _ := env.store.Execution(ctx, s.ID); e.Status == sbruntime.StatusCompleted {
				done++
			}
		}
		return done == 2
	})
	if e, _, _ := env.store.Execution(ctx, third); e.Status != sbruntime.StatusPending {
		t.Fatalf("third run %s inside the rate window", e.Status)
	}
	clock.Advance(61 * time.Second)
	if e, err := env.store.AwaitEnd(ctx, third); err != nil || e.Status != sbruntime.StatusCompleted {
		t.Fatalf("third run after the window: %+v %v", e, err)
	}
}

// TestCronFiresOnLeader applies a cron runbook on a one-node cluster whose
// leader runs on a manual clock: each tick fires once, recorded as a cron run.
func TestCronFiresOnLeader(t *testing.T) {
	start := time.Date(2026, 1, 15, 9, 59, 30, 0, time.UTC)
	clock := triggerstest.NewClock(start)
	env := startTriggerEnv(t, t.TempDir(), true, clock)
	env.store.SetClock(clock.Now) // the version's creation time is the cron baseline
	env.apply(t, map[string]string{"report.star": "trigger.cron(\"*/5 * * * *\")\ndef main(event):\n    return event.tick\n"})
	ctx := context.Background()
	for i, at := range []string{"10:00", "10:05"} {
		clock.WaitTimers(2) // the cron scheduler and the queue loop wait
		clock.Set(time.Date(2026, 1, 15, 10, 5*i, 0, 0, time.UTC))
		awaitStore(t, env.store, "tick "+at, func() bool { return len(countExecutions(t, env.store, "report")) == i+1 })
	}
	list := countExecutions(t, env.store, "report")
	for _, e := range list {
		if e.Trigger.Type != "cron" || e.Trigger.Source != "*/5 * * * *" {
			t.Fatalf("trigger %+v", e.Trigger)
		}
		if end, err := env.store.AwaitEnd(ctx, e.ID); err != nil || end.Status != sbruntime.StatusCompleted {
			t.Fatalf("cron run %+v %v", end, err)
		}
	}
	last, err := env.tr.LastTick(ctx, "report")
	if err != nil || !last.Equal(time.Date(2026, 1, 15, 10, 5, 0, 0, time.UTC)) {
		t.Fatalf("last tick %s %v", last, err)
	}
}

// TestCronTwoSchedulersRace runs two schedulers, as two leaders would for a
// moment, on one etcd and one clock: every tick fires once.
func TestCronTwoSchedulersRace(t *testing.T) {
	env := startTriggerEnv(t, t.TempDir(), false, nil)
	clock := triggerstest.NewClock(time.Date(2026, 1, 15, 9, 59, 0, 0, time.UTC))
	env.store.SetClock(clock.Now)
	env.apply(t, map[string]string{"job.star": "trigger.cron(\"* * * * *\")\ndef main(event):\n    pass\n"})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for range 2 {
		tr := cluster.NewTriggers(env.store, clock.Now, nil)
		wg.Go(func() { _ = (&triggers.Scheduler{Clock: clock, Store: tr, Index: tr.Index()}).Run(ctx) })
	}
	defer func() { cancel(); wg.Wait() }()
	for i := 1; i <= 5; i++ {
		clock.WaitTimers(2)
		clock.Set(time.Date(2026, 1, 15, 9, 59+i, 0, 0, time.UTC))
		awaitStore(t, env.store, fmt.Sprintf("tick %d", i), func() bool { return len(countExecutions(t, env.store, "job")) >= i })
	}
	clock.WaitTimers(2) // both handled the last tick
	list := countExecutions(t, env.store, "job")
	if len(list) != 5 {
		t.Fatalf("%d runs for 5 ticks", len(list))
	}
	ticks := map[string]bool{}
	for _, e := range list {
		if ticks[e.Trigger.Attrs["tick"]] {
			t.Fatalf("tick %s fired twice", e.Trigger.Attrs["tick"])
		}
		ticks[e.Trigger.Attrs["tick"]] = true
	}
}
