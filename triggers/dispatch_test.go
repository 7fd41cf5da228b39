package triggers

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	sbruntime "github.com/starbook/starbook/runtime"
)

type recordingStarter struct{ starts []Start }

func (r *recordingStarter) Start(_ context.Context, starts []Start) ([]Started, error) {
	r.starts = append(r.starts, starts...)
	out := make([]Started, len(starts))
	for i, s := range starts {
		out[i] = Started{Runbook: s.Runbook, ID: "id-" + s.Runbook, Status: StatusStarted}
	}
	return out, nil
}

type recordingResolver struct{ fps []string }

func (r *recordingResolver) Resolve(_ context.Context, fp string, _ time.Time, data json.RawMessage) ([]string, error) {
	r.fps = append(r.fps, fp)
	return []string{"run-of-" + fp}, nil
}

type indexOf []Runbook

func (x indexOf) Runbooks(context.Context) ([]Runbook, error) { return x, nil }

func alertSet(t *testing.T, labels map[string]string, matchers ...string) *Set {
	t.Helper()
	a, err := NewAlert(labels, matchers)
	if err != nil {
		t.Fatal(err)
	}
	s := &Set{}
	if err := s.AddAlert(a, "x.star:1:1"); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestDispatchAlertmanager(t *testing.T) {
	starter, resolver := &recordingStarter{}, &recordingResolver{}
	d := &Dispatcher{Starter: starter, Resolver: resolver, Index: indexOf{
		{Name: "crashloop", Version: "v1", Set: alertSet(t, map[string]string{"alertname": "KubePodCrashLooping"}, `pod=~"api-.*"`)},
		{Name: "all-critical", Version: "v2", Set: alertSet(t, nil, `severity="critical"`)},
		{Name: "unrelated", Version: "v3", Set: alertSet(t, map[string]string{"alertname": "DiskFull"})},
	}}
	n, err := DecodeNotification(readPayload(t, "valid_firing.json"))
	if err != nil {
		t.Fatal(err)
	}
	res, err := d.Alertmanager(context.Background(), n)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range starter.starts {
		got = append(got, s.Runbook+"@"+s.Version+" "+s.Dedup.Scope+"/"+s.Dedup.Key)
		if s.Trigger.Type != TypeAlert || s.Trigger.Source != s.Fingerprint || s.Dedup.TTL != AlertDedupTTL {
			t.Errorf("start %+v", s)
		}
	}
	sort.Strings(got)
	want := []string{
		"all-critical@v2 alert/all-critical/0a1b2c3d4e5f6071/1772359260",
		"all-critical@v2 alert/all-critical/c6a1f1e2b3d4a5f6/1772359200",
		"crashloop@v1 alert/crashloop/c6a1f1e2b3d4a5f6/1772359200",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("starts\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if len(res.Executions) != 3 || len(resolver.fps) != 0 {
		t.Fatalf("result %+v, resolved %v", res, resolver.fps)
	}

	r, _ := DecodeNotification(readPayload(t, "valid_resolved.json"))
	starter.starts = nil
	res, err = d.Alertmanager(context.Background(), r)
	if err != nil {
		t.Fatal(err)
	}
	if len(starter.starts) != 0 || strings.Join(resolver.fps, ",") != "c6a1f1e2b3d4a5f6" ||
		len(res.Resolved) != 1 || res.Resolved[0].Executions[0] != "run-of-c6a1f1e2b3d4a5f6" {
		t.Fatalf("resolved: starts %v, resolver %v, result %+v", starter.starts, resolver.fps, res)
	}
}

// A notification that lists one alert twice (Alertmanager does not, a proxy
// or a hand-written payload may) starts it once per runbook.
func TestDispatchAlertmanagerRepeatedAlert(t *testing.T) {
	starter := &recordingStarter{}
	d := &Dispatcher{Starter: starter, Index: indexOf{
		{Name: "crashloop", Version: "v1", Set: alertSet(t, nil, `pod=~"api-.*"`)},
		{Name: "all-critical", Version: "v2", Set: alertSet(t, nil, `severity="critical"`)},
	}}
	n, err := DecodeNotification(readPayload(t, "repeated_alert.json"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Alertmanager(context.Background(), n); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, s := range starter.starts {
		keys = append(keys, s.Dedup.Key)
	}
	if want := "crashloop/c6a1f1e2b3d4a5f6/1772359200 all-critical/c6a1f1e2b3d4a5f6/1772359200"; strings.Join(keys, " ") != want {
		t.Fatalf("dedup keys %v, want %s", keys, want)
	}
}

func TestDispatchWebhook(t *testing.T) {
	hook := func(name, secret, token string, max int64) *Set {
		w, err := NewWebhook(name, secret, token, max)
		if err != nil {
			t.Fatal(err)
		}
		s := &Set{}
		if err := s.AddWebhook(w, "x.star:1:1"); err != nil {
			t.Fatal(err)
		}
		return s
	}
	starter := &recordingStarter{}
	d := &Dispatcher{Starter: starter, Env: env(map[string]string{"S": "secret", "T": "token"}), Index: indexOf{
		{Name: "deploy", Version: "v1", Set: hook("deploy-done", "S", "", 32)},
		{Name: "notify", Version: "v1", Set: hook("deploy-done", "S", "", 0)},
		{Name: "ci", Version: "v1", Set: hook("ci", "", "T", 0)},
	}}
	ctx := context.Background()
	body := []byte(`{"service":"api"}`)
	signed := http.Header{SignatureHeader: {Sign("secret", body)}, IdempotencyHeader: {"deploy-42"}}
	res, err := d.Webhook(ctx, "deploy-done", signed, body)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Executions) != 2 || len(starter.starts) != 2 {
		t.Fatalf("result %+v", res)
	}
	for _, s := range starter.starts {
		if string(s.Input) != string(body) || s.Dedup == nil || s.Dedup.TTL != WebhookDedupTTL ||
			!strings.HasPrefix(s.Dedup.Key, "deploy-done/"+s.Runbook+"/") || strings.Contains(s.Dedup.Key, "deploy-42") ||
			s.Trigger.Attrs["idempotency_key"] != "deploy-42" || s.Trigger.Attrs["auth"] != "hmac" {
			t.Errorf("start %+v dedup %+v", s, s.Dedup)
		}
	}

	checkErr := func(name string, h http.Header, body []byte, target any, want string) {
		t.Helper()
		_, err := d.Webhook(ctx, name, h, body)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("%s: %v; want %q", name, err, want)
		}
		if target != nil && !errors.As(err, target) {
			t.Fatalf("%s: %T is not %T", name, err, target)
		}
	}
	var ae *AuthError
	var ie *sbruntime.InputError
	var tl *TooLargeError
	checkErr("nope", signed, body, nil, "no runbook declares")
	if _, err := d.Webhook(ctx, "nope", signed, body); !errors.Is(err, ErrUnknownHook) {
		t.Fatalf("unknown hook: %v", err)
	}
	checkErr("deploy-done", http.Header{SignatureHeader: {Sign("wrong", body)}}, body, &ae, "signature does not match")
	checkErr("ci", http.Header{"Authorization": {"Bearer nope"}}, body, &ae, "invalid bearer token")
	bad := []byte(`{"service":`)
	checkErr("ci", http.Header{"Authorization": {"Bearer token"}}, bad, &ie, "not valid JSON")
	checkErr("ci", http.Header{"Authorization": {"Bearer token"}, IdempotencyHeader: {"a\x01b"}}, body, &ie, "invalid Idempotency-Key")

	// Over deploy's 32-byte cap: notify (default cap) still starts.
	big := []byte(`{"service":"api","padding":"xxxxxxxxxxxxxxxxxxxx"}`)
	starter.starts = nil
	res, err = d.Webhook(ctx, "deploy-done", http.Header{SignatureHeader: {Sign("secret", big)}}, big)
	if err != nil || len(res.Executions) != 1 || res.Executions[0].Runbook != "notify" || starter.starts[0].Dedup != nil {
		t.Fatalf("big body: %+v, %v", res, err)
	}
	d.Index = indexOf{{Name: "deploy", Version: "v1", Set: hook("deploy-done", "S", "", 32)}}
	checkErr("deploy-done", http.Header{SignatureHeader: {Sign("secret", big)}}, big, &tl, "at most 32 bytes")
}
