package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/starbook/starbook"
	"github.com/starbook/starbook/auth"
	"github.com/starbook/starbook/slackapp"
	"github.com/starbook/starbook/slackapp/slackfake"
)

// postSlack posts form to path of base signed with secret, as Slack signs
// its requests, and returns the status and body.
func postSlack(ctx context.Context, t *testing.T, base, path, secret string, form url.Values) (int, string) {
	t.Helper()
	body := form.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+path, strings.NewReader(body))
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
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// awaitUpdate waits for a chat.update of the message at ts holding want.
func awaitUpdate(ctx context.Context, t *testing.T, fake *slackfake.Server, ts, want string) {
	t.Helper()
	for {
		changed := fake.Changed()
		for _, u := range fake.Calls("chat.update") {
			if u.Form["ts"] == ts && strings.Contains(u.Form["blocks"], want) {
				return
			}
		}
		select {
		case <-changed:
		case <-ctx.Done():
			t.Fatalf("no update of %s with %q: %+v", ts, want, fake.Calls("chat.update"))
		}
	}
}

// The real daemon with an auth file's people: /starbook run opens the
// runbook's form, its submission starts the run as the Slack user, and the
// run's message is brought to its end by the daemon restarted after a kill.
func TestSlackConsoleAcrossKill(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the real binary")
	}
	const signingSecret = "e2e-signing-secret"
	fake := slackfake.New([]slackfake.User{{ID: "U0SRE1", Name: "sam", Email: "sam@example.com"}}, nil)
	defer fake.Close()
	t.Setenv(slackapp.EnvBotToken, "xoxb-e2e")
	t.Setenv(slackapp.EnvSigningSecret, signingSecret)
	t.Setenv(slackapp.EnvAPIURL, fake.URL())
	token := auth.NewToken()
	t.Setenv("STARBOOK_TOKEN", token)
	authFile := filepath.Join(t.TempDir(), "auth.yaml")
	if err := os.WriteFile(authFile, []byte("tokens:\n  - {name: ci, role: admin, sha256: "+auth.Hash(token)+"}\n"+
		"people:\n  - {name: sam, role: operator, email: sam@example.com}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dataDir := t.TempDir() + "/node"
	d := startDaemon(t, dataDir, "--auth-file", authFile, "--public-url", "https://starbook.example.com")
	d.Client.Token = token
	if _, err := d.Client.Apply(ctx, map[string]string{
		"deploy.star":        "def main(event):\n    wait_for_signal(\"go\")\n    return event\n",
		"deploy.schema.json": `{"type": "object", "required": ["replicas"], "properties": {"replicas": {"type": "integer", "minimum": 1}}}`,
	}); err != nil {
		t.Fatal(err)
	}

	command := url.Values{"user_id": {"U0SRE1"}, "channel_id": {"COPS"}, "command": {"/starbook"}, "text": {"run deploy"},
		"trigger_id": {"1.2.3"}, "team_id": {"T0"}}
	if code, body := postSlack(ctx, t, d.URL, slackapp.CommandsPath, signingSecret, command); code != http.StatusOK || body != "" {
		t.Fatalf("/starbook run: %d %s", code, body)
	}
	view := awaitCalls(ctx, t, fake, "views.open", 1)[0].View()
	submit := func(replicas string) (int, string) {
		payload, _ := json.Marshal(map[string]any{"type": "view_submission", "user": map[string]any{"id": "U0SRE1"},
			"view": map[string]any{"callback_id": view["callback_id"], "private_metadata": view["private_metadata"],
				"state": map[string]any{"values": map[string]any{"/replicas": map[string]any{"/replicas": map[string]any{"type": "number_input", "value": replicas}}}}}})
		return postSlack(ctx, t, d.URL, slackapp.InteractionsPath, signingSecret, url.Values{"payload": {string(payload)}})
	}
	if code, body := submit("0"); code != http.StatusOK || !strings.Contains(body, `"/replicas":"minimum: got 0, want \u003e= 1"`) {
		t.Fatalf("refused submission: %d %s", code, body)
	}
	if code, body := submit("3"); code != http.StatusOK || body != "" {
		t.Fatalf("submission: %d %s", code, body)
	}
	list, err := d.Client.Executions(ctx, starbook.Filter{Limit: 10})
	if err != nil || len(list) != 1 {
		t.Fatalf("executions %+v, %v", list, err)
	}
	e := list[0]
	if e.Trigger.Type != slackapp.TriggerSlack || e.Trigger.Source != "sam" || string(e.Input) != `{"replicas":3}` {
		t.Fatalf("execution %+v", e)
	}
	ts := e.Trigger.Attrs[slackapp.AttrMessageTS]
	awaitUpdate(ctx, t, fake, ts, "Waiting for signal `go`")

	d.kill(t)
	d = startDaemon(t, dataDir, "--auth-file", authFile, "--public-url", "https://starbook.example.com")
	if out, err := run(ctx, d.URL, "signal", e.ID, "go"); err != nil {
		t.Fatalf("starbook signal: %v: %s", err, out)
	}
	awaitUpdate(ctx, t, fake, ts, "completed")
	awaitUpdate(ctx, t, fake, ts, "https://starbook.example.com/ui/#/executions/"+e.ID)
}
