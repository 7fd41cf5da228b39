package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/starbook/starbook/api"
	"github.com/starbook/starbook/auth"
	"github.com/starbook/starbook/builtins"
	"github.com/starbook/starbook/cluster"
	sbruntime "github.com/starbook/starbook/runtime"
	"github.com/starbook/starbook/service"
	"github.com/starbook/starbook/triggers"
)

const matrixPrefix = "/matrix/"

// snapshot is every key under the prefix but the audit log's, with the
// revision it was last written at.
func snapshot(t *testing.T, cli *clientv3.Client) map[string]int64 {
	t.Helper()
	resp, err := cli.Get(context.Background(), matrixPrefix, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for _, kv := range resp.Kvs {
		if !strings.HasPrefix(string(kv.Key), matrixPrefix+"audit/") {
			out[string(kv.Key)] = kv.ModRevision
		}
	}
	return out
}

// Small body caps, so that "huge" bodies are quick to send.
var matrixLimits = api.Limits{Body: 64 << 10, RunbooksBody: 128 << 10, AlertmanagerBody: 96 << 10}

// TestBadInputMatrix sends every route of a real node (etcd, store, hooks,
// auth, audit) malformed JSON, wrong types, huge bodies, unknown ids, path
// traversal, invalid UTF-8 and bad query parameters: each gets a 4xx with a
// JSON message, and nothing in etcd changes but the audit log.
func TestBadInputMatrix(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	emb, err := cluster.StartEmbedded(ctx, cluster.EmbeddedConfig{Dir: t.TempDir(), Fast: true, NoFsync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer emb.Close()
	t.Setenv("MATRIX_HOOK_TOKEN", "hook-token-0123456789")
	bi := builtins.New(builtins.Options{})
	store := cluster.NewStore(emb.Client, matrixPrefix)
	defer store.Close()
	svc := service.New(store, bi)
	if _, err := svc.Apply(ctx, map[string]string{"hello.star": `
trigger.webhook("deploy", token_env = "MATRIX_HOOK_TOKEN")

def main(event):
    return wait_for_signal("go")
`}); err != nil {
		t.Fatal(err)
	}
	e, err := svc.Start(ctx, "hello", nil, sbruntime.Trigger{Type: "manual"})
	if err != nil {
		t.Fatal(err)
	}
	tr := cluster.NewTriggers(store, nil, nil)
	const admin = "matrix-admin-token-0123456789"
	a, err := auth.New([]auth.Token{{Name: "root", Role: auth.Admin, SHA256: auth.Hash(admin)}})
	if err != nil {
		t.Fatal(err)
	}
	h := api.NewHandler(svc, nil, api.WithAuth(a), api.WithLimits(matrixLimits),
		api.WithHooks(&triggers.Dispatcher{Index: tr.Index(), Starter: tr, Resolver: tr}, api.AlertmanagerAuth{}))

	// A valid request of each route, bad inputs are variations of it.
	valid := map[string]string{ // pattern -> body
		"POST /api/v1/runbooks":                                `{"files": {"x.star": "def main(e):\n    pass\n"}}`,
		"POST /api/v1/policies":                                `{"files": {"p.star": "def on_apply(r):\n    return None\n"}}`,
		"POST /api/v1/executions":                              `{"runbook": "hello"}`,
		"POST /api/v1/runbooks/{name}/executions":              `{"input": {"a": 1}}`,
		"POST /api/v1/executions/{id}/cancel":                  ``,
		"POST /api/v1/executions/{id}/signals/{name}":          `{"data": {"a": 1}}`,
		"POST /api/v1/executions/{id}/approve":                 `{"decision": "approve"}`,
		"POST /api/v1/executions/{id}/approvals/{position...}": `{"decision": "approve"}`,
		"POST /hooks/alertmanager":                             `{"version": "4", "status": "firing", "alerts": []}`,
		"POST /hooks/{name}":                                   `{"a": 1}`,
		"POST /api/v1/dead-letters/{id}/ack":                   `{"comment": "seen"}`,
		"POST /api/v1/executions/{id}/redrive":                 `{"from": "start", "version": "current"}`,
		"POST /api/v1/runbooks/{name}/rollout/promote":         `{}`,
		"POST /api/v1/runbooks/{name}/rollout/abort":           `{}`,
		"POST /api/v1/store/free":                              `{}`,
		"POST /api/v1/pause":                                   `{"paused": true, "reason": "freeze"}`,
		"POST /api/v1/runbooks/{name}/pause":                   `{"paused": true, "reason": "freeze"}`,
		"POST /api/v1/dead-letters/{id}/replay":                `{}`,
	}
	// A wrong-typed body per route: the right JSON shape, the wrong types.
	wrongTypes := map[string]string{
		"POST /api/v1/runbooks":                                `{"files": ["x.star"]}`,
		"POST /api/v1/policies":                                `{"files": {"a.star": 7}}`,
		"POST /api/v1/executions":                              `{"runbook": 7, "input": {}}`,
		"POST /api/v1/runbooks/{name}/executions":              `[{"input": 1}]`,
		"POST /api/v1/executions/{id}/cancel":                  `{"force": true}`,
		"POST /api/v1/executions/{id}/signals/{name}":          `"data"`,
		"POST /api/v1/executions/{id}/approve":                 `{"decision": true}`,
		"POST /api/v1/executions/{id}/approvals/{position...}": `{"decision": "approve", "comment": 12}`,
		"POST /hooks/alertmanager":                             `{"version": 4, "status": "firing", "alerts": {}}`,
		"POST /hooks/{name}":                                   `{"a": 1}`, // no token: 401 before the type matters
		"POST /api/v1/dead-letters/{id}/ack":                   `{"comment": ["seen"]}`,
		"POST /api/v1/executions/{id}/redrive":                 `{"from": "start", "dry_run": "yes"}`,
		"POST /api/v1/runbooks/{name}/rollout/promote":         `"now"`,
		"POST /api/v1/runbooks/{name}/rollout/abort":           `"now"`,
		"POST /api/v1/store/free":                              `{"now": true}`,
		"POST /api/v1/pause":                                   `{"paused": "yes"}`,
		"POST /api/v1/runbooks/{name}/pause":                   `{"paused": true, "until": "in two hours"}`,
		"POST /api/v1/dead-letters/{id}/replay":                `{"force": "yes"}`,
	}
	bigBody := func(pattern string) []byte {
		n := matrixLimits.Body
		switch pattern {
		case "POST /api/v1/runbooks", "POST /api/v1/policies":
			n = matrixLimits.RunbooksBody
		case "POST /hooks/alertmanager":
			n = matrixLimits.AlertmanagerBody
		case "POST /hooks/{name}":
			n = triggers.MaxWebhookBody
		}
		return append(append([]byte(`{"files": {"a.star": "`), bytes.Repeat([]byte("x"), int(n))...), `"}}`...)
	}
	// Path values: the good one, then bad ones.
	good := map[string]string{"id": e.ID, "name": "hello", "version": "current", "position...": "1"}
	bad := map[string][]string{
		"id":          {"01JUNKNOWN00000000000000000", "..", "%2e%2e", "..%2Fexecutions", "%ff", "a%00b", strings.Repeat("x", 300)},
		"name":        {"nope", "../x", "%2e%2e", "..%2Fruntime", "%ff", "UPPER", "a%2Fb"},
		"version":     {"nope", "..", "%2e%2e%2f", "%ff"},
		"position...": {"999", "../../x", "%2e%2e/1", "%ff"},
	}
	type request struct {
		what, method, path string
		body               []byte
	}
	handler := h.(interface{ Patterns() []string })
	var cases []request
	for _, pattern := range handler.Patterns() {
		method, pathPattern, _ := strings.Cut(pattern, " ")
		goodPath := fill(pathPattern, good, "", "")
		if pattern == "POST /hooks/{name}" {
			goodPath = "/hooks/deploy"
		}
		body, isPost := valid[pattern]
		if method == http.MethodPost && !isPost {
			t.Errorf("route %s has no case in this matrix: add one", pattern)
			continue
		}
		for name, values := range bad {
			if !strings.Contains(pathPattern, "{"+name+"}") {
				continue
			}
			if strings.HasSuffix(pathPattern, "/signals/{name}") {
				values = []string{"..", "%2e%2e", "..%2Fx", "%ff", "a%2Fb", "a%00b", strings.Repeat("s", 300)}
			}
			for _, v := range values {
				cases = append(cases, request{"path " + name + "=" + v, method, fill(pathPattern, good, name, v), []byte(body)})
			}
		}
		if method != http.MethodPost {
			continue
		}
		for what, b := range map[string]string{
			"malformed JSON":   `{"runbook": "hello", "files": {`,
			"trailing data":    body + ` {"again": 1}`,
			"not an object":    `[1, 2, 3]`,
			"wrong types":      wrongTypes[pattern],
			"unknown field":    `{"surprise": true}`,
			"invalid UTF-8":    `{"runbook": "hel` + "\xff\xfe" + `lo", "comment": "` + "\xc3\x28" + `"}`,
			"NUL and controls": "{\"runbook\": \"hello\x00\", \"data\": \"\x01\"}",
		} {
			cases = append(cases, request{what, method, goodPath, []byte(b)})
		}
		cases = append(cases, request{"huge body", method, goodPath, bigBody(pattern)})
	}
	for _, q := range []struct{ path, what string }{
		{"/api/v1/executions?limit=abc", "limit not a number"},
		{"/api/v1/executions?limit=-1", "negative limit"},
		{"/api/v1/executions?limit=99999999999999999999", "limit overflow"},
		{"/api/v1/executions?status=%ff", "status invalid UTF-8"},
		{"/api/v1/executions?after=%2e%2e%2fowners%2f", "executions after traversal"},
		{"/api/v1/executions/" + e.ID + "?wait=forever", "wait not a duration"},
		{"/api/v1/executions/" + e.ID + "?wait=-1s", "negative wait"},
		{"/api/v1/executions/" + e.ID + "/logs?after=x", "after not a number"},
		{"/api/v1/executions/" + e.ID + "/logs?limit=0", "zero limit"},
		{"/api/v1/audit?after=%2e%2e%2f", "audit after traversal"},
		{"/api/v1/audit?limit=1001", "audit limit too large"},
		{"/api/v1/dead-letters?reason=bored", "unknown dead-letter reason"},
		{"/api/v1/dead-letters?runbook=..%2Fx", "dead-letter runbook traversal"},
		{"/api/v1/slo?runbook=%2e%2e%2fowners", "slo runbook traversal"},
		{"/api/v1/slo?runbook=nope", "slo of an unknown runbook"},
		{"/api/v1/slo?runbook=hello", "slo of a runbook without slo()"},
		{"/api/v1/usage?days=0", "usage days zero"},
		{"/api/v1/usage?days=401", "usage days too many"},
		{"/api/v1/usage?days=x", "usage days not a number"},
		{"/api/v1/usage?runbook=a%2Fb", "usage runbook with a slash"},
		{"/api/v1/usage?runbook=%ff", "usage runbook invalid UTF-8"},
		{"/api/v1/executions/01JUNKNOWN00000000000000000", "unknown execution"},
		{"/api/v1/executions/01JUNKNOWN00000000000000000/logs", "unknown execution's logs"},
		{"/api/v1/runbooks/nope", "unknown runbook"},
		{"/api/v1/runbooks/hello/rollout", "runbook without a rollout"},
		{"/api/v1/runbooks/hello/versions/0123456789ab", "unknown version"},
		{"/api/v1/../../etc/passwd", "traversal out of the API"},
		{"/api/v1//executions", "empty segment"},
		{"/api/v1/runbooks/nope/pause", "pause of an unknown runbook"},
		{"/api/v1/runbooks/UPPER/pause", "pause of an invalid runbook name"},
	} {
		cases = append(cases, request{q.what, http.MethodGet, q.path, nil})
	}

	before := snapshot(t, emb.Client)
	auditBefore := countAudit(t, emb.Client)
	mutating := 0
	for _, c := range cases {
		r := httptest.NewRequest(c.method, "http://node"+c.path, bytes.NewReader(c.body))
		r.Header.Set("Authorization", "Bearer "+admin)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		var msg struct{ Error string }
		jsonErr := json.Unmarshal(w.Body.Bytes(), &msg)
		if w.Code < 400 || w.Code > 499 || jsonErr != nil || msg.Error == "" {
			t.Errorf("%s %s (%s): %d %q, want a 4xx with a JSON message", c.method, trim(c.path), c.what, w.Code, trim(w.Body.String()))
		}
		if c.method == http.MethodPost {
			mutating++
		}
	}
	after := snapshot(t, emb.Client)
	for k, rev := range before {
		if after[k] != rev {
			t.Errorf("key %s changed (revision %d -> %d)", k, rev, after[k])
		}
	}
	for k := range after {
		if _, ok := before[k]; !ok {
			t.Errorf("key %s was created", k)
		}
	}
	// Refused actions are audited (not 401s; the token is valid here).
	if got := countAudit(t, emb.Client) - auditBefore; got < int64(mutating)/2 || got > int64(mutating) {
		t.Errorf("%d audit records for %d refused mutating requests", got, mutating)
	}
	if len(cases) < 150 {
		t.Errorf("only %d cases", len(cases))
	}
}

func countAudit(t *testing.T, cli *clientv3.Client) int64 {
	t.Helper()
	resp, err := cli.Get(context.Background(), matrixPrefix+"audit/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	return resp.Count
}

// fill replaces the wildcards of a path pattern with values, name's with v.
func fill(pattern string, values map[string]string, name, v string) string {
	segs := strings.Split(pattern, "/")
	for i, s := range segs {
		if strings.HasPrefix(s, "{") && strings.HasSuffix(s, "}") {
			key := strings.Trim(s, "{}")
			if key == name {
				segs[i] = v
			} else {
				segs[i] = values[key]
			}
		}
	}
	return strings.Join(segs, "/")
}

func trim(s string) string {
	if len(s) > 120 {
		return s[:120] + "..."
	}
	return s
}
