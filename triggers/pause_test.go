package triggers

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/starbook/starbook"
)

// keptDeadLetters is a DeadLetterer that keeps what it is given.
type keptDeadLetters struct {
	mu   sync.Mutex
	kept []Unstarted
	note chan Unstarted
}

func (k *keptDeadLetters) DeadLetter(_ context.Context, events []Unstarted) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.kept = append(k.kept, events...)
	for _, u := range events {
		if k.note != nil {
			k.note <- u
		}
	}
	return nil
}

var testPause = &starbook.PauseState{Runbook: "crashloop", Paused: true, By: "alice", Reason: "db migration"}

// TestDispatchPaused: a paused runbook's alert and webhook start nothing
// there and are kept as paused dead letters with their payload (one per
// alert and startsAt, or per Idempotency-Key), while the runbooks not
// paused start as before; a webhook only paused runbooks declare is
// answered with the pauses, not an error.
func TestDispatchPaused(t *testing.T) {
	ctx := context.Background()
	starter, dead := &recordingStarter{}, &keptDeadLetters{}
	var counted []string
	d := &Dispatcher{Starter: starter, DeadLetters: dead, Counted: func(rb, st string) { counted = append(counted, rb+":"+st) },
		Index: indexOf{
			{Name: "crashloop", Version: "v1", Set: alertSet(t, map[string]string{"alertname": "KubePodCrashLooping"}, `pod=~"api-.*"`), Pause: testPause},
			{Name: "all-critical", Version: "v2", Set: alertSet(t, nil, `severity="critical"`)},
		}}
	n, err := DecodeNotification(readPayload(t, "valid_firing.json"))
	if err != nil {
		t.Fatal(err)
	}
	res, err := d.Alertmanager(ctx, n)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range starter.starts {
		if s.Runbook == "crashloop" {
			t.Errorf("paused crashloop started: %+v", s)
		}
	}
	if len(starter.starts) != 2 || len(res.Paused) != 1 || res.Paused[0].Runbook != "crashloop" {
		t.Fatalf("starts %+v, result %+v", starter.starts, res)
	}
	if len(dead.kept) != 1 {
		t.Fatalf("dead letters %+v", dead.kept)
	}
	u := dead.kept[0]
	var ev alertEvent
	if u.Reason != starbook.ReasonPaused || u.Runbook != "crashloop" || u.Source != "alertmanager" || u.Fingerprint != "c6a1f1e2b3d4a5f6" ||
		u.DedupKey != "paused/crashloop/c6a1f1e2b3d4a5f6/1772359200" || json.Unmarshal(u.Payload, &ev) != nil || ev.Fingerprint != u.Fingerprint ||
		u.Detail != `runbook crashloop is paused by alice: "db migration"` {
		t.Errorf("dead letter %+v", u)
	}
	if strings.Join(counted, " ") != "crashloop:paused all-critical:started all-critical:started" {
		t.Errorf("counted %v", counted)
	}

	w, err := NewWebhook("deploy", "", "T", 0)
	if err != nil {
		t.Fatal(err)
	}
	set := &Set{}
	if err := set.AddWebhook(w, "x.star:1:1"); err != nil {
		t.Fatal(err)
	}
	all := &starbook.PauseState{Runbook: "deploy", Paused: true, By: "bob", All: true}
	d.Index, d.Env = indexOf{{Name: "deploy", Version: "v1", Set: set, Pause: all}}, env(map[string]string{"T": "token"})
	starter.starts, dead.kept = nil, nil
	body := []byte(`{"version":"1.2"}`)
	res, err = d.Webhook(ctx, "deploy", http.Header{"Authorization": {"Bearer token"}, IdempotencyHeader: {"k1"}}, body)
	if err != nil || len(res.Executions) != 0 || len(res.Paused) != 1 || len(starter.starts) != 0 {
		t.Fatalf("webhook of a paused runbook: %+v, %v (starts %v)", res, err, starter.starts)
	}
	if u := dead.kept[0]; u.Reason != starbook.ReasonPaused || string(u.Payload) != string(body) || u.Source != "webhook:deploy" ||
		!strings.HasPrefix(u.DedupKey, "paused/webhook/deploy/deploy/") || !strings.Contains(u.Detail, "every runbook is") {
		t.Errorf("webhook dead letter %+v", u)
	}
	// Not authenticated: refused as before, nothing kept.
	dead.kept = nil
	if _, err := d.Webhook(ctx, "deploy", http.Header{"Authorization": {"Bearer nope"}}, body); err == nil || len(dead.kept) != 0 {
		t.Errorf("unauthenticated webhook: %v, kept %v", err, dead.kept)
	}
}
