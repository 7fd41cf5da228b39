package slackapp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/slack-go/slack"

	"github.com/starbook/starbook/builtins"
	"github.com/starbook/starbook/cluster"
	"github.com/starbook/starbook/node"
	sbruntime "github.com/starbook/starbook/runtime"
	"github.com/starbook/starbook/service"
	"github.com/starbook/starbook/slackapp/slackfake"
)

const secret = "test-signing-secret"

// Slack's published signing example.
const (
	exampleSecret = "8f742231b10e8888abcd99yyyzzz85a5"
	exampleTS     = "1531420618"
	exampleBody   = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
	exampleSig    = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
)

func TestVerifyPublishedExample(t *testing.T) {
	if got := Sign(exampleSecret, exampleTS, []byte(exampleBody)); got != exampleSig {
		t.Fatalf("Sign = %s, want %s", got, exampleSig)
	}
	sent := time.Unix(1531420618, 0)
	h := http.Header{"X-Slack-Signature": {exampleSig}, "X-Slack-Request-Timestamp": {exampleTS}}
	for _, tc := range []struct {
		name string
		now  time.Time
		body string
		h    http.Header
		want error
	}{
		{"valid", sent.Add(30 * time.Second), exampleBody, h, nil},
		{"4m59s later", sent.Add(4*time.Minute + 59*time.Second), exampleBody, h, nil},
		{"stale", sent.Add(5*time.Minute + time.Second), exampleBody, h, ErrStaleRequest},
		{"from the future", sent.Add(-6 * time.Minute), exampleBody, h, ErrStaleRequest},
		{"modified body", sent, strings.Replace(exampleBody, "roadrunner", "coyote", 1), h, ErrBadSignature},
		{"no signature", sent, exampleBody, http.Header{"X-Slack-Request-Timestamp": {exampleTS}}, ErrMissingHeaders},
		{"no timestamp", sent, exampleBody, http.Header{"X-Slack-Signature": {exampleSig}}, ErrMissingHeaders},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := Verify(tc.h, []byte(tc.body), exampleSecret, tc.now); !errors.Is(err, tc.want) {
				t.Fatalf("Verify = %v, want %v", err, tc.want)
			}
		})
	}
	if err := Verify(h, []byte(exampleBody), "wrong-secret", sent); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("wrong secret: %v", err)
	}
}

// Verify and slack-go's verifier agree on requests signed now (the wall
// clock, which slack-go reads).
func TestVerifyAgreesWithSlackGo(t *testing.T) {
	now := time.Now()
	ts := strconv.FormatInt(now.Unix(), 10)
	body := []byte("payload=%7B%7D")
	for _, tc := range []struct {
		name string
		h    http.Header
	}{
		{"valid", http.Header{"X-Slack-Signature": {Sign(secret, ts, body)}, "X-Slack-Request-Timestamp": {ts}}},
		{"wrong secret", http.Header{"X-Slack-Signature": {Sign("other", ts, body)}, "X-Slack-Request-Timestamp": {ts}}},
		{"stale", http.Header{"X-Slack-Signature": {Sign(secret, "1531420618", body)}, "X-Slack-Request-Timestamp": {"1531420618"}}},
		{"missing", http.Header{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ours := Verify(tc.h, body, secret, now)
			var theirs error
			sv, err := slack.NewSecretsVerifier(tc.h, secret)
			if err == nil {
				_, _ = sv.Write(body)
				err = sv.Ensure()
			}
			theirs = err
			if (ours == nil) != (theirs == nil) {
				t.Fatalf("ours %v, slack-go %v", ours, theirs)
			}
		})
	}
}

