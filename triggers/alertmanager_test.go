package triggers

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	sbruntime "github.com/starbook/starbook/runtime"
)

// payloads holds the Alertmanager payloads shared with other packages' tests.
var payloads = filepath.Join("..", "testdata", "alertmanager")

func readPayload(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(payloads, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDecodeNotificationValid(t *testing.T) {
	n, err := DecodeNotification(readPayload(t, "valid_firing.json"))
	if err != nil {
		t.Fatal(err)
	}
	if n.Status != AlertFiring || n.Receiver != "starbook" || len(n.Alerts) != 2 {
		t.Fatalf("decoded %+v", n)
	}
	a := n.Alerts[0]
	want := time.Date(2026, 3, 1, 10, 0, 0, 123456789, time.UTC)
	if !a.StartsAt.Equal(want) || !a.EndsAt.IsZero() || a.Fingerprint != "c6a1f1e2b3d4a5f6" || a.Labels["pod"] != "api-7f9c" {
		t.Fatalf("alert %+v", a)
	}
	var ev map[string]any
	if err := json.Unmarshal(n.Event(a), &ev); err != nil {
		t.Fatal(err)
	}
	if ev["labels"].(map[string]any)["pod"] != "api-7f9c" || ev["receiver"] != "starbook" || ev["status"] != "firing" {
		t.Fatalf("event %v", ev)
	}

	r, err := DecodeNotification(readPayload(t, "valid_resolved.json"))
	if err != nil {
		t.Fatal(err)
	}
	if r.Alerts[0].Status != AlertResolved || r.Alerts[0].EndsAt.IsZero() {
		t.Fatalf("resolved alert %+v", r.Alerts[0])
	}
}

func TestDecodeNotificationInvalid(t *testing.T) {
	tests := []struct {
		file string
		want string
	}{
		{"malformed.json", "unexpected end of JSON"},
		{"wrong_version.json", `unsupported Alertmanager payload version "3"`},
		{"missing_version.json", `missing "version"`},
		{"missing_alerts.json", `missing "alerts"`},
		{"empty_alerts.json", `"alerts" is empty`},
		{"missing_fingerprint.json", `alerts[0]: missing "fingerprint"`},
		{"missing_labels.json", `alerts[0]: missing "labels"`},
		{"bad_startsat.json", `alerts[0]: startsAt "yesterday": want an RFC 3339 time`},
		{"zero_startsat.json", `alerts[0]: startsAt "0001-01-01T00:00:00Z"`},
		{"bad_alert_status.json", `alerts[0]: status "burning"`},
		{"bad_fingerprint.json", `fingerprint "../../etc": want hexadecimal digits`},
		{"labels_not_strings.json", `field "alerts.labels": got a JSON number`},
		{"not_object.json", "where an object was expected"},
		{"trailing_data.json", "unexpected data after the JSON object"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			n, err := DecodeNotification(readPayload(t, tt.file))
			if err == nil {
				t.Fatalf("decoded %+v; want an error", n)
			}
			var ie *sbruntime.InputError
			if !errors.As(err, &ie) {
				t.Fatalf("error %T %v is not an InputError", err, err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q does not contain %q", err, tt.want)
			}
		})
	}
	if _, err := DecodeNotification(nil); err == nil || !strings.Contains(err.Error(), "empty body") {
		t.Fatalf("empty body: %v", err)
	}
}

// FuzzAlertmanagerPayload checks that no input panics the decoder and that
// whatever it accepts satisfies what the dispatcher relies on.
func FuzzAlertmanagerPayload(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join(payloads, "*.json"))
	if len(files) == 0 {
		f.Fatalf("no seeds in %s", payloads)
	}
	for _, file := range files {
		b, _ := os.ReadFile(file)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		n, err := DecodeNotification(body)
		if err != nil {
			var ie *sbruntime.InputError
			if !errors.As(err, &ie) {
				t.Fatalf("error %T is not an InputError: %v", err, err)
			}
			return
		}
		if n.Version != "4" || len(n.Alerts) == 0 {
			t.Fatalf("accepted %+v", n)
		}
		for _, a := range n.Alerts {
			if a.Fingerprint == "" || !isHex(a.Fingerprint) || strings.ToLower(a.Fingerprint) != a.Fingerprint ||
				len(a.Fingerprint) > 64 || a.StartsAt.Unix() <= 0 || len(a.Labels) == 0 {
				t.Fatalf("accepted alert %+v", a)
			}
			if a.Status != AlertFiring && a.Status != AlertResolved {
				t.Fatalf("accepted status %q", a.Status)
			}
			if !json.Valid(n.Event(a)) {
				t.Fatalf("event of %+v is not JSON", a)
			}
		}
	})
}
