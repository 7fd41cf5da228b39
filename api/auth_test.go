package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/starbook/starbook"
	"github.com/starbook/starbook/api"
	"github.com/starbook/starbook/api/apitest"
	"github.com/starbook/starbook/auth"
	sbruntime "github.com/starbook/starbook/runtime"
)

// tokens of the test authenticator, one per role.
var roleTokens = map[auth.Role]string{
	auth.Viewer:   "viewer-token-0123456789",
	auth.Operator: "operator-token-0123456789",
	auth.Approver: "approver-token-0123456789",
	auth.Admin:    "admin-token-0123456789",
}

func testAuth(t *testing.T) *auth.Authenticator {
	t.Helper()
	var tokens []auth.Token
	for role, tok := range roleTokens {
		tokens = append(tokens, auth.Token{Name: string(role) + "-user", Role: role, SHA256: auth.Hash(tok)})
	}
	a, err := auth.New(tokens)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// reachable is a fake whose every method answers "not found": a request that
// gets a 404 passed authentication and authorisation.
func reachable() *apitest.AuditService {
	nf := fmt.Errorf("fake: %w", sbruntime.ErrNotFound)
	svc := &apitest.Service{
		ApplyFunc:      func(context.Context, map[string]string) ([]starbook.RunbookVersion, error) { return nil, nf },
		RunbooksFunc:   func(context.Context) ([]starbook.RunbookVersion, error) { return nil, nf },
		ExecutionsFunc: func(context.Context, starbook.Filter) ([]*sbruntime.Execution, error) { return nil, nf },
		StartFunc: func(context.Context, string, json.RawMessage, sbruntime.Trigger) (*sbruntime.Execution, error) {
			return nil, nf
		},
		ExecutionFunc: func(context.Context, string) (*sbruntime.Execution, []*sbruntime.Event, error) { return nil, nil, nf },
		CancelFunc:    func(context.Context, string) (*sbruntime.Execution, error) { return nil, nf },
		HealthFunc:    func(context.Context) error { return nil },
		SignalFunc:    func(context.Context, string, string, json.RawMessage, string) error { return nf },
		DecideFunc: func(context.Context, string, string, sbruntime.Decision) (*sbruntime.ApprovalState, error) {
			return nil, nf
		},
		WaitsFunc: func(context.Context, starbook.WaitFilter) ([]*starbook.PendingWait, error) { return nil, nf },
	}
	return &apitest.AuditService{Service: svc,
		RecordAuditFunc: func(context.Context, *starbook.AuditRecord) error { return nil },
		AuditFunc:       func(context.Context, string, int) ([]*starbook.AuditRecord, error) { return nil, nf },
	}
}

// routes lists every API route with a request that reaches its handler.
var routes = []struct {
	method, path, body string
	perm               auth.Permission
}{
	{"GET", "/api/v1/whoami", "", auth.Read},
	{"GET", "/api/v1/cluster", "", auth.Read},
	{"GET", "/api/v1/runbooks", "", auth.Read},
	{"GET", "/api/v1/executions", "", auth.Read},
	{"GET", "/api/v1/executions/e1", "", auth.Read},
	{"GET", "/api/v1/approvals", "", auth.Read},
	{"GET", "/api/v1/waits", "", auth.Read},
	{"GET", "/api/v1/audit", "", auth.Audit},
	{"GET", "/api/v1/slo", "", auth.Read},
	{"POST", "/api/v1/runbooks", `{"files": {"a.star": "def main(e): pass"}}`, auth.Apply},
	{"POST", "/api/v1/executions", `{"runbook": "a"}`, auth.Run},
	{"POST", "/api/v1/runbooks/a/executions", ``, auth.Run},
	{"POST", "/api/v1/executions/e1/cancel", ``, auth.Cancel},
	{"POST", "/api/v1/executions/e1/signals/go", ``, auth.Signal},
	{"POST", "/api/v1/executions/e1/approve", `{"decision": "approve"}`, auth.Decide},
	{"POST", "/api/v1/executions/e1/approvals/3", `{"decision": "reject"}`, auth.Decide},
	{"GET", "/api/v1/dead-letters", "", auth.Read},
	{"POST", "/api/v1/dead-letters/e1/ack", `{"comment": "seen"}`, auth.Cancel},
	{"POST", "/api/v1/executions/e1/redrive", `{"from": "start"}`, auth.Run},
	{"GET", "/api/v1/pauses", "", auth.Read},
	{"GET", "/api/v1/pause", "", auth.Read},
	{"POST", "/api/v1/pause", `{"paused": true}`, auth.Pause},
	{"GET", "/api/v1/runbooks/a/pause", "", auth.Read},
	{"POST", "/api/v1/runbooks/a/pause", `{"paused": true, "reason": "freeze"}`, auth.Pause},
	{"POST", "/api/v1/dead-letters/e1/replay", ``, auth.Run},
}

func do(t *testing.T, h http.Handler, method, path, body, token string, hdr ...string) *httptest.ResponseRecorder {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	r := httptest.NewRequest(method, path, rd)
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// TestAuthMatrix: every route, every role, no token and a wrong token get
// 401, 403 or through, as the permission table says.
func TestAuthMatrix(t *testing.T) {
	h := api.NewHandler(reachable(), nil, api.WithAuth(testAuth(t)))
	for _, rt := range routes {
		if got := api.RoutePermission(rt.method + " " + patternOf(rt.path)); got != rt.perm && patternOf(rt.path) != "" {
			t.Errorf("%s %s needs %q, want %q", rt.method, rt.path, got, rt.perm)
		}
		for _, tc := range []struct {
			who   string
			token string
			want  func(int) bool
		}{
			{"no token", "", func(s int) bool { return s == 401 }},
			{"wrong token", "wrong-token-0123456789", func(s int) bool { return s == 401 }},
		} {
			w := do(t, h, rt.method, rt.path, rt.body, tc.token)
			if !tc.want(w.Code) || !strings.Contains(w.Body.String(), `"error"`) || w.Header().Get("WWW-Authenticate") == "" {
				t.Errorf("%s %s with %s: %d %s", rt.method, rt.path, tc.who, w.Code, w.Body)
			}
		}
		for _, role := range auth.Roles {
			w := do(t, h, rt.method, rt.path, rt.body, roleTokens[role])
			allowed := auth.Allowed(role, rt.perm)
			switch {
			case allowed && (w.Code == 401 || w.Code == 403):
				t.Errorf("%s %s as %s: %d %s, want through", rt.method, rt.path, role, w.Code, w.Body)
			case !allowed && w.Code != 403:
				t.Errorf("%s %s as %s: %d %s, want 403", rt.method, rt.path, role, w.Code, w.Body)
			case !allowed && !strings.Contains(w.Body.String(), "may not "+string(rt.perm)):
				t.Errorf("%s %s as %s: 403 without naming the permission: %s", rt.method, rt.path, role, w.Body)
			}
		}
	}
	// Open routes stay open; unknown /api/ paths say 401 before 404.
	for path, want := range map[string]int{"/healthz": 200, "/readyz": 200, "/api/v1/nope": 401} {
		if w := do(t, h, "GET", path, "", ""); w.Code != want {
			t.Errorf("GET %s without a token: %d %s, want %d", path, w.Code, w.Body, want)
		}
	}
	if w := do(t, h, "GET", "/api/v1/nope", "", roleTokens[auth.Viewer]); w.Code != 404 {
		t.Errorf("unknown route with a token: %d", w.Code)
	}
}

// patternOf maps a test path to its route pattern's path, for RoutePermission.
func patternOf(path string) string {
	for _, p := range []struct{ prefix, pattern string }{
		{"/api/v1/executions/e1/approvals/", "/api/v1/executions/{id}/approvals/{position...}"},
		{"/api/v1/executions/e1/signals/", "/api/v1/executions/{id}/signals/{name}"},
		{"/api/v1/executions/e1/cancel", "/api/v1/executions/{id}/cancel"},
		{"/api/v1/executions/e1/approve", "/api/v1/executions/{id}/approve"},
		{"/api/v1/executions/e1/redrive", "/api/v1/executions/{id}/redrive"},
		{"/api/v1/dead-letters/e1/ack", "/api/v1/dead-letters/{id}/ack"},
		{"/api/v1/dead-letters/e1/replay", "/api/v1/dead-letters/{id}/replay"},
		{"/api/v1/runbooks/a/pause", "/api/v1/runbooks/{name}/pause"},
		{"/api/v1/executions/e1", "/api/v1/executions/{id}"},
		{"/api/v1/runbooks/a/executions", "/api/v1/runbooks/{name}/executions"},
	} {
		if strings.HasPrefix(path, p.prefix) {
			return p.pattern
		}
	}
	return path
}

// TestForceNeedsAdmin: a start, a redrive or a replay forced past a pause
// needs auth.Force (admin): an operator, who may run, pause and start, gets
// 403 naming it, and the service is never reached.
func TestForceNeedsAdmin(t *testing.T) {
	h := api.NewHandler(reachable(), nil, api.WithAuth(testAuth(t)))
	for _, c := range []struct{ path, body string }{
		{"/api/v1/executions", `{"runbook": "a", "force": true}`},
		{"/api/v1/runbooks/a/executions?force=true", ``},
		{"/api/v1/runbooks/a/executions", `{"force": true}`},
		{"/api/v1/executions/e1/redrive", `{"from": "start", "force": true}`},
		{"/api/v1/dead-letters/e1/replay?force=1", ``},
	} {
		if w := do(t, h, "POST", c.path, c.body, roleTokens[auth.Operator]); w.Code != 403 || !strings.Contains(w.Body.String(), "force") {
			t.Errorf("POST %s %s as operator: %d %s, want 403 about force", c.path, c.body, w.Code, w.Body)
		}
		if w := do(t, h, "POST", c.path, c.body, roleTokens[auth.Admin]); w.Code != 404 {
			t.Errorf("POST %s %s as admin: %d %s, want through (the fake's 404)", c.path, c.body, w.Code, w.Body)
		}
	}
}

func TestRoutePermissionDefaults(t *testing.T) {
	for pattern, want := range map[string]auth.Permission{
		"GET /api/v1/something-new":  auth.Read,
		"POST /api/v1/something-new": auth.Apply,
		"GET /healthz":               "",
		"POST /hooks/{name}":         "",
	} {
		if got := api.RoutePermission(pattern); got != want {
			t.Errorf("RoutePermission(%q) = %q, want %q", pattern, got, want)
		}
	}
}

// TestAuthIdentity: with auth on, the token names who starts, signals and
// decides; headers cannot claim otherwise and only an admin may decide "as"
// someone else.
func TestAuthIdentity(t *testing.T) {
	svc := reachable()
	var mu sync.Mutex
	var started sbruntime.Trigger
	var by string
	var decided []sbruntime.Decision
	svc.StartFunc = func(_ context.Context, rb string, _ json.RawMessage, tr sbruntime.Trigger) (*sbruntime.Execution, error) {
		started = tr
		return &sbruntime.Execution{ID: "new", Runbook: rb, Trigger: tr}, nil
	}
	svc.SignalFunc = func(_ context.Context, _, _ string, _ json.RawMessage, b string) error { by = b; return nil }
	svc.DecideFunc = func(_ context.Context, id, pos string, d sbruntime.Decision) (*sbruntime.ApprovalState, error) {
		mu.Lock()
		decided = append(decided, d)
		mu.Unlock()
		return &sbruntime.ApprovalState{Execution: id, Position: "1"}, nil
	}
	h := api.NewHandler(svc, nil, api.WithAuth(testAuth(t)))
	op, appr, admin := roleTokens[auth.Operator], roleTokens[auth.Approver], roleTokens[auth.Admin]

	w := do(t, h, "POST", "/api/v1/executions", `{"runbook": "a"}`, op, api.TriggerHeader, "manual", api.UserHeader, "mallory")
	if w.Code != 201 || started.Type != "manual" || started.Source != "operator-user" {
		t.Errorf("manual start: %d, trigger %+v", w.Code, started)
	}
	w = do(t, h, "POST", "/api/v1/runbooks/a/executions", ``, op)
	if w.Code != 201 || started.Type != "api" || started.Source != "operator-user" {
		t.Errorf("api start: %d, trigger %+v", w.Code, started)
	}
	w = do(t, h, "POST", "/api/v1/executions/e1/signals/go", ``, op, api.UserHeader, "mallory")
	if w.Code != 200 || by != "operator-user" {
		t.Errorf("signal: %d, by %q", w.Code, by)
	}
	for _, tc := range []struct {
		token, body string
		status      int
		user        string
	}{
		{appr, `{"decision": "approve"}`, 200, "approver-user"},
		{appr, `{"decision": "approve", "as": "APPROVER-user"}`, 200, "approver-user"},
		{appr, `{"decision": "approve", "as": "carol"}`, 403, ""},
		{admin, `{"decision": "reject", "as": "carol"}`, 200, "carol"},
		{admin, `{"decision": "approve"}`, 200, "admin-user"},
	} {
		decided = nil
		w := do(t, h, "POST", "/api/v1/executions/e1/approve", tc.body, tc.token, api.UserHeader, "mallory")
		if w.Code != tc.status {
			t.Errorf("%s: %d %s, want %d", tc.body, w.Code, w.Body, tc.status)
			continue
		}
		if tc.status == 403 {
			if len(decided) != 0 || !strings.Contains(w.Body.String(), "admin role") {
				t.Errorf("%s: refused after deciding, or unclear: %s", tc.body, w.Body)
			}
			continue
		}
		if len(decided) != 1 || decided[0].User != tc.user {
			t.Errorf("%s: decided %+v, want user %s", tc.body, decided, tc.user)
		}
	}
	w = do(t, h, "GET", "/api/v1/whoami", "", appr)
	var who api.WhoAmI
	if err := json.Unmarshal(w.Body.Bytes(), &who); err != nil || !who.Auth || who.Name != "approver-user" ||
		who.Role != auth.Approver || len(who.Permissions) != 2 {
		t.Errorf("whoami: %s", w.Body)
	}
}

// TestAuditRecords: every mutating request is recorded with who, what, the
// target and the outcome; reads and 401s are not stored.
func TestAuditRecords(t *testing.T) {
	svc := reachable()
	var recs []*starbook.AuditRecord
	svc.RecordAuditFunc = func(_ context.Context, rec *starbook.AuditRecord) error {
		recs = append(recs, rec)
		return nil
	}
	svc.StartFunc = func(_ context.Context, rb string, _ json.RawMessage, tr sbruntime.Trigger) (*sbruntime.Execution, error) {
		return &sbruntime.Execution{ID: "E42", Runbook: rb, Trigger: tr}, nil
	}
	svc.AuditFunc = func(_ context.Context, after string, limit int) ([]*starbook.AuditRecord, error) {
		if after != "A1" || limit != 2 {
			t.Errorf("Audit(%q, %d)", after, limit)
		}
		return []*starbook.AuditRecord{{ID: "A2"}, {ID: "A3"}}, nil
	}
	h := api.NewHandler(svc, nil, api.WithAuth(testAuth(t)))
	do(t, h, "GET", "/api/v1/executions", "", roleTokens[auth.Viewer])
	do(t, h, "POST", "/api/v1/executions", `{"runbook": "a"}`, "")
	do(t, h, "POST", "/api/v1/executions", `{"runbook": "deploy"}`, roleTokens[auth.Operator])
	do(t, h, "POST", "/api/v1/executions/E7/cancel", ``, roleTokens[auth.Viewer])
	do(t, h, "POST", "/api/v1/executions/E7/approvals/4/1", `{"decision": "maybe"}`, roleTokens[auth.Approver])
	do(t, h, "POST", "/api/v1/executions/E7/signals/go", ``, roleTokens[auth.Admin])
	want := []starbook.AuditRecord{
		{Actor: "operator-user", Role: "operator", Action: "execution.start", Runbook: "deploy", Execution: "E42", Status: 201, Outcome: "ok"},
		{Actor: "viewer-user", Role: "viewer", Action: "execution.cancel", Execution: "E7", Status: 403, Outcome: "denied"},
		{Actor: "approver-user", Role: "approver", Action: "approval.decide", Execution: "E7", Detail: "maybe 4/1", Status: 400, Outcome: "refused"},
		{Actor: "admin-user", Role: "admin", Action: "execution.signal", Execution: "E7", Detail: "signal go", Status: 404, Outcome: "refused"},
	}
	if len(recs) != len(want) {
		t.Fatalf("%d records, want %d: %+v", len(recs), len(want), recs)
	}
	for i, w := range want {
		got := *recs[i]
		if got.Time.IsZero() || got.Remote == "" || (got.Outcome != "ok") != (got.Error != "") {
			t.Errorf("record %d: %+v", i, got)
		}
		got.Time, got.Remote, got.Error = w.Time, "", ""
		if got != w {
			t.Errorf("record %d:\n got %+v\nwant %+v", i, got, w)
		}
	}
	if w := do(t, h, "GET", "/api/v1/audit?after=A1&limit=2", "", roleTokens[auth.Operator]); w.Code != 403 {
		t.Errorf("operator reads the audit log: %d", w.Code)
	}
	w := do(t, h, "GET", "/api/v1/audit?after=A1&limit=2", "", roleTokens[auth.Admin])
	if w.Code != 200 || !strings.Contains(w.Body.String(), `"next":"A3"`) {
		t.Errorf("audit: %d %s", w.Code, w.Body)
	}
	for _, q := range []string{"limit=0", "limit=1001", "after=../x"} {
		if w := do(t, h, "GET", "/api/v1/audit?"+q, "", roleTokens[auth.Admin]); w.Code != 400 {
			t.Errorf("audit?%s: %d", q, w.Code)
		}
	}
}

// TestAuditWithoutAuth: the claimed user is recorded, with no role.
func TestAuditWithoutAuth(t *testing.T) {
	svc := reachable()
	var recs []*starbook.AuditRecord
	svc.RecordAuditFunc = func(_ context.Context, rec *starbook.AuditRecord) error {
		recs = append(recs, rec)
		return nil
	}
	h := api.NewHandler(svc, nil)
	do(t, h, "POST", "/api/v1/executions/E7/cancel", ``, "", api.UserHeader, "alice")
	do(t, h, "POST", "/api/v1/executions/E7/cancel", ``, "")
	if len(recs) != 2 || recs[0].Actor != "alice" || recs[0].Role != "" || recs[1].Actor != "anonymous" {
		t.Fatalf("records %+v", recs)
	}
	w := do(t, h, "GET", "/api/v1/whoami", "", "")
	if strings.TrimSpace(w.Body.String()) != `{"auth":false}` {
		t.Errorf("whoami without auth: %s", w.Body)
	}
}