// signed returns a request to the interactions endpoint carrying payload,
// signed with key at ts.
func signed(t *testing.T, url_ string, payload any, key string, ts time.Time) *http.Request {
	t.Helper()
	b, err := json.Marshal(payload)
	if err != nil {
		t.Fatal(err)
	}
	body := "payload=" + url.QueryEscape(string(b))
	req := httptest.NewRequest(http.MethodPost, url_, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	stamp := strconv.FormatInt(ts.Unix(), 10)
	req.Header.Set("X-Slack-Request-Timestamp", stamp)
	req.Header.Set("X-Slack-Signature", Sign(key, stamp, []byte(body)))
	return req
}

// click is a block_actions payload of user pressing action on the approval
// button carrying value.
func click(user, action, value string) map[string]any {
	return map[string]any{
		"type":      "block_actions",
		"user":      map[string]any{"id": user, "username": strings.ToLower(user)},
		"channel":   map[string]any{"id": "CONCALL"},
		"container": map[string]any{"type": "message", "channel_id": "CONCALL", "message_ts": "1700000000.000001"},
		"actions": []map[string]any{{
			"type": "button", "block_id": ApprovalBlockID, "action_id": action, "value": value,
			"action_ts": "1700000002.000001",
		}},
	}
}

type deciderFunc func(ctx context.Context, id, pos string, d sbruntime.Decision) (*sbruntime.ApprovalState, error)

func (f deciderFunc) Decide(ctx context.Context, id, pos string, d sbruntime.Decision) (*sbruntime.ApprovalState, error) {
	return f(ctx, id, pos, d)
}

// Requests that do not verify are refused with 401 before anything is
// decided, on the production path (wall clock, slack-go's verifier) and with
// a fixed clock.
func TestInteractionsRefuseUnverifiedRequests(t *testing.T) {
	fake := slackfake.New(nil, nil)
	defer fake.Close()
	var decided atomic.Int32
	dec := deciderFunc(func(_ context.Context, id, pos string, d sbruntime.Decision) (*sbruntime.ApprovalState, error) {
		decided.Add(1)
		return &sbruntime.ApprovalState{Execution: id, Position: pos, Resolved: true}, nil
	})
	for _, fixed := range []bool{false, true} {
		app, err := New(Config{BotToken: "xoxb-test", SigningSecret: secret, APIURL: fake.URL()}, dec, nil)
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		if fixed {
			now = time.Date(2026, 5, 1, 9, 0, 0, 0, time.UTC)
			app.SetClock(func() time.Time { return now })
		}
		value := `{"e":"01EXEC","p":"3"}`
		payload := click("U0SRE1", ActionApprove, value)
		modified := signed(t, "/slack/interactions", payload, secret, now)
		modified.Body = http.NoBody
		body := "payload=" + url.QueryEscape(strings.Replace(mustJSON(t, payload), "U0SRE1", "U0EVE1", 1))
		tampered := httptest.NewRequest(http.MethodPost, "/slack/interactions", strings.NewReader(body))
		tampered.Header = modified.Header.Clone()
		noHeaders := signed(t, "/slack/interactions", payload, secret, now)
		noHeaders.Header.Del("X-Slack-Signature")
		noStamp := signed(t, "/slack/interactions", payload, secret, now)
		noStamp.Header.Del("X-Slack-Request-Timestamp")
		for name, req := range map[string]*http.Request{
			"wrong secret":    signed(t, "/slack/interactions", payload, "not-the-secret", now),
			"stale timestamp": signed(t, "/slack/interactions", payload, secret, now.Add(-6*time.Minute)),
			"modified body":   tampered,
			"no signature":    noHeaders,
			"no timestamp":    noStamp,
		} {
			rec := httptest.NewRecorder()
			app.ServeHTTP(rec, req)
			if rec.Code != http.StatusUnauthorized {
				t.Errorf("fixed clock %v, %s: status %d, want 401", fixed, name, rec.Code)
			}
		}
		if n := decided.Load(); n != 0 {
			t.Fatalf("fixed clock %v: %d decisions recorded from refused requests", fixed, n)
		}
		rec := httptest.NewRecorder()
		app.ServeHTTP(rec, signed(t, "/slack/interactions", payload, secret, now))
		if rec.Code != http.StatusOK || decided.Load() != 1 {
			t.Fatalf("fixed clock %v, valid request: status %d, decisions %d", fixed, rec.Code, decided.Load())
		}
		decided.Store(0)
	}
	if n := len(fake.Calls("")); n != 0 {
		t.Fatalf("refused requests reached Slack: %d calls", n)
	}
}

// mustJSON encodes v without HTML escaping, so "<@U1>" reads as it is.
func mustJSON(t *testing.T, v any) string {
	t.Helper()
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(b.String())
}

// testNode is a node with embedded etcd whose leader posts approvals to the
// fake Slack, and whose runbooks have slack.post.
type testNode struct {
	store *cluster.Store
	svc   *service.Service
	app   *App
	fake  *slackfake.Server
	srv   *httptest.Server // serves /slack/interactions
}

var people = []slackfake.User{
	{ID: "U0SRE1", Name: "sam", Email: "sam@example.com"},
	{ID: "U0SRE2", Name: "kim", Email: "kim@example.com"},
	{ID: "U0EVE1", Name: "eve", Email: "eve@example.com"},
	{ID: "U0BOSS", Name: "boss", Email: "boss@example.com"},
}

func startNode(t *testing.T) *testNode {
	t.Helper()
	fake := slackfake.New(people, []slackfake.Group{{ID: "S0SRE", Handle: "sre", Members: []string{"U0SRE1", "U0SRE2"}}})
	t.Cleanup(fake.Close)
	ctx, cancel := context.WithCancel(context.Background())
	emb, err := cluster.StartEmbedded(ctx, cluster.EmbeddedConfig{Dir: t.TempDir(), Fast: true, NoFsync: true})
	if err != nil {
		t.Fatal(err)
	}
	store := cluster.NewStore(emb.Client, "/t/")
	app, err := New(Config{BotToken: "xoxb-test", SigningSecret: secret, APIURL: fake.URL(), Channel: "#ops"}, store, nil)
	if err != nil {
		t.Fatal(err)
	}
	store.SetDirectory(app)
	bi := builtins.New(builtins.Options{Slack: app})
	worker, err := node.New(ctx, store, node.Config{ID: "n1", Builtins: bi, SessionTTL: 2 * time.Second,
		StopGrace: time.Second, LeaderTasks: []func(context.Context){func(ctx context.Context) { store.RunNotifier(ctx, app, nil) }}})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- worker.Run(ctx) }()
	srv := httptest.NewServer(app)
	t.Cleanup(func() {
		srv.Close()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("node run: %v", err)
		}
		store.Close()
		emb.Close()
	})
	return &testNode{store: store, svc: service.New(store, bi), app: app, fake: fake, srv: srv}
}

