package triggers

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	sbruntime "github.com/starbook/starbook/runtime"
)

// FuzzAlertmanagerDispatch decodes a payload and, when it is accepted, sends
// it through the dispatcher against runbooks with every kind of matcher: no
// input panics, every start is deduplicated on (runbook, fingerprint,
// startsAt), and each start's alert matches its runbook.
func FuzzAlertmanagerDispatch(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join(payloads, "*.json"))
	if len(files) == 0 {
		f.Fatalf("no seeds in %s", payloads)
	}
	for _, file := range files {
		b, _ := os.ReadFile(file)
		f.Add(b, `pod=~"api-.*"`)
	}
	f.Add([]byte(`{"version":"4","status":"firing","alerts":[{"status":"firing","labels":{"alertname":"A","pod":"api-1"},`+
		`"startsAt":"2026-03-01T12:00:00Z","fingerprint":"abc"}]}`), `pod!~"(a|b"`)
	f.Fuzz(func(t *testing.T, body []byte, matcher string) {
		n, err := DecodeNotification(body)
		if err != nil {
			return
		}
		sets := []*Set{}
		for _, ms := range [][]string{{matcher}, {`alertname=~".+"`}, {`severity!="info"`, `pod=~"api-.*"`}} {
			a, err := NewAlert(nil, ms)
			if err != nil {
				continue // a bad matcher is refused at apply
			}
			s := &Set{}
			if err := s.AddAlert(a, "x.star:1:1"); err != nil {
				t.Fatal(err)
			}
			sets = append(sets, s)
		}
		var index indexOf
		for i, s := range sets {
			index = append(index, Runbook{Name: string(rune('a' + i)), Version: "v", Set: s})
		}
		starter, resolver := &recordingStarter{}, &recordingResolver{}
		d := &Dispatcher{Index: index, Starter: starter, Resolver: resolver}
		if _, err := d.Alertmanager(context.Background(), n); err != nil {
			t.Fatalf("dispatch of an accepted payload: %v", err)
		}
		seen := map[string]bool{}
		for _, s := range starter.starts {
			if s.Dedup == nil || seen[s.Dedup.Key] {
				t.Fatalf("start %+v: no dedup key, or twice", s)
			}
			seen[s.Dedup.Key] = true
			if !strings.HasPrefix(s.Dedup.Key, s.Runbook+"/"+s.Fingerprint+"/") {
				t.Fatalf("dedup key %q of %s", s.Dedup.Key, s.Runbook)
			}
		}
	})
}

// FuzzWebhookAuthenticate drives the whole webhook path with arbitrary
// headers, bodies and secrets: nothing panics, a request is accepted only
// with the right signature or token, and an accepted body is valid JSON.
func FuzzWebhookAuthenticate(f *testing.F) {
	f.Add([]byte(`{"a":1}`), "hook-secret", "sha256=00", "Bearer x", "key-1")
	f.Add([]byte(""), "s", "", "", "")
	f.Add([]byte("\xff"), "s", "sha256="+strings.Repeat("ab", 32), "bearer s", strings.Repeat("k", 300))
	f.Fuzz(func(t *testing.T, body []byte, secret, sig, authz, key string) {
		env := func(name string) (string, bool) {
			if name == "HOOK_SECRET" || name == "HOOK_TOKEN" {
				return secret, secret != ""
			}
			return "", false
		}
		hmacHook, err := NewWebhook("signed", "HOOK_SECRET", "", 0)
		if err != nil {
			t.Fatal(err)
		}
		tokenHook, err := NewWebhook("tokened", "", "HOOK_TOKEN", 1024)
		if err != nil {
			t.Fatal(err)
		}
		index := indexOf{
			{Name: "s", Version: "v", Set: &Set{Webhooks: []*WebhookTrigger{hmacHook}}},
			{Name: "t", Version: "v", Set: &Set{Webhooks: []*WebhookTrigger{tokenHook}}},
		}
		h := http.Header{}
		h.Set(SignatureHeader, sig)
		h.Set("Authorization", authz)
		h.Set(IdempotencyHeader, key)
		for _, name := range []string{"signed", "tokened", "unknown"} {
			starter := &recordingStarter{}
			d := &Dispatcher{Index: index, Starter: starter, Env: env}
			res, err := d.Webhook(context.Background(), name, h, body)
			if err != nil {
				var ae *AuthError
				var ce *ConfigError
				var tl *TooLargeError
				var ie *sbruntime.InputError
				if !errors.As(err, &ae) && !errors.As(err, &ce) && !errors.As(err, &tl) && !errors.As(err, &ie) &&
					!errors.Is(err, ErrUnknownHook) {
					t.Fatalf("%s: error %T %v", name, err, err)
				}
				continue
			}
			switch name {
			case "signed":
				if VerifySignature(h, body, secret) != nil {
					t.Fatalf("accepted a bad signature %q", sig)
				}
			case "tokened":
				if VerifyBearer(h, secret) != nil {
					t.Fatalf("accepted a bad token %q", authz)
				}
			default:
				t.Fatal("an unknown hook started something")
			}
			if len(res.Executions) != 1 || len(starter.starts) != 1 {
				t.Fatalf("%s: %+v", name, res)
			}
		}
	})
}
