package ui_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/starbook/starbook"
	"github.com/starbook/starbook/api"
	"github.com/starbook/starbook/builtins"
	"github.com/starbook/starbook/cluster"
	"github.com/starbook/starbook/node"
	sbruntime "github.com/starbook/starbook/runtime"
	"github.com/starbook/starbook/service"
	"github.com/starbook/starbook/triggers"
	"github.com/starbook/starbook/ui"
)

// startNodeWithHooks is startNode with the Alertmanager hook served.
func startNodeWithHooks(t *testing.T) (*service.Service, string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	emb, err := cluster.StartEmbedded(ctx, cluster.EmbeddedConfig{Dir: t.TempDir(), Fast: true, NoFsync: true})
	if err != nil {
		t.Fatal(err)
	}
	bi := builtins.New(builtins.Options{})
	store := cluster.NewStore(emb.Client, "/uipause/")
	worker, err := node.New(ctx, store, node.Config{ID: "ui-node", Builtins: bi, SessionTTL: 2 * time.Second, StopGrace: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	svc := service.New(store, bi)
	svc.Node = worker
	done := make(chan error, 1)
	go func() { done <- worker.Run(ctx) }()
	tr := cluster.NewTriggers(store, nil, nil)
	tr.RunOn(worker)
	mux := http.NewServeMux()
	ui.Mount(mux)
	mux.Handle("/", api.NewHandler(svc, nil, api.WithHooks(&triggers.Dispatcher{Index: tr.Index(), Starter: tr, Resolver: tr,
		DeadLetters: tr}, api.AlertmanagerAuth{})))
	srv := httptest.NewServer(mux)
	t.Cleanup(func() {
		srv.Close()
		cancel()
		<-done
		store.Close()
		emb.Close()
	})
	return svc, srv.URL
}

// TestUIPauseAndReplay: pause a runbook from its page (a banner says who and
// why); an alert for it then starts nothing and is kept as a paused dead
// letter; resume it from its page, replay the dead letter from the Dead
// letters page, and the run it starts is the alert's.
func TestUIPauseAndReplay(t *testing.T) {
	svc, base := startNodeWithHooks(t)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	if _, err := svc.Apply(ctx, map[string]string{"crash.star": `
# Restart a crash-looping pod.
trigger.alert(alertname = "Crash")

def main(event):
    return "restarted " + event["labels"]["pod"]
`}); err != nil {
		t.Fatal(err)
	}
	b := browse(ctx, t, 1280, 1000)
	b.do("open the runbook", chromedp.Navigate(base+"/ui/#/runbooks/crash"),
		chromedp.WaitReady(chromedp.CSS(`#pause[data-state="running"]`)))
	b.click(`#pause details.pause-form summary`)
	b.do("give a reason", chromedp.WaitVisible(chromedp.CSS(`#pause .pause-reason`)),
		chromedp.SendKeys(chromedp.CSS(`#pause .pause-reason`), "db migration"),
		chromedp.SendKeys(chromedp.CSS(`#who`), "alice"))
	b.click(`#pause button.pause`)
	b.do("see the banner", chromedp.WaitVisible(chromedp.CSS(`#pause .banner.paused button.resume`)))
	if got := b.text(`#pause .banner`); !strings.Contains(got, "by alice") || !strings.Contains(got, "db migration") || !strings.Contains(got, "until resumed") {
		t.Errorf("banner = %q", got)
	}
	if st, err := svc.PauseState(ctx, "crash"); err != nil || !st.Paused || st.Reason != "db migration" || st.By != "alice" {
		t.Fatalf("after Pause: %+v, %v", st, err)
	}
	b.do("the list marks it", chromedp.Navigate(base+"/ui/#/runbooks"),
		chromedp.WaitVisible(chromedp.CSS(`#runbooks tr[data-runbook="crash"] .s-paused`)))

	// An alert while paused: nothing starts, a paused dead letter keeps it.
	alert := `{"version": "4", "status": "firing", "receiver": "starbook", "groupKey": "{}:{alertname=\"Crash\"}",
		"alerts": [{"status": "firing", "labels": {"alertname": "Crash", "pod": "api-1"}, "annotations": {},
		"startsAt": "` + time.Now().UTC().Format(time.RFC3339) + `", "endsAt": "0001-01-01T00:00:00Z", "fingerprint": "c0ffee01"}]}`
	resp, err := http.Post(base+"/hooks/alertmanager", "application/json", strings.NewReader(alert))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("alert: %d", resp.StatusCode)
	}
	if list, _ := svc.Executions(ctx, starbook.Filter{Runbook: "crash", Limit: 10}); len(list) != 0 {
		t.Fatalf("a paused runbook's alert started %d runs", len(list))
	}
	dls, err := svc.DeadLetters(ctx, starbook.DeadLetterFilter{Reason: starbook.ReasonPaused, Limit: 10})
	if err != nil || len(dls) != 1 {
		t.Fatalf("paused dead letters: %v, %v", dls, err)
	}
	row := `#dead-letters tr[data-id="` + dls[0].ID + `"]`
	b.do("the dead letter", chromedp.Navigate(base+"/ui/#/dead-letters"),
		chromedp.WaitVisible(chromedp.CSS(row+`[data-reason="paused"] button.replay`)))

	// Resume, then replay: the alert's run starts, once.
	b.do("back to the runbook", chromedp.Navigate(base+"/ui/#/runbooks/crash"),
		chromedp.WaitVisible(chromedp.CSS(`#pause .banner.paused button.resume`)))
	b.click(`#pause button.resume`)
	b.do("resumed", chromedp.WaitReady(chromedp.CSS(`#pause[data-state="running"]`)))
	b.do("the dead letters again", chromedp.Navigate(base+"/ui/#/dead-letters"),
		chromedp.WaitVisible(chromedp.CSS(row+` button.replay`)))
	b.click(row + ` button.replay`)
	b.do("replayed", chromedp.WaitVisible(chromedp.CSS(row+` .dl-status[data-done]`)))
	if got := b.text(row + ` .dl-status`); !strings.HasPrefix(got, "replayed: ") {
		t.Fatalf("Replay says %q", got)
	}
	list, err := svc.Executions(ctx, starbook.Filter{Runbook: "crash", Limit: 10})
	if err != nil || len(list) != 1 {
		t.Fatalf("after the replay: %d runs (%v)", len(list), err)
	}
	end, err := svc.AwaitEnd(ctx, list[0].ID)
	if err != nil || end.Status != sbruntime.StatusCompleted || string(end.Result) != `"restarted api-1"` {
		t.Errorf("the replayed run: %+v, %v", end, err)
	}
	var input struct {
		Labels map[string]string `json:"labels"`
	}
	if err := json.Unmarshal(end.Input, &input); err != nil || input.Labels["pod"] != "api-1" {
		t.Errorf("the replayed run's input %s", end.Input)
	}
	// The log names who paused and resumed, and the replay.
	b.do("the audit log", chromedp.Navigate(base+"/ui/#/audit"), chromedp.WaitVisible(chromedp.CSS(`#audit tbody tr`)))
	if log := b.text("#audit"); !strings.Contains(log, "runbook.pause") || !strings.Contains(log, "deadletter.replay") {
		t.Errorf("audit page lacks the pause or the replay:\n%s", log)
	}
}