// awaitCall waits for the n-th call (1-based) of method on the fake.
func (tn *testNode) awaitCall(t *testing.T, method string, n int) slackfake.Call {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		changed := tn.fake.Changed()
		if calls := tn.fake.Calls(method); len(calls) >= n {
			return calls[n-1]
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("no call %d of %s within 20s; calls: %+v", n, method, tn.fake.Calls(""))
		}
	}
}

func (tn *testNode) start(t *testing.T, src string) string {
	t.Helper()
	name := fmt.Sprintf("rb%d", time.Now().UnixNano())
	if _, err := tn.svc.Apply(context.Background(), map[string]string{name + ".star": src}); err != nil {
		t.Fatal(err)
	}
	e, err := tn.svc.Start(context.Background(), name, nil, sbruntime.Trigger{Type: "manual", Source: "sam"})
	if err != nil {
		t.Fatal(err)
	}
	return e.ID
}

func (tn *testNode) end(t *testing.T, id string) *sbruntime.Execution {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	e, err := tn.svc.AwaitEnd(ctx, id)
	if err != nil || !e.Status.Terminal() {
		t.Fatalf("execution %s: %+v, %v", id, e, err)
	}
	return e
}

func (tn *testNode) post(t *testing.T, payload any) int {
	t.Helper()
	req := signed(t, tn.srv.URL+InteractionsPath, payload, secret, time.Now())
	req.RequestURI = ""
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// buttons returns the approval buttons of a posted message: action id -> value.
func buttons(t *testing.T, c slackfake.Call) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, b := range c.Blocks() {
		if b["type"] != "actions" {
			continue
		}
		if b["block_id"] != ApprovalBlockID {
			t.Fatalf("actions block id %v", b["block_id"])
		}
		for _, el := range b["elements"].([]any) {
			e := el.(map[string]any)
			out[e["action_id"].(string)] = e["value"].(string)
		}
	}
	return out
}

