package e2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/starbook/starbook/api"
	sbruntime "github.com/starbook/starbook/runtime"
	"github.com/starbook/starbook/slackapp"
	"github.com/starbook/starbook/slackapp/slackfake"
)

// leakValue is the secret: quotes, <, > and & escape differently in JSON,
// '/' and '+' in base64 and URLs.
const leakValue = `Sup3r"S3cret<&>value/+7f3a`

// leakRunbook tries every way we know to get its secret stored, logged or
// shown: as step arguments and results, in log() messages, fields and field
// names, print(), step errors (fail, a Starlark error quoting it, an HTTP
// error body), fan_out errors, a failing undo, a signal it sends to its own
// node, a signal and an approval comment sent to it, its approval message,
// a Slack post and its final result.
const leakRunbook = `
TOKEN = secret("LEAK_TOKEN")

def echo(url, body):
    return http.post(url + "/echo", body = body,
                     headers = {"Authorization": "Bearer " + TOKEN, "X-Token": TOKEN},
                     params = {"t": TOKEN})

def plain(url):
    # The only way a runbook holds the value as a string: inside a step,
    # from a response that echoes it.
    return http.post(url + "/echo", body = TOKEN)["json"]["raw"]

def in_step(url):
    p = plain(url)
    log("inside a step: " + p, token = p, **{p: p})
    print("printed: " + p)
    slack.post("#ops", text = "the token is " + p)
    return {"plain": p, "again": http.get(url + "/echo", params = {"t": TOKEN})["json"]}

def self_signal(node):
    id = idempotency_key().split("/")[0]
    http.post(node + "/api/v1/executions/" + id + "/signals/echo", json = {"data": {"token": TOKEN}})
    return id

def http500(url):
    return http.post(url + "/500", body = TOKEN, retries = 0)

def failing(url):
    fail("leaked in fail(): " + plain(url))

def starlark_error(url):
    return int(plain(url))

def undo(url):
    fail("undo leaks: " + plain(url))

def main(event):
    if not event.url:
        return "nothing to do"
    compensate(undo, event.url)
    r1 = call(echo, event.url, TOKEN)
    r2 = call(in_step, event.url)
    log("echoed", body = r1.body, raw = r2.plain, secret = TOKEN)
    call(self_signal, event.node)
    mine = wait_for_signal("echo")
    theirs = wait_for_signal("from_test")
    ok = wait_for_approval("Approve? " + r2.plain + " " + str(mine.data) + " " + str(theirs.data) + " " + str(TOKEN),
                           timeout = "1h")
    log("decided", comment = ok.comment)
    steps = {"http500": http500, "fail": failing, "int": starlark_error}
    fan_out(lambda x: call(steps[x], event.url), ["http500", "fail", "int"], fail_fast = False)
    return {"token": TOKEN, "r1": r1, "r2": r2}
`

// leakEcho answers /echo with what it received: the body as it is, in base64
// and URL-escaped, the query and the headers; /500 the same with status 500.
func leakEcho(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	out := map[string]string{"raw": string(b), "b64": base64.StdEncoding.EncodeToString(b),
		"b64url": base64.URLEncoding.EncodeToString(b), "escaped": url.QueryEscape(string(b)),
		"query": r.URL.RawQuery, "auth": r.Header.Get("Authorization"), "xtoken": r.Header.Get("X-Token")}
	w.Header().Set("Content-Type", "application/json")
	if strings.HasSuffix(r.URL.Path, "/500") {
		w.WriteHeader(http.StatusInternalServerError)
	}
	_ = json.NewEncoder(w).Encode(out)
}

// leakForms are the forms of the secret that must appear nowhere.
func leakForms(v string) []string {
	htmlEscaped, _ := json.Marshal(v)
	var plainJSON strings.Builder
	enc := json.NewEncoder(&plainJSON)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
	doubly, _ := json.Marshal(string(htmlEscaped)) // JSON inside a JSON string
	return []string{v,
		strings.Trim(string(htmlEscaped), `"`), strings.Trim(strings.TrimSpace(plainJSON.String()), `"`),
		strings.Trim(string(doubly), `"`),
		base64.StdEncoding.EncodeToString([]byte(v)), base64.RawStdEncoding.EncodeToString([]byte(v)),
		base64.URLEncoding.EncodeToString([]byte(v)), url.QueryEscape(v), url.PathEscape(v),
		"S3cret", // the value's core: no form of it may survive either
	}
}

var etcdURLLine = regexp.MustCompile(`embedded etcd in \S+ \((https?://[0-9.:]+)\)`)

