package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/starbook/starbook/api"
	sbruntime "github.com/starbook/starbook/runtime"
	"github.com/starbook/starbook/slackapp"
	"github.com/starbook/starbook/slackapp/slackfake"
)

const approvalRunbook = `
def main(event):
    ok = wait_for_approval("Restart " + event.pod + "?", approvers = event.approvers,
                           timeout = event.timeout, on_timeout = event.on_timeout)
    if ok:
        call(http.post, event.url + "/restart/" + event.pod)
    return {"approved": ok.approved, "by": ok.by, "via": ok.via, "decision": ok.decision}
`

// effects counts requests per path.
type effects struct {
	mu   sync.Mutex
	seen map[string]int
}

func (e *effects) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	e.mu.Lock()
	e.seen[r.URL.Path]++
	e.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprint(w, `{"ok": true}`)
}

func (e *effects) count(path string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.seen[path]
}

// TestApprovalAcrossKill parks three executions on wait_for_approval, kills
// the daemon with SIGKILL, restarts it and then approves one through the CLI
// and one through a signed Slack interaction, while the third one's timeout
// fires after the restart: all three complete, each approval recorded once
// and each effect after it run once.
func TestApprovalAcrossKill(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the real binary")
	}
	const signingSecret = "e2e-signing-secret"
	fake := slackfake.New(
		[]slackfake.User{{ID: "U0SRE1", Name: "sam", Email: "sam@example.com"}},
		[]slackfake.Group{{ID: "S0SRE", Handle: "sre", Members: []string{"U0SRE1"}}})
	defer fake.Close()
	t.Setenv(slackapp.EnvBotToken, "xoxb-e2e")
	t.Setenv(slackapp.EnvSigningSecret, signingSecret)
	t.Setenv(slackapp.EnvAPIURL, fake.URL())
	t.Setenv(slackapp.EnvChannel, "#ops")
	t.Setenv("STARBOOK_USER", "e2e-runner")
	eff := &effects{seen: map[string]int{}}
	srv := httptest.NewServer(eff)
	defer srv.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dataDir := t.TempDir() + "/node"
	d := startDaemon(t, dataDir)
	if _, err := d.Client.Apply(ctx, map[string]string{"restart.star": approvalRunbook}); err != nil {
		t.Fatal(err)
	}
	start := func(pod, approvers, timeout, onTimeout string) string {
		input := fmt.Sprintf(`{"pod": %q, "approvers": %s, "timeout": %s, "on_timeout": %q, "url": %q}`,
			pod, approvers, timeout, onTimeout, srv.URL)
		e, err := d.Client.Start(ctx, "restart", json.RawMessage(input))
		if err != nil {
			t.Fatal(err)
		}
		return e.ID
	}
	byCLI := start("cli-1", `["alice"]`, "null", "reject")
	bySlack := start("slack-1", `["@sre"]`, "null", "reject")
	byTimer := start("timer-1", `["nobody"]`, `"6s"`, "approve")

	// All three wait, and their requests were posted to Slack.
	awaitApprovals(ctx, t, d.Client, byCLI, bySlack, byTimer)
	awaitCalls(ctx, t, fake, "chat.postMessage", 3)
	d.kill(t)
	restarted := time.Now()

	d = startDaemon(t, dataDir)
	if e, _, err := d.Client.Execution(ctx, byCLI); err != nil || e.Status != sbruntime.StatusWaiting {
		t.Fatalf("after the restart: %+v, %v", e, err)
	}

	// The CLI, as alice.
	out, err := run(ctx, d.URL, "approve", byCLI, "--as", "alice", "--comment", "go ahead")
	if err != nil || !strings.Contains(out, "approved by alice") {
		t.Fatalf("starbook approve: %v: %s", err, out)
	}
	out, err = run(ctx, d.URL, "approve", byCLI, "--as", "alice")
	if err == nil || !strings.Contains(out, "already decided: approved by alice via cli") {
		t.Fatalf("second approve: %v: %s", err, out)
	}
	checkEnd(ctx, t, d.Client, byCLI, `{"approved":true,"by":["alice"],"decision":"approve","via":"cli"}`)
	out, err = run(ctx, d.URL, "show", byCLI)
	if err != nil || !strings.Contains(out, "approved by alice via cli") || !strings.Contains(out, `"go ahead"`) {
		t.Fatalf("show: %v\n%s", err, out)
	}

	// Slack: the Approve button of the request posted before the kill,
	// clicked by a member of @sre, delivered to the restarted daemon.
	var value string
	for _, c := range fake.Calls("chat.postMessage") {
		for _, b := range c.Blocks() {
			if b["block_id"] != slackapp.ApprovalBlockID {
				continue
			}
			for _, el := range b["elements"].([]any) {
				btn := el.(map[string]any)
				if btn["action_id"] == slackapp.ActionApprove && strings.Contains(btn["value"].(string), bySlack) {
					value = btn["value"].(string)
				}
			}
		}
	}
	if value == "" {
		t.Fatalf("no Approve button for %s in %+v", bySlack, fake.Calls("chat.postMessage"))
	}
	if code := postClick(ctx, t, d.URL, signingSecret, "U0SRE1", value); code != http.StatusOK {
		t.Fatalf("interaction: status %d", code)
	}
	if code := postClick(ctx, t, d.URL, "not-the-secret", "U0SRE1", value); code != http.StatusUnauthorized {
		t.Fatalf("forged interaction: status %d", code)
	}
	checkEnd(ctx, t, d.Client, bySlack, `{"approved":true,"by":["U0SRE1"],"decision":"approve","via":"slack"}`)

	// The timer, persisted before the kill, fired after the restart, once.
	timed := checkEnd(ctx, t, d.Client, byTimer, `{"approved":true,"by":[],"decision":"timeout","via":"timeout"}`)
	if !timed.EndedAt.After(restarted) {
		t.Fatalf("the timeout was recorded at %s, before the restart at %s: slow machine? raise the timeout", timed.EndedAt, restarted)
	}

	for _, pod := range []string{"cli-1", "slack-1", "timer-1"} {
		if n := eff.count("/restart/" + pod); n != 1 {
			t.Errorf("restart %s ran %d times, want 1", pod, n)
		}
	}
	// Every post is updated with its outcome.
	updates := awaitCalls(ctx, t, fake, "chat.update", 3)
	text := ""
	for _, u := range updates {
		text += u.Form["blocks"]
	}
	for _, want := range []string{"Approved by alice via cli", "Approved by \\u003c@U0SRE1\\u003e via slack", "Timed out"} {
		if !strings.Contains(text, want) {
			t.Errorf("updates lack %q: %s", want, text)
		}
	}
}