func TestSlackApprovalFlow(t *testing.T) {
	tn := startNode(t)
	id := tn.start(t, `
def main(event):
    ok = wait_for_approval("Restart *web-1*?", approvers = ["@sre"], channel = "#oncall", timeout = "30m")
    return {"approved": bool(ok), "by": ok.by, "via": ok.via}
`)
	posted := tn.awaitCall(t, "chat.postMessage", 1)
	if posted.Form["channel"] != "#oncall" || !strings.Contains(posted.Form["text"], "Restart") {
		t.Fatalf("posted %+v", posted.Form)
	}
	blocks := mustJSON(t, posted.Blocks())
	for _, want := range []string{"Approval needed: rb", "Restart *web-1*?", id, "position 1", "@sre", "*Required*\\n1", "30m0s, then reject"} {
		if !strings.Contains(blocks, want) {
			t.Errorf("blocks lack %q: %s", want, blocks)
		}
	}
	btn := buttons(t, posted)
	var v ButtonValue
	if err := json.Unmarshal([]byte(btn[ActionApprove]), &v); err != nil || v.Execution != id || v.Position != "1" || btn[ActionReject] != btn[ActionApprove] {
		t.Fatalf("buttons %v", btn)
	}
	// The post is recorded in the wait, so it is not repeated.
	waitForNotified(t, tn, id)

	// eve is not in @sre: an ephemeral refusal, nothing recorded.
	if code := tn.post(t, click("U0EVE1", ActionApprove, btn[ActionApprove])); code != http.StatusOK {
		t.Fatalf("status %d", code)
	}
	eph := tn.awaitCall(t, "chat.postEphemeral", 1)
	if eph.Form["user"] != "U0EVE1" || !strings.Contains(eph.Form["text"], "not an approver") {
		t.Fatalf("ephemeral %+v", eph.Form)
	}
	pending, err := tn.store.PendingWaits(context.Background())
	if err != nil || len(pending) != 1 || len(pending[0].Approvals) != 0 {
		t.Fatalf("after a refused click: %+v, %v", pending, err)
	}

	// kim is: approved, the execution resumes, the post shows who decided.
	if code := tn.post(t, click("U0SRE2", ActionApprove, btn[ActionApprove])); code != http.StatusOK {
		t.Fatalf("status %d", code)
	}
	e := tn.end(t, id)
	if e.Status != sbruntime.StatusCompleted || string(e.Result) != `{"approved":true,"by":["U0SRE2"],"via":"slack"}` {
		t.Fatalf("execution %s %s %s", e.Status, e.Result, e.Error)
	}
	upd := tn.awaitCall(t, "chat.update", 1)
	if upd.Form["channel"] != "CONCALL" || upd.Form["ts"] != "1700000000.000001" {
		t.Fatalf("update of %+v", upd.Form)
	}
	ub := mustJSON(t, upd.Blocks())
	if !strings.Contains(ub, "Approved by <@U0SRE2> via slack") || !strings.Contains(ub, "Restart *web-1*?") || strings.Contains(ub, `"actions"`) {
		t.Fatalf("updated blocks %s", ub)
	}
	// A second click on the stale message changes nothing.
	if code := tn.post(t, click("U0SRE1", ActionReject, btn[ActionReject])); code != http.StatusOK {
		t.Fatalf("status %d", code)
	}
	eph = tn.awaitCall(t, "chat.postEphemeral", 2)
	if !strings.Contains(eph.Form["text"], "already decided: approved by U0SRE2") {
		t.Fatalf("late click answer %q", eph.Form["text"])
	}
	if n := len(tn.fake.Calls("chat.postMessage")); n != 1 {
		t.Fatalf("%d posts, want 1", n)
	}
}

