package main

import (
	"bytes"
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/starbook/starbook"
	"github.com/starbook/starbook/api"
	"github.com/starbook/starbook/api/apitest"
	"github.com/starbook/starbook/auth"
	sbruntime "github.com/starbook/starbook/runtime"
)

// cliAgainst runs the command line against a handler (cli builds its own).
func cliAgainst(t *testing.T, h *httptest.Server, stdin string, args ...string) result {
	t.Helper()
	resetFlags(rootCmd)
	var stdout, stderr bytes.Buffer
	code := execute(context.Background(), append([]string{"--server", h.URL}, args...), strings.NewReader(stdin), &stdout, &stderr)
	return result{stdout: stdout.String(), stderr: stderr.String(), code: code}
}

func TestTokenCommands(t *testing.T) {
	res := cli(t, &apitest.Service{}, "", "token", "new", "--name", "alice", "--role", "Operator")
	if res.code != 0 {
		t.Fatalf("token new: %d %s", res.code, res.stderr)
	}
	tokens, err := auth.ParseFile([]byte("tokens:\n" + res.stdout))
	if err != nil || len(tokens) != 1 || tokens[0].Name != "alice" || tokens[0].Role != auth.Operator {
		t.Fatalf("entry %q: %+v %v", res.stdout, tokens, err)
	}
	tok := strings.TrimSpace(res.stderr[strings.LastIndex(res.stderr, " ")+1:])
	if auth.Hash(tok) != tokens[0].SHA256 || strings.Contains(res.stdout, tok) {
		t.Fatalf("token %q does not match its entry, or is in it", tok)
	}
	res = cli(t, &apitest.Service{}, tok+"\n", "token", "hash")
	if res.code != 0 || strings.TrimSpace(res.stdout) != tokens[0].SHA256 {
		t.Fatalf("token hash: %d %q %s", res.code, res.stdout, res.stderr)
	}
	if res := cli(t, &apitest.Service{}, "", "token", "new", "--name", "a b", "--role", "admin"); res.code != 1 {
		t.Fatalf("a bad name accepted: %s", res.stdout)
	}
	if res := cli(t, &apitest.Service{}, "", "token", "new", "--name", "a", "--role", "root"); res.code != 1 || !strings.Contains(res.stderr, "unknown role") {
		t.Fatalf("a bad role: %d %s", res.code, res.stderr)
	}
}

// TestClientSendsToken: --token, else STARBOOK_TOKEN, goes as a bearer
// token; the server's 401 and 403 come back as clear errors.
func TestClientSendsToken(t *testing.T) {
	const opTok, viewTok = "operator-token-0123456789", "viewer-token-0123456789"
	a, err := auth.New([]auth.Token{{Name: "op", Role: auth.Operator, SHA256: auth.Hash(opTok)},
		{Name: "viewer", Role: auth.Viewer, SHA256: auth.Hash(viewTok)}})
	if err != nil {
		t.Fatal(err)
	}
	svc := &apitest.Service{
		ExecutionsFunc: func(context.Context, starbook.Filter) ([]*sbruntime.Execution, error) { return nil, nil },
		CancelFunc: func(_ context.Context, id string) (*sbruntime.Execution, error) {
			return &sbruntime.Execution{ID: id, Status: sbruntime.StatusCancelled}, nil
		},
	}
	srv := httptest.NewServer(api.NewHandler(svc, nil, api.WithAuth(a)))
	defer srv.Close()
	t.Setenv("STARBOOK_TOKEN", "")
	if res := cliAgainst(t, srv, "", "ls"); res.code != 1 || !strings.Contains(res.stderr, "authentication required") {
		t.Errorf("no token: %d %s", res.code, res.stderr)
	}
	if res := cliAgainst(t, srv, "", "--token", viewTok, "ls"); res.code != 0 {
		t.Errorf("--token: %d %s", res.code, res.stderr)
	}
	if res := cliAgainst(t, srv, "", "--token", viewTok, "cancel", "E1"); res.code != 1 ||
		!strings.Contains(res.stderr, "forbidden: viewer has role viewer, which may not cancel") {
		t.Errorf("viewer cancels: %d %s", res.code, res.stderr)
	}
	t.Setenv("STARBOOK_TOKEN", opTok)
	if res := cliAgainst(t, srv, "", "cancel", "E1"); res.code != 0 {
		t.Errorf("STARBOOK_TOKEN: %d %s", res.code, res.stderr)
	}
	if res := cliAgainst(t, srv, "", "--ca-cert", "/nonexistent.pem", "ls"); res.code != 1 || !strings.Contains(res.stderr, "--ca-cert") {
		t.Errorf("a missing CA file: %d %s", res.code, res.stderr)
	}
}

