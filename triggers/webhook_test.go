package triggers

import (
	"errors"
	"net/http"
	"strings"
	"testing"
)

func env(vars map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
}

func TestWebhookSignature(t *testing.T) {
	hook, err := NewWebhook("deploy-done", "HOOK_SECRET", "", 64)
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(`{"service":"api","version":"1.2.3"}`)
	vars := env(map[string]string{"HOOK_SECRET": "s3cret"})
	tests := []struct {
		name    string
		header  http.Header
		body    []byte
		wantErr string
	}{
		{name: "valid", header: http.Header{SignatureHeader: {Sign("s3cret", body)}}, body: body},
		{name: "github form", header: http.Header{GitHubSignatureHeader: {Sign("s3cret", body)}}, body: body},
		{name: "upper-case hex", header: http.Header{SignatureHeader: {"sha256=" + strings.ToUpper(Sign("s3cret", body)[7:])}}, body: body},
		{name: "wrong secret", header: http.Header{SignatureHeader: {Sign("other", body)}}, body: body, wantErr: "signature does not match"},
		{name: "missing header", header: http.Header{}, body: body, wantErr: "missing signature"},
		{name: "truncated body", header: http.Header{SignatureHeader: {Sign("s3cret", body)}}, body: body[:len(body)-3], wantErr: "signature does not match"},
		{name: "truncated signature", header: http.Header{SignatureHeader: {Sign("s3cret", body)[:40]}}, body: body, wantErr: "malformed signature"},
		{name: "other algorithm", header: http.Header{SignatureHeader: {"sha1=" + Sign("s3cret", body)[7:]}}, body: body, wantErr: "malformed signature"},
		{name: "no algorithm", header: http.Header{SignatureHeader: {Sign("s3cret", body)[7:]}}, body: body, wantErr: "malformed signature"},
		{name: "bearer instead", header: http.Header{"Authorization": {"Bearer s3cret"}}, body: body, wantErr: "missing signature"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			method, err := hook.Authenticate(tt.header, tt.body, vars)
			if tt.wantErr == "" {
				if err != nil || method != "hmac" {
					t.Fatalf("Authenticate = %q, %v; want hmac, nil", method, err)
				}
				return
			}
			var ae *AuthError
			if !errors.As(err, &ae) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Authenticate = %v; want an AuthError containing %q", err, tt.wantErr)
			}
			if strings.Contains(err.Error(), "s3cret") || strings.Contains(err.Error(), Sign("s3cret", tt.body)[7:]) {
				t.Fatalf("error %q leaks the secret or the expected signature", err)
			}
		})
	}
	// A node without the secret refuses everything, as a configuration error.
	_, err = hook.Authenticate(http.Header{SignatureHeader: {Sign("", body)}}, body, env(nil))
	var ce *ConfigError
	if !errors.As(err, &ce) || ce.Env != "HOOK_SECRET" {
		t.Fatalf("missing secret: %v", err)
	}
}

func TestWebhookBearer(t *testing.T) {
	hook, err := NewWebhook("ci", "", "CI_TOKEN", 0)
	if err != nil {
		t.Fatal(err)
	}
	vars := env(map[string]string{"CI_TOKEN": "tok-123"})
	for _, tt := range []struct {
		auth    string
		wantErr string
	}{
		{"Bearer tok-123", ""},
		{"bearer tok-123", ""},
		{"Bearer tok-12", "invalid bearer token"},
		{"Bearer tok-1234", "invalid bearer token"},
		{"Basic dG9rLTEyMw==", "want Bearer"},
		{"", "missing Authorization"},
	} {
		h := http.Header{}
		if tt.auth != "" {
			h.Set("Authorization", tt.auth)
		}
		method, err := hook.Authenticate(h, nil, vars)
		if tt.wantErr == "" {
			if err != nil || method != "bearer" {
				t.Errorf("%q: %q, %v", tt.auth, method, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("%q: %v; want %q", tt.auth, err, tt.wantErr)
		}
	}
}

func TestNewWebhookRefuses(t *testing.T) {
	for _, tt := range []struct {
		name, secret, token string
		max                 int64
		want                string
	}{
		{"deploy", "", "", 0, "no authentication"},
		{"deploy", "A", "B", 0, "not both"},
		{"Deploy", "A", "", 0, "webhook name"},
		{"a/b", "A", "", 0, "webhook name"},
		{"alertmanager", "A", "", 0, "reserved"},
		{"deploy", "A=B", "", 0, "not an environment variable"},
		{"deploy", "A", "", MaxWebhookBody + 1, "max_body_bytes"},
	} {
		if _, err := NewWebhook(tt.name, tt.secret, tt.token, tt.max); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("NewWebhook(%q, %q, %q, %d) = %v; want %q", tt.name, tt.secret, tt.token, tt.max, err, tt.want)
		}
	}
}

// FuzzWebhookSignature checks that verification never panics, always accepts
// the body's own signature and never accepts another body's.
func FuzzWebhookSignature(f *testing.F) {
	f.Add([]byte(`{"a":1}`), "secret", "sha256=00")
	f.Add([]byte(""), "", "")
	f.Add([]byte("x"), "k", "sha256="+strings.Repeat("zz", 32))
	f.Add([]byte("payload"), "k", "SHA256="+strings.Repeat("ab", 32))
	f.Fuzz(func(t *testing.T, body []byte, secret, header string) {
		h := http.Header{}
		h.Set(SignatureHeader, header)
		err := VerifySignature(h, body, secret)
		if err == nil && !strings.EqualFold(strings.TrimSpace(header), Sign(secret, body)) {
			t.Fatalf("accepted %q for body %q", header, body)
		}
		h.Set(SignatureHeader, Sign(secret, body))
		if err := VerifySignature(h, body, secret); err != nil {
			t.Fatalf("own signature refused: %v", err)
		}
		other := append([]byte("x"), body...)
		if err := VerifySignature(h, other, secret); err == nil {
			t.Fatal("another body's signature accepted")
		}
	})
}