func waitForNotified(t *testing.T, tn *testNode, id string) *sbruntime.ApprovalRequest {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		pending, err := tn.store.PendingWaits(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range pending {
			if p.Wait.Execution == id && p.Request != nil && p.Request.Notified != nil && p.Request.Notified.Round == p.Request.Round {
				return p.Request
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("approval of %s not recorded as posted", id)
	return nil
}

// A two-person approval in Slack: the requester's click does not count, the
// first approval updates the post, the second resolves it.
func TestSlackTwoPersonRule(t *testing.T) {
	tn := startNode(t)
	id := tn.start(t, `
def main(event):
    ok = wait_for_approval("Drop the cache?", approvers = ["@sre"], required = 2)
    return {"approved": bool(ok), "by": ok.by}
`)
	posted := tn.awaitCall(t, "chat.postMessage", 1)
	if posted.Form["channel"] != "#ops" {
		t.Fatalf("default channel not used: %+v", posted.Form)
	}
	btn := buttons(t, posted)[ActionApprove]
	waitForNotified(t, tn, id)
	// sam (U0SRE1) started the run.
	tn.post(t, click("U0SRE1", ActionApprove, btn))
	if eph := tn.awaitCall(t, "chat.postEphemeral", 1); !strings.Contains(eph.Form["text"], "two-person rule") {
		t.Fatalf("requester click answer %q", eph.Form["text"])
	}
	tn.post(t, click("U0SRE2", ActionApprove, btn))
	if eph := tn.awaitCall(t, "chat.postEphemeral", 2); !strings.Contains(eph.Form["text"], "1 of 2") {
		t.Fatalf("first approval answer %q", eph.Form["text"])
	}
	if upd := tn.awaitCall(t, "chat.update", 1); !strings.Contains(mustJSON(t, upd.Blocks()), "1 of 2 approvals: <@U0SRE2>") {
		t.Fatalf("progress update %s", mustJSON(t, upd.Blocks()))
	}
	if _, err := tn.store.Decide(context.Background(), id, "1", sbruntime.Decision{User: "boss@example.com", Approve: true, Via: "cli"}); !errors.Is(err, sbruntime.ErrForbidden) {
		t.Fatalf("boss is not in @sre: %v", err)
	}
	if _, err := tn.store.Decide(context.Background(), id, "1", sbruntime.Decision{User: "U0BOSS", Approve: true, Via: "slack"}); !errors.Is(err, sbruntime.ErrForbidden) {
		t.Fatalf("boss is not in @sre: %v", err)
	}
	// The second approver: sam by name on the CLI is the requester; kim
	// already approved; so only a new member could resolve it. Add none:
	// reject instead, by kim, through the CLI path.
	st, err := tn.store.Decide(context.Background(), id, "1", sbruntime.Decision{User: "kim", Approve: false, Comment: "changed my mind", Via: "cli"})
	if err != nil || !st.Resolved {
		t.Fatalf("reject: %+v, %v", st, err)
	}
	e := tn.end(t, id)
	if string(e.Result) != `{"approved":false,"by":["kim"]}` {
		t.Fatalf("result %s", e.Result)
	}
	upd := tn.awaitCall(t, "chat.update", 2)
	if ub := mustJSON(t, upd.Blocks()); !strings.Contains(ub, "Rejected by kim via cli") || !strings.Contains(ub, "changed my mind") {
		t.Fatalf("final update %s", ub)
	}
}

// Escalation re-posts the request in the escalation channel and marks the
// first post as escalated.
func TestSlackEscalation(t *testing.T) {
	tn := startNode(t)
	id := tn.start(t, `
def main(event):
    ok = wait_for_approval("Fail over the DB?", approvers = ["@sre"], channel = "#oncall", timeout = "1h",
                           on_timeout = escalate(channel = "#managers", approvers = ["U0BOSS"], timeout = "1h", then = "reject"))
    return {"approved": bool(ok), "by": ok.by}
`)
	tn.awaitCall(t, "chat.postMessage", 1)
	req := waitForNotified(t, tn, id)
	pending, err := tn.store.PendingWaits(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	w := pending[0].Wait
	key := timerKey(w)
	if err := tn.store.FireTimer(context.Background(), key); err != nil {
		t.Fatal(err)
	}
	second := tn.awaitCall(t, "chat.postMessage", 2)
	if second.Form["channel"] != "#managers" || !strings.Contains(mustJSON(t, second.Blocks()), "<@U0BOSS>") {
		t.Fatalf("escalated post %+v", second.Form)
	}
	first := tn.awaitCall(t, "chat.update", 1)
	if first.Form["ts"] != req.Notified.TS || !strings.Contains(mustJSON(t, first.Blocks()), "escalated to #managers") {
		t.Fatalf("first post update %+v %s", first.Form, mustJSON(t, first.Blocks()))
	}
	btn := buttons(t, second)[ActionApprove]
	tn.post(t, click("U0BOSS", ActionApprove, btn))
	e := tn.end(t, id)
	if string(e.Result) != `{"approved":true,"by":["U0BOSS"]}` {
		t.Fatalf("result %s", e.Result)
	}
}

func timerKey(w *sbruntime.Wait) string {
	return fmt.Sprintf("/t/timers/%013d/%s/%s", w.Deadline.UnixMilli(), w.Execution, w.Position)
}

func TestSlackEffects(t *testing.T) {
	tn := startNode(t)
	id := tn.start(t, `
def main(event):
    msg = call(slack.post, "#deploys", text = "deploying", blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*deploying*"}}])
    call(slack.update, msg["channel"], msg["ts"], text = "done")
    return msg
`)
	e := tn.end(t, id)
	if e.Status != sbruntime.StatusCompleted || !strings.Contains(string(e.Result), `"channel":"CDEPLOYS"`) {
		t.Fatalf("execution %s %s %s", e.Status, e.Result, e.Error)
	}
	p := tn.awaitCall(t, "chat.postMessage", 1)
	if p.Form["channel"] != "#deploys" || !strings.Contains(p.Form["blocks"], "*deploying*") {
		t.Fatalf("post %+v", p.Form)
	}
	u := tn.awaitCall(t, "chat.update", 1)
	if u.Form["channel"] != "CDEPLOYS" || u.Form["text"] != "done" {
		t.Fatalf("update %+v", u.Form)
	}
	// apply refuses a direct slack.post outside a step (package check); one
	// through a variable gets past that scan and meets the runtime guard.
	id = tn.start(t, `
def main(event):
    post = slack.post
    post("#deploys", text = "outside a step")
`)
	if e := tn.end(t, id); e.Status != sbruntime.StatusFailed || !strings.Contains(e.Error, "slack.post is an effect") {
		t.Fatalf("effect outside a step: %s %s", e.Status, e.Error)
	}
}

// Socket Mode: an interactive envelope is acknowledged and its click is
// decided like one posted to /slack/interactions.
func TestSocketMode(t *testing.T) {
	fake := slackfake.New(nil, nil)
	defer fake.Close()
	decided := make(chan sbruntime.Decision, 1)
	dec := deciderFunc(func(_ context.Context, id, pos string, d sbruntime.Decision) (*sbruntime.ApprovalState, error) {
		if id != "01EXEC" || pos != "2/0/1" {
			t.Errorf("decided %s %s", id, pos)
		}
		decided <- d
		return &sbruntime.ApprovalState{Execution: id, Position: pos, Resolved: true}, nil
	})
	app, err := New(Config{BotToken: "xoxb-test", AppToken: "xapp-test", APIURL: fake.URL()}, dec, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- app.RunSocketMode(ctx) }()
	fake.SendInteraction("env-1", click("U0SRE1", ActionReject, `{"e":"01EXEC","p":"2/0/1"}`))
	select {
	case d := <-decided:
		if d != (sbruntime.Decision{User: "U0SRE1", Approve: false, Via: sbruntime.ViaSlack}) {
			t.Fatalf("decision %+v", d)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no decision from the Socket Mode envelope")
	}
	for deadline := time.After(20 * time.Second); ; {
		changed := fake.Changed()
		if acks := fake.Acks(); len(acks) == 1 && acks[0] == "env-1" {
			break
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("envelope not acknowledged: %v", fake.Acks())
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("RunSocketMode: %v", err)
	}
}

// Twenty concurrent clicks (double clicks, two nodes receiving the same
// click, approve and reject) on one request record exactly one decision.
func TestSlackConcurrentClicks(t *testing.T) {
	tn := startNode(t)
	id := tn.start(t, `
def main(event):
    ok = wait_for_approval("Scale down?", approvers = ["@sre"], channel = "#oncall")
    return {"approved": bool(ok), "decisions": len(ok.decisions)}
`)
	posted := tn.awaitCall(t, "chat.postMessage", 1)
	btn := buttons(t, posted)
	start := make(chan struct{})
	codes := make(chan int, 20)
	for i := range 20 {
		go func() {
			<-start
			user, action := "U0SRE1", ActionApprove
			if i%2 == 1 {
				user, action = "U0SRE2", ActionReject
			}
			codes <- tn.post(t, click(user, action, btn[action]))
		}()
	}
	close(start)
	for range 20 {
		if code := <-codes; code != http.StatusOK {
			t.Errorf("status %d", code)
		}
	}
	e := tn.end(t, id)
	if e.Status != sbruntime.StatusCompleted || !strings.Contains(string(e.Result), `"decisions":1`) {
		t.Fatalf("execution %s %s", e.Status, e.Result)
	}
	_, history, err := tn.svc.Execution(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, ev := range history {
		if ev.Kind == sbruntime.KindApproval {
			n++
		}
	}
	// 19 losers are told who decided.
	ephemerals := tn.awaitCall(t, "chat.postEphemeral", 19)
	already := 0
	for _, c := range tn.fake.Calls("chat.postEphemeral") {
		if strings.Contains(c.Form["text"], "already decided") {
			already++
		}
	}
	if n != 1 || already != 19 {
		t.Fatalf("%d approval events, %d 'already decided' answers (last %q)", n, already, ephemerals.Form["text"])
	}
}
