package slackapp_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode"

	"github.com/starbook/starbook"
	sbruntime "github.com/starbook/starbook/runtime"
	"github.com/starbook/starbook/slackapp"
	"github.com/starbook/starbook/slackapp/slackfake"
)

// countingDecider records the decisions it is asked to make.
type countingDecider struct {
	mu    sync.Mutex
	calls []sbruntime.Decision
}

func (d *countingDecider) Decide(_ context.Context, id, pos string, dec sbruntime.Decision) (*sbruntime.ApprovalState, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if id == "" || pos == "" || dec.Via != sbruntime.ViaSlack {
		panic("decider called with " + id + " " + pos + " " + dec.Via)
	}
	d.calls = append(d.calls, dec)
	return &sbruntime.ApprovalState{Execution: id, Position: pos, Resolved: true,
		Result: &sbruntime.ApprovalResult{Approved: dec.Approve, By: []string{dec.User}}}, nil
}

// FuzzSlackInteraction posts arbitrary interaction payloads, signed and
// unsigned, to /slack/interactions: nothing panics, an unsigned or stale
// request is refused with 401 and decides nothing, a signed one is answered
// 200 or 400, and a decision is made only for an Approve or Reject button
// of an approval request.
func FuzzSlackInteraction(f *testing.F) {
	button := func(action, value string) string {
		b, _ := json.Marshal(map[string]any{"type": "block_actions", "user": map[string]any{"id": "U1"},
			"channel": map[string]any{"id": "C1"},
			"actions": []map[string]any{{"type": "button", "block_id": slackapp.ApprovalBlockID, "action_id": action, "value": value}}})
		return string(b)
	}
	f.Add(button(slackapp.ActionApprove, `{"execution":"E1","position":"3"}`), true, int64(0))
	f.Add(button(slackapp.ActionReject, `{"execution":"E1","position":""}`), true, int64(0))
	f.Add(button("other", `not json`), true, int64(0))
	f.Add(`{"type":"view_submission","view":{"state":{"values":{}}}}`, true, int64(0))
	f.Add(`{"type":"block_actions","actions":[null,{"value":7}]}`, true, int64(0))
	f.Add(button(slackapp.ActionApprove, `{"execution":"E1","position":"3"}`), false, int64(0))
	f.Add(button(slackapp.ActionApprove, `{"execution":"E1","position":"3"}`), true, int64(-600))
	f.Add(`}{`, true, int64(0))
	const secret = "fuzz-signing-secret"
	fake := slackfake.New(nil, nil)
	f.Cleanup(fake.Close)
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, payload string, sign bool, skew int64) {
		d := &countingDecider{}
		app, err := slackapp.New(slackapp.Config{BotToken: "xoxb-fuzz", SigningSecret: secret, APIURL: fake.URL()}, d, nil)
		if err != nil {
			t.Fatal(err)
		}
		app.SetClock(func() time.Time { return now })
		body := "payload=" + url.QueryEscape(payload)
		ts := strconv.FormatInt(now.Unix()+skew, 10)
		r := httptest.NewRequest(http.MethodPost, slackapp.InteractionsPath, strings.NewReader(body))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.Header.Set("X-Slack-Request-Timestamp", ts)
		if sign {
			r.Header.Set("X-Slack-Signature", slackapp.Sign(secret, ts, []byte(body)))
		} else {
			r.Header.Set("X-Slack-Signature", "v0="+strings.Repeat("0", 64))
		}
		w := httptest.NewRecorder()
		app.ServeHTTP(w, r)
		fresh := skew >= -300 && skew <= 300
		switch {
		case !sign || !fresh:
			if w.Code != http.StatusUnauthorized || len(d.calls) != 0 {
				t.Fatalf("unverified request: %d, %d decisions", w.Code, len(d.calls))
			}
		case w.Code != http.StatusOK && w.Code != http.StatusBadRequest:
			t.Fatalf("signed request: %d %s", w.Code, w.Body)
		}
		if len(d.calls) > 0 && !strings.Contains(payload, slackapp.ApprovalBlockID) {
			t.Fatalf("decided %+v from a payload without an approval block", d.calls)
		}
	})
}

// FuzzParseCommand parses arbitrary /starbook texts: nothing panics; a
// parsed command has a known verb, and its argument is one word taken from
// the text (--all only for pause and resume); pause's reason is the rest.
func FuzzParseCommand(f *testing.F) {
	for _, s := range []string{"", "help", "run deploy", "status 01J", "cancel 01J extra", "pause deploy window 1 \t2", "pause deploy\twhy", "cancel\n01J",
		"pause --all", "resume --all", "run --all", "ls", "LS", "list", "ls x", "frobnicate", "  run\u00a0x ", "pause", "status \n"} {
		f.Add(s)
	}
	known := map[string]bool{"run": true, "status": true, "cancel": true, "pause": true, "resume": true, "ls": true, "help": true}
	f.Fuzz(func(t *testing.T, text string) {
		c, err := slackapp.ParseCommand(text)
		if err != nil {
			if err.Error() == "" || c != (slackapp.Command{}) {
				t.Fatalf("%q: error %q with %+v", text, err, c)
			}
			return
		}
		if !known[c.Verb] {
			t.Fatalf("%q: verb %q", text, c.Verb)
		}
		switch c.Verb {
		case "ls", "help":
			if c.Arg != "" || c.Reason != "" {
				t.Fatalf("%q: %+v", text, c)
			}
			return
		}
		if c.Arg == "" || strings.ContainsFunc(c.Arg, unicode.IsSpace) {
			t.Fatalf("%q: argument %q", text, c.Arg)
		}
		if c.Arg == starbook.AllRunbooks {
			if c.Verb != "pause" && c.Verb != "resume" {
				t.Fatalf("%q: --all for %s", text, c.Verb)
			}
		} else if !strings.Contains(text, c.Arg) {
			t.Fatalf("%q: argument %q is not in the text", text, c.Arg)
		}
		if c.Verb != "pause" && c.Reason != "" {
			t.Fatalf("%q: a reason for %s", text, c.Verb)
		}
		if c.Reason != "" && !strings.HasSuffix(strings.TrimSpace(text), c.Reason) {
			t.Fatalf("%q: reason %q is not the rest of the text", text, c.Reason)
		}
	})
}