// awaitApprovals polls the API until every id has a pending approval.
func awaitApprovals(ctx context.Context, t *testing.T, c *api.Client, ids ...string) {
	t.Helper()
	for {
		pending, err := c.Approvals(ctx)
		if err != nil {
			t.Fatal(err)
		}
		found := 0
		for _, id := range ids {
			for _, p := range pending {
				if p.Execution == id {
					found++
					break
				}
			}
		}
		if found == len(ids) {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("approvals of %v not pending: %+v", ids, pending)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// awaitCalls waits for at least n calls of method on the fake Slack.
func awaitCalls(ctx context.Context, t *testing.T, fake *slackfake.Server, method string, n int) []slackfake.Call {
	t.Helper()
	for {
		changed := fake.Changed()
		if calls := fake.Calls(method); len(calls) >= n {
			return calls
		}
		select {
		case <-changed:
		case <-ctx.Done():
			t.Fatalf("%d %s calls, want %d: %+v", len(fake.Calls(method)), method, n, fake.Calls(""))
		}
	}
}

// checkEnd waits for execution id to complete with result want and one
// approval event, and returns that event.
func checkEnd(ctx context.Context, t *testing.T, c *api.Client, id, want string) *sbruntime.Event {
	t.Helper()
	e, history, err := c.Wait(ctx, id, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if e.Status != sbruntime.StatusCompleted || string(e.Result) != want {
		t.Fatalf("execution %s: %s %s %s, want result %s", id, e.Status, e.Result, e.Error, want)
	}
	var found []*sbruntime.Event
	for _, ev := range history {
		if ev.Kind == sbruntime.KindApproval {
			found = append(found, ev)
		}
	}
	if len(found) != 1 {
		t.Fatalf("execution %s: %d approval events", id, len(found))
	}
	return found[0]
}

// postClick posts a signed block_actions payload of user pressing Approve.
func postClick(ctx context.Context, t *testing.T, base, secret, user, value string) int {
	t.Helper()
	payload, _ := json.Marshal(map[string]any{
		"type":    "block_actions",
		"user":    map[string]any{"id": user},
		"channel": map[string]any{"id": "COPS"},
		"actions": []map[string]any{{"type": "button", "block_id": slackapp.ApprovalBlockID,
			"action_id": slackapp.ActionApprove, "value": value}},
	})
	body := "payload=" + url.QueryEscape(string(payload))
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+slackapp.InteractionsPath, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Slack-Request-Timestamp", ts)
	req.Header.Set("X-Slack-Signature", slackapp.Sign(secret, ts, []byte(body)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
