package main

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestServeRefusesHalfSSO: single sign-on configured by halves, or with an
// issuer that cannot be discovered, stops serve with a message saying what
// is missing; the client secret is never in it.
func TestServeRefusesHalfSSO(t *testing.T) {
	dir := t.TempDir()
	authFile := filepath.Join(dir, "auth.yaml")
	if err := os.WriteFile(authFile, []byte("tokens: []\npeople:\n  - {name: alice, role: admin, email: alice@example.com}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	gone := httptest.NewServer(http.NotFoundHandler()) // an issuer with no openid-configuration
	defer gone.Close()
	const secret = "client-secret-never-shown"
	for _, tc := range []struct {
		name, env string
		args      []string
		want      string
		started   bool // the data dir exists: the failure came after etcd started
	}{
		{"issuer only", "", []string{"--oidc-issuer", gone.URL}, "missing --oidc-client-id, --oidc-client-secret (or $STARBOOK_OIDC_CLIENT_SECRET), --auth-file", false},
		{"no issuer", secret, []string{"--oidc-client-id", "starbook", "--auth-file", authFile}, "missing --oidc-issuer", false},
		{"no auth file", secret, []string{"--oidc-issuer", gone.URL, "--oidc-client-id", "starbook"}, "missing --auth-file", false},
		{"bad public URL", secret, []string{"--oidc-issuer", gone.URL, "--oidc-client-id", "starbook", "--auth-file", authFile,
			"--public-url", "starbook.example.com"}, "--public-url", false},
		{"short session", secret, []string{"--oidc-issuer", gone.URL, "--oidc-client-id", "starbook", "--auth-file", authFile,
			"--ui-session-ttl", "10s"}, "--ui-session-ttl 10s", false},
		{"issuer not discovered", secret, []string{"--oidc-issuer", gone.URL, "--oidc-client-id", "starbook", "--auth-file", authFile},
			"--oidc-issuer: discover OpenID provider " + gone.URL, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(envOIDCClientSecret, tc.env)
			if tc.env == "" {
				os.Unsetenv(envOIDCClientSecret)
			}
			data := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-"))
			res := cli(t, nil, "", append([]string{"serve", "--data-dir", data, "--listen", "127.0.0.1:0"}, tc.args...)...)
			if res.code != 1 || !strings.Contains(res.stderr, tc.want) {
				t.Fatalf("exit %d, stderr %q; want 1 and %q", res.code, res.stderr, tc.want)
			}
			if strings.Contains(res.stderr, secret) {
				t.Errorf("the client secret is in the output: %s", res.stderr)
			}
			if _, err := os.Stat(data); (err == nil) != tc.started {
				t.Errorf("data dir exists: %v, want %v", err == nil, tc.started)
			}
		})
	}
}