// TestSecretsLeakNowhere runs a node with a secret in its environment and
// the runbook above, then dumps every key and value of etcd, the node's
// whole log (with traces printed to it), what the API and metrics serve and
// what was posted to Slack by the node itself, and finds the secret in none
// of them, in no encoding.
func TestSecretsLeakNowhere(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the real binary")
	}
	fake := slackfake.New(nil, nil)
	defer fake.Close()
	t.Setenv("LEAK_TOKEN", leakValue)
	t.Setenv("OTEL_TRACES_EXPORTER", "console")
	t.Setenv(slackapp.EnvBotToken, "xoxb-e2e")
	t.Setenv(slackapp.EnvAPIURL, fake.URL())
	t.Setenv(slackapp.EnvChannel, "#ops")
	t.Setenv(slackapp.EnvSigningSecret, "e2e-signing-secret")
	echoSrv := httptest.NewServer(http.HandlerFunc(leakEcho))
	defer echoSrv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	dataDir := filepath.Join(t.TempDir(), "node")
	d := startDaemon(t, dataDir, "--log-level", "debug")
	if _, err := d.Client.Apply(ctx, map[string]string{"leak.star": leakRunbook}); err != nil {
		t.Fatal(err)
	}
	input, _ := json.Marshal(map[string]string{"url": echoSrv.URL, "node": d.URL})
	e, err := d.Client.Start(ctx, "leak", input)
	if err != nil {
		t.Fatal(err)
	}
	// What people send the node is scrubbed too, once it knows the secret.
	awaitWaiting(ctx, t, d.Client, e.ID, "signal")
	if err := d.Client.Signal(ctx, e.ID, "from_test", json.RawMessage(fmt.Sprintf(`{"copy": %q}`, leakValue))); err != nil {
		t.Fatal(err)
	}
	awaitWaiting(ctx, t, d.Client, e.ID, "approval")
	if _, err := d.Client.Decide(ctx, e.ID, "", api.DecisionRequest{Decision: "approve", As: "alice",
		Comment: "ok, the token is " + leakValue}); err != nil {
		t.Fatal(err)
	}
	end, history, err := d.Client.Wait(ctx, e.ID, 2*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if end.Status != sbruntime.StatusFailed || !strings.Contains(end.Error, "compensation_failed") {
		t.Fatalf("execution %s: %s %s", e.ID, end.Status, end.Error)
	}
	second, err := d.Client.Start(ctx, "leak", json.RawMessage(fmt.Sprintf(`{"url": "", "node": "", "note": %q}`, leakValue)))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := d.Client.Wait(ctx, second.ID, 2*time.Minute); err != nil {
		t.Fatal(err)
	}

	// Everything the node shows.
	var corpus strings.Builder
	add := func(what string, v any) {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		fmt.Fprintf(&corpus, "\n== %s\n%s", what, b)
	}
	add("execution", map[string]any{"execution": end, "history": history})
	addPages(t, &corpus, d.URL, "/api/v1/executions/"+e.ID, "/api/v1/executions/"+e.ID+"/logs",
		"/api/v1/executions/"+second.ID, "/api/v1/executions", "/api/v1/waits", "/api/v1/approvals",
		"/api/v1/audit?limit=1000", "/metrics")
	for _, c := range fake.Calls("chat.postMessage") {
		if strings.Contains(c.Form["text"], "the token is") {
			continue // the runbook's own slack.post: an effect, like an http.post of the secret
		}
		add("slack "+c.Method, c.Form)
	}
	for _, c := range fake.Calls("chat.update") {
		add("slack "+c.Method, c.Form)
	}
	keys := addEtcd(ctx, t, &corpus, dataDir)
	d.stop(t) // flush the log (and the traces printed to it)
	addLog(t, &corpus, dataDir)

	text := corpus.String()
	for _, form := range leakForms(leakValue) {
		if i := strings.Index(text, form); i >= 0 {
			lo, hi := max(0, i-300), min(len(text), i+len(form)+100)
			t.Errorf("the secret leaked as %q:\n...%s...", form, text[lo:hi])
		}
	}
	// The attempts did happen: the value went out, its placeholder came back.
	for _, want := range []string{"<secret LEAK_TOKEN>", "\\u003csecret LEAK_TOKEN\\u003e", "leaked in fail()",
		"undo leaks", "items failed", "500 Internal Server Error", `"SpanContext"`, "inside a step"} {
		if !strings.Contains(text, want) {
			t.Errorf("the corpus lacks %q: did every attempt run?", want)
		}
	}
	if keys < 20 {
		t.Errorf("etcd holds only %d keys", keys)
	}
}

// addPages appends what GET base+path answers, for each path, to corpus.
func addPages(t *testing.T, corpus *strings.Builder, base string, paths ...string) {
	t.Helper()
	for _, path := range paths {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Fprintf(corpus, "\n== GET %s (%d)\n%s", path, resp.StatusCode, b)
	}
}

// addEtcd appends every key and value of the embedded etcd of the node on
// dataDir (its URL read from the node's log) to corpus; it returns how
// many keys there were.
func addEtcd(ctx context.Context, t *testing.T, corpus *strings.Builder, dataDir string) int {
	t.Helper()
	logText, err := os.ReadFile(dataDir + ".log")
	if err != nil {
		t.Fatal(err)
	}
	m := etcdURLLine.FindSubmatch(logText)
	if m == nil {
		t.Fatal("no etcd URL in the log")
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{string(m[1])}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	all, err := cli.Get(ctx, "\x00", clientv3.WithFromKey())
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range all.Kvs {
		fmt.Fprintf(corpus, "\n== etcd %s\n%s", kv.Key, kv.Value)
	}
	return len(all.Kvs)
}

// addLog appends the node's whole log (stop it first: the traces it prints
// are flushed at exit) to corpus.
func addLog(t *testing.T, corpus *strings.Builder, dataDir string) {
	t.Helper()
	logText, err := os.ReadFile(dataDir + ".log")
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(corpus, "\n== node log\n%s", logText)
}

// awaitWaiting polls the execution until it waits on a wait of kind, and
// fails the test at once if it ends instead.
func awaitWaiting(ctx context.Context, t *testing.T, c *api.Client, id, kind string) {
	t.Helper()
	for {
		e, _, err := c.Execution(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if e.Status.Terminal() {
			t.Fatalf("execution %s ended (%s) before waiting for %s: %s", id, e.Status, kind, e.Error)
		}
		waits, err := c.Waits(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range waits {
			if w.Execution == id && w.Kind == kind {
				return
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("execution %s not waiting for %s", id, kind)
		case <-time.After(20 * time.Millisecond):
		}
	}
}
