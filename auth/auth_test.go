package auth_test

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/starbook/starbook/auth"
)

func TestPermissionTable(t *testing.T) {
	want := map[auth.Role]string{
		auth.Viewer:   "read",
		auth.Operator: "read run cancel signal",
		auth.Approver: "read decide",
		auth.Admin:    "read run cancel signal decide decide_as apply audit",
	}
	all := []auth.Permission{auth.Read, auth.Run, auth.Cancel, auth.Signal, auth.Decide, auth.DecideAs, auth.Apply, auth.Audit}
	for _, r := range auth.Roles {
		var got []string
		for _, p := range all {
			if auth.Allowed(r, p) {
				got = append(got, string(p))
			}
		}
		if strings.Join(got, " ") != want[r] {
			t.Errorf("%s may %q, want %q", r, strings.Join(got, " "), want[r])
		}
	}
	if auth.Allowed("root", auth.Read) {
		t.Error("an unknown role may read")
	}
}

func TestAuthenticate(t *testing.T) {
	a, err := auth.New([]auth.Token{
		{Name: "alice", Role: auth.Operator, SHA256: auth.Hash("alice-token-0123456789")},
		{Name: "bob", Role: "Approver", SHA256: strings.ToUpper(auth.Hash("bob-token-0123456789"))},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !a.Enabled() || a.Len() != 2 {
		t.Fatalf("enabled %v, %d tokens", a.Enabled(), a.Len())
	}
	for _, tc := range []struct {
		token string
		want  auth.Principal
		ok    bool
	}{
		{"alice-token-0123456789", auth.Principal{Name: "alice", Role: auth.Operator}, true},
		{"bob-token-0123456789", auth.Principal{Name: "bob", Role: auth.Approver}, true},
		{"alice-token-012345678", auth.Principal{}, false},
		{"", auth.Principal{}, false},
		{auth.Hash("alice-token-0123456789"), auth.Principal{}, false}, // the hash is not the token
	} {
		got, ok := a.Authenticate(tc.token)
		if ok != tc.ok || got != tc.want {
			t.Errorf("Authenticate(%q) = %+v, %v; want %+v, %v", tc.token, got, ok, tc.want, tc.ok)
		}
	}
	for _, tc := range []struct {
		header string
		err    string
	}{
		{"", "authentication required"},
		{"Basic YWxpY2U6eA==", "unsupported Authorization scheme"},
		{"Bearer nope-nope-nope-nope", "invalid token"},
		{"bearer  alice-token-0123456789 ", ""},
	} {
		r, _ := http.NewRequest("GET", "/", nil)
		if tc.header != "" {
			r.Header.Set("Authorization", tc.header)
		}
		_, err := a.Request(r)
		if (err == nil) != (tc.err == "") || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("Request(%q) = %v, want %q", tc.header, err, tc.err)
		}
	}
	var none *auth.Authenticator
	if none.Enabled() {
		t.Error("nil authenticator enabled")
	}
	if _, ok := none.Authenticate("x"); ok {
		t.Error("nil authenticator accepted a token")
	}
}

func TestNewRefusesBadTokens(t *testing.T) {
	h := auth.Hash("some-token-0123456789")
	for _, tc := range []struct {
		tokens []auth.Token
		want   string
	}{
		{[]auth.Token{{Role: auth.Admin, SHA256: h}}, "a name is required"},
		{[]auth.Token{{Name: "a b", Role: auth.Admin, SHA256: h}}, "names are letters"},
		{[]auth.Token{{Name: "a", Role: "root", SHA256: h}}, `unknown role "root"`},
		{[]auth.Token{{Name: "a", Role: auth.Admin, SHA256: "abc"}}, "64 hex digits"},
		{[]auth.Token{{Name: "a", Role: auth.Admin, SHA256: h}, {Name: "A", Role: auth.Viewer, SHA256: auth.Hash("x")}}, "used twice"},
		{[]auth.Token{{Name: "a", Role: auth.Admin, SHA256: h}, {Name: "b", Role: auth.Viewer, SHA256: h}}, "configured twice"},
	} {
		if _, err := auth.New(tc.tokens); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%+v) = %v, want %q", tc.tokens, err, tc.want)
		}
	}
}

func TestLoadFile(t *testing.T) {
	dir := t.TempDir()
	h := auth.Hash("file-token-0123456789")
	for _, tc := range []struct {
		name, content, err string
	}{
		{"ok.yaml", "tokens:\n  - name: alice\n    role: admin\n    sha256: " + h + "\n", ""},
		{"ok.json", `{"tokens": [{"name": "alice", "role": "admin", "sha256": "` + h + `"}]}`, ""},
		{"plain.yaml", "tokens:\n  - name: alice\n    role: admin\n    token: secret\n", "never the token itself"},
		{"unknown.yaml", "tokens: []\nusers: []\n", "unknown field"},
		{"dup.yaml", "tokens: []\ntokens: []\n", "already set"},
		{"bad.yaml", "tokens: [", "yaml"},
	} {
		p := filepath.Join(dir, tc.name)
		if err := os.WriteFile(p, []byte(tc.content), 0o600); err != nil {
			t.Fatal(err)
		}
		tokens, err := auth.LoadFile(p)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: err %v, want %q", tc.name, err, tc.err)
			}
			continue
		}
		if err != nil || len(tokens) != 1 || tokens[0] != (auth.Token{Name: "alice", Role: auth.Admin, SHA256: h}) {
			t.Errorf("%s: %+v, %v", tc.name, tokens, err)
		}
	}
	if _, err := auth.LoadFile(filepath.Join(dir, "missing")); err == nil {
		t.Error("missing file accepted")
	}
}

func TestParseEnv(t *testing.T) {
	tokens, err := auth.ParseEnv("alice:operator:tok-with:colons-0123, bob:viewer:bob-token-0123456789\ncarol:admin:carol-token-012345678")
	if err != nil {
		t.Fatal(err)
	}
	if len(tokens) != 3 || tokens[0].SHA256 != auth.Hash("tok-with:colons-0123") || tokens[1].Name != "bob" || tokens[2].Role != auth.Admin {
		t.Fatalf("got %+v", tokens)
	}
	for _, tc := range []struct{ in, err string }{
		{"alice:operator", "want name:role:token"},
		{":admin:xxxxxxxxxxxxxxxxxxxx", "want name:role:token"},
		{"alice:admin:short", "shorter than 16"},
	} {
		if _, err := auth.ParseEnv(tc.in); err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("ParseEnv(%q) = %v, want %q", tc.in, err, tc.err)
		}
		if _, err := auth.ParseEnv(tc.in); err != nil && strings.Contains(err.Error(), "xxxxxxxx") {
			t.Errorf("error shows the token: %v", err)
		}
	}
	if tokens, err := auth.ParseEnv(""); err != nil || len(tokens) != 0 {
		t.Errorf("empty: %v %v", tokens, err)
	}
}

func TestNewToken(t *testing.T) {
	a, b := auth.NewToken(), auth.NewToken()
	if a == b || !strings.HasPrefix(a, "sb_") || len(a) < 40 {
		t.Fatalf("tokens %q %q", a, b)
	}
}