func TestAuditCommand(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	svc := &apitest.AuditService{Service: &apitest.Service{},
		AuditFunc: func(_ context.Context, after string, limit int) ([]*starbook.AuditRecord, error) {
			if after != "A0" || limit != 2 {
				t.Errorf("Audit(%q, %d)", after, limit)
			}
			return []*starbook.AuditRecord{
				{ID: "A1", Time: t0, Actor: "alice", Role: "operator", Action: "execution.start", Runbook: "deploy",
					Execution: "E1", Remote: "10.0.0.1:5555", Status: 201, Outcome: "ok"},
				{ID: "A2", Time: t0, Actor: "bob", Role: "viewer", Action: "execution.cancel", Execution: "E1",
					Status: 403, Outcome: "denied", Error: "forbidden"},
			}, nil
		}}
	res := cli(t, svc, "", "audit", "--after", "A0", "--limit", "2")
	lines := strings.Split(strings.TrimSpace(res.stdout), "\n")
	if res.code != 0 || len(lines) != 3 || !strings.Contains(lines[1], "alice") || !strings.Contains(lines[1], "deploy/E1") ||
		!strings.Contains(lines[1], "ok 201") || !strings.Contains(lines[2], "denied 403") {
		t.Fatalf("audit: %d\n%s%s", res.code, res.stdout, res.stderr)
	}
	res = cli(t, svc, "", "audit", "--after", "A0", "--limit", "2", "--json")
	if res.code != 0 || !strings.Contains(res.stdout, `"next": "A2"`) {
		t.Fatalf("audit --json: %s", res.stdout)
	}
	if res := cli(t, svc, "", "audit", "--limit", "0"); res.code != 1 {
		t.Fatal("--limit 0 accepted")
	}
}

func TestServeRefusesBadSecurityFlags(t *testing.T) {
	for _, tc := range []struct {
		f      securityFlags
		listen string
		env    string
		want   string
	}{
		{securityFlags{}, "0.0.0.0:7070", "", "refusing to serve 0.0.0.0:7070 without authentication"},
		{securityFlags{}, ":7070", "", "refusing to serve :7070"},
		{securityFlags{}, "127.0.0.1:7070", "a:admin:short", "shorter than 16"},
		{securityFlags{authFile: "/nonexistent"}, "127.0.0.1:7070", "", "auth file"},
		{securityFlags{tlsCert: "/nonexistent.pem"}, "127.0.0.1:7070", "", "--tls-cert/--tls-key"},
		{securityFlags{triggerRate: "fast"}, "127.0.0.1:7070", "", "--trigger-rate"},
		{securityFlags{maxActive: -1}, "127.0.0.1:7070", "", "--max-active-executions"},
		{securityFlags{bodies: api.Limits{Body: 10 << 20}}, "127.0.0.1:7070", "", "max body"},
	} {
		t.Setenv(auth.EnvTokens, tc.env)
		if tc.env == "" {
			t.Setenv(auth.EnvTokens, "")
		}
		_, err := tc.f.load(tc.listen)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v on %s: %v, want %q", tc.f, tc.listen, err, tc.want)
		}
	}
	t.Setenv(auth.EnvTokens, "ops:operator:ops-token-0123456789")
	f := securityFlags{triggerRate: "10/m"}
	s, err := f.load("0.0.0.0:7070")
	if err != nil || s.auth.Len() != 1 || f.defaultPolicy.Rate.Count != 10 {
		t.Fatalf("with a token: %+v, %v", s, err)
	}
}
