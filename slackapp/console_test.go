package slackapp

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/starbook/starbook"
	"github.com/starbook/starbook/auth"
	"github.com/starbook/starbook/builtins"
	"github.com/starbook/starbook/cluster"
	"github.com/starbook/starbook/node"
	sbruntime "github.com/starbook/starbook/runtime"
	"github.com/starbook/starbook/service"
	"github.com/starbook/starbook/slackapp/slackfake"
)

const publicURL = "https://starbook.example.com"

// The console drives the node's service.
var _ Service = (*service.Service)(nil)

// testWriter logs to t.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// The auth file's people: sam by Slack id (operator), kim by the email of
// her Slack profile (viewer), boss (admin). eve is not in it.
var consolePeople = []auth.Person{
	{Name: "sam", Role: auth.Operator, SlackID: "U0SRE1"},
	{Name: "kim", Role: auth.Viewer, Email: "kim@example.com"},
	{Name: "boss", Role: auth.Admin, SlackID: "U0BOSS"},
}

// console is a node on embedded etcd with the Slack console on its service:
// slash commands and interactions served over HTTP, run messages followed
// by the leader.
type console struct {
	*testNode
	pauses starbook.PauseService
	cfg    Config
}

// startConsole starts a console node; follow false leaves FollowRuns to the
// test.
func startConsole(t *testing.T, follow bool) *console {
	t.Helper()
	fake := slackfake.New(people, nil)
	t.Cleanup(fake.Close)
	ctx, cancel := context.WithCancel(context.Background())
	emb, err := cluster.StartEmbedded(ctx, cluster.EmbeddedConfig{Dir: t.TempDir(), Fast: true, NoFsync: true})
	if err != nil {
		t.Fatal(err)
	}
	store := cluster.NewStore(emb.Client, "/t/")
	cfg := Config{BotToken: "xoxb-test", SigningSecret: secret, AppToken: "xapp-test", APIURL: fake.URL(),
		Channel: "#ops", PublicURL: publicURL}
	app, err := New(cfg, nil, slog.New(slog.NewTextHandler(testWriter{t}, nil)))
	if err != nil {
		t.Fatal(err)
	}
	store.SetDirectory(app)
	bi := builtins.New(builtins.Options{Slack: app})
	svc := service.New(store, bi)
	dir, err := auth.NewDirectory(consolePeople, nil)
	if err != nil {
		t.Fatal(err)
	}
	app.SetService(svc)
	app.SetPauses(svc)
	app.SetPeople(dir)
	app.SetRefresh(200 * time.Millisecond)
	tasks := []func(context.Context){func(ctx context.Context) { store.RunNotifier(ctx, app, nil) }}
	if follow {
		tasks = append(tasks, app.FollowRuns)
	}
	worker, err := node.New(ctx, store, node.Config{ID: "n1", Builtins: bi, SessionTTL: 2 * time.Second,
		StopGrace: time.Second, LeaderTasks: tasks})
	if err != nil {
		t.Fatal(err)
	}
	svc.Node = worker
	done := make(chan error, 1)
	go func() { done <- worker.Run(ctx) }()
	mux := http.NewServeMux()
	mux.Handle("POST "+InteractionsPath, app)
	mux.Handle("POST "+CommandsPath, app)
	srv := httptest.NewServer(mux)
	t.Cleanup(func() {
		srv.Close()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("node run: %v", err)
		}
		store.Close()
		emb.Close()
	})
	c := &console{testNode: &testNode{store: store, svc: svc, app: app, fake: fake, srv: srv}, pauses: svc, cfg: cfg}
	c.apply(t, "deploy")
	return c
}

// apply stores testdata's deploy runbook and schema as runbook name.
func (c *console) apply(t *testing.T, name string) {
	t.Helper()
	src, err := os.ReadFile("testdata/deploy.star")
	if err != nil {
		t.Fatal(err)
	}
	sch, err := os.ReadFile("testdata/deploy.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.svc.Apply(context.Background(), map[string]string{name + ".star": string(src), name + ".schema.json": string(sch)}); err != nil {
		t.Fatal(err)
	}
}

// slashCommand is /starbook text typed by user in channel, as Slack sends it.
func slashCommand(user, channel, text string) url.Values {
	return url.Values{"token": {"unused"}, "team_id": {"T0TEAM"}, "channel_id": {channel}, "channel_name": {"oncall"},
		"user_id": {user}, "user_name": {strings.ToLower(user)}, "command": {"/starbook"}, "text": {text},
		"response_url": {"https://hooks.slack.com/commands/T0TEAM/1/x"}, "trigger_id": {"1337.42." + user}, "api_app_id": {"A0APP"}}
}

// send posts form to path signed with key at now and returns the status
// and the body.
func (c *console) send(t *testing.T, path string, form url.Values, key string) (int, string) {
	t.Helper()
	body := form.Encode()
	req, err := http.NewRequest(http.MethodPost, c.srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	req.Header.Set("X-Slack-Request-Timestamp", ts)
	req.Header.Set("X-Slack-Signature", Sign(key, ts, []byte(body)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// command runs /starbook text as user in #oncall and returns the reply's
// text (with its blocks) and response type; "" for an empty 200.
func (c *console) command(t *testing.T, user, text string) (reply, responseType string) {
	t.Helper()
	code, body := c.send(t, CommandsPath, slashCommand(user, "CONCALL", text), secret)
	if code != http.StatusOK {
		t.Fatalf("/starbook %s: %d %s", text, code, body)
	}
	if body == "" {
		return "", ""
	}
	var msg struct {
		ResponseType string `json:"response_type"`
		Text         string `json:"text"`
		Blocks       []any  `json:"blocks"`
	}
	if err := json.Unmarshal([]byte(body), &msg); err != nil {
		t.Fatalf("/starbook %s: reply %s: %v", text, body, err)
	}
	return msg.Text + "\n" + mustJSON(t, msg.Blocks), msg.ResponseType
}

// submission is the view_submission of the run modal view by user with
// values (pointer -> text; a select's value for enum and boolean fields).
func submission(t *testing.T, user string, view map[string]any, values map[string]string) map[string]any {
	t.Helper()
	state := map[string]any{}
	for _, b := range view["blocks"].([]any) {
		block := b.(map[string]any)
		if block["type"] != "input" {
			continue
		}
		id := block["block_id"].(string)
		el := block["element"].(map[string]any)
		v, ok := values[id]
		if !ok {
			continue
		}
		act := map[string]any{"type": el["type"]}
		switch el["type"] {
		case "static_select", "radio_buttons":
			act["selected_option"] = map[string]any{"value": v}
		default:
			act["value"] = v
		}
		state[id] = map[string]any{el["action_id"].(string): act}
	}
	return map[string]any{
		"type": "view_submission",
		"user": map[string]any{"id": user},
		"view": map[string]any{"id": "V1", "type": "modal", "callback_id": view["callback_id"],
			"private_metadata": view["private_metadata"], "state": map[string]any{"values": state}},
	}
}

// submit posts a view submission and returns the response body ("" when
// the modal closes).
func (c *console) submit(t *testing.T, payload map[string]any) string {
	t.Helper()
	code, body := c.send(t, InteractionsPath, url.Values{"payload": {mustJSON(t, payload)}}, secret)
	if code != http.StatusOK {
		t.Fatalf("submission: %d %s", code, body)
	}
	return strings.TrimSpace(body)
}

// awaitUpdate waits for a chat.update of the message at ts whose blocks
// hold every one of want, and returns them.
func (c *console) awaitUpdate(t *testing.T, ts string, want ...string) string {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		changed := c.fake.Changed()
		for _, u := range c.fake.Calls("chat.update") {
			if u.Form["ts"] != ts {
				continue
			}
			blocks := u.Form["blocks"]
			ok := true
			for _, w := range want {
				ok = ok && strings.Contains(blocks, w)
			}
			if ok {
				return blocks
			}
		}
		select {
		case <-changed:
		case <-deadline:
			var seen []string
			for _, u := range c.fake.Calls("chat.update") {
				seen = append(seen, u.Form["ts"]+" "+u.Form["blocks"])
			}
			t.Fatalf("no update of %s with %q within 30s; updates:\n%s", ts, want, strings.Join(seen, "\n"))
		}
	}
}

func (c *console) executions(t *testing.T) []*sbruntime.Execution {
	t.Helper()
	list, err := c.svc.Executions(context.Background(), starbook.Filter{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	return list
}

// openForm types /starbook run NAME as user and returns the modal opened.
func (c *console) openForm(t *testing.T, user, runbook string) map[string]any {
	t.Helper()
	n := len(c.fake.Calls("views.open"))
	if reply, _ := c.command(t, user, "run "+runbook); reply != "" {
		t.Fatalf("run %s: reply %s, want a modal", runbook, reply)
	}
	calls := c.fake.Calls("views.open")
	if len(calls) != n+1 {
		t.Fatalf("%d views.open calls, want %d", len(calls), n+1)
	}
	if calls[n].Form["trigger_id"] != "1337.42."+user {
		t.Fatalf("views.open with trigger %q", calls[n].Form["trigger_id"])
	}
	return calls[n].View()
}

// The run modal is the runbook's form: one input per field, its block and
// action ids the field's JSON pointer; a bad value comes back at its field
// and starts nothing; a good one starts the run as the mapped user and
// posts a message that follows the run to its end.
func TestSlackRunFromModal(t *testing.T) {
	c := startConsole(t, true)
	view := c.openForm(t, "U0SRE1", "deploy")
	if view["callback_id"] != RunCallbackID || view["title"].(map[string]any)["text"] != "Run deploy" {
		t.Fatalf("view %s", mustJSON(t, view))
	}
	var meta runMetadata
	if err := json.Unmarshal([]byte(view["private_metadata"].(string)), &meta); err != nil || meta != (runMetadata{"deploy", "CONCALL"}) {
		t.Fatalf("metadata %v: %v", view["private_metadata"], err)
	}
	type input struct{ element, label, extra string }
	got := map[string]input{}
	var order []string
	for _, b := range view["blocks"].([]any) {
		block := b.(map[string]any)
		el := block["element"].(map[string]any)
		if el["action_id"] != block["block_id"] {
			t.Errorf("block %v: action id %v", block["block_id"], el["action_id"])
		}
		in := input{element: el["type"].(string), label: block["label"].(map[string]any)["text"].(string)}
		if block["optional"] != true {
			in.extra += " required"
		}
		if el["multiline"] == true {
			in.extra += " multiline"
		}
		for _, k := range []string{"min_value", "max_value", "initial_value"} {
			if v, ok := el[k]; ok {
				in.extra += fmt.Sprintf(" %s=%v", k, v)
			}
		}
		if o, ok := el["initial_option"].(map[string]any); ok {
			in.extra += fmt.Sprintf(" initial=%v", o["value"])
		}
		if h, ok := block["hint"].(map[string]any); ok {
			in.extra += " hint=" + h["text"].(string)
		}
		id := block["block_id"].(string)
		got[id] = in
		order = append(order, id)
	}
	want := map[string]input{
		"/namespace":   {"plain_text_input", "Namespace", " required hint=Kubernetes namespace Pattern ^[a-z0-9-]+$."},
		"/replicas":    {"number_input", "replicas", " required min_value=1 max_value=50 initial_value=3"},
		"/dry_run":     {"radio_buttons", "dry_run", " initial=true"},
		"/extra":       {"plain_text_input", "extra", " multiline hint=JSON."},
		"/hosts":       {"plain_text_input", "hosts", " multiline hint=One value per line."},
		"/owner/team":  {"plain_text_input", "owner › team", ""}, // required in an optional object
		"/owner/email": {"plain_text_input", "owner › email", " hint=Format: email."},
		"/severity":    {"static_select", "severity", " initial=ticket"},
	}
	if len(got) != len(want) || order[0] != "/namespace" || order[1] != "/replicas" {
		t.Errorf("inputs in order %v, want %d", order, len(want))
	}
	for id, w := range want {
		if got[id] != w {
			t.Errorf("input %s: %+v, want %+v", id, got[id], w)
		}
	}

	// Refused values come back at their field; nothing is posted or started.
	for _, tc := range []struct {
		name   string
		values map[string]string
		block  string
		msg    string
	}{
		{"below the minimum", map[string]string{"/namespace": "web", "/replicas": "0"}, "/replicas", "minimum: got 0, want >= 1"},
		{"not an integer", map[string]string{"/namespace": "web", "/replicas": "2.5"}, "/replicas", `"2.5" is not an integer`},
		{"pattern", map[string]string{"/namespace": "Web!", "/replicas": "2"}, "/namespace", "pattern"},
		{"required in an object", map[string]string{"/namespace": "web", "/replicas": "2", "/owner/email": "a@example.com"}, "/owner/team", "team"},
		{"an empty list is left out", map[string]string{"/namespace": "web", "/replicas": "2", "/hosts": "\n"}, "/namespace", ""}, // empty: left out, no error
		{"not JSON", map[string]string{"/namespace": "web", "/replicas": "2", "/extra": "{"}, "/extra", "not valid JSON"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := c.submit(t, submission(t, "U0SRE1", view, tc.values))
			if tc.msg == "" {
				if body != "" {
					t.Fatalf("answer %s, want none", body)
				}
				return
			}
			var resp struct {
				Action string            `json:"response_action"`
				Errors map[string]string `json:"errors"`
			}
			if err := json.Unmarshal([]byte(body), &resp); err != nil || resp.Action != "errors" || len(resp.Errors) != 1 ||
				!strings.Contains(resp.Errors[tc.block], tc.msg) {
				t.Fatalf("answer %s, want an error at %s saying %q", body, tc.block, tc.msg)
			}
		})
	}
	// The "empty hosts" case started a run (a good value); the refused ones did not.
	list := c.executions(t)
	if len(list) != 1 || len(c.fake.Calls("chat.postMessage")) != 1 {
		t.Fatalf("%d executions and %d posts after one good submission", len(list), len(c.fake.Calls("chat.postMessage")))
	}
	if _, err := c.svc.Cancel(context.Background(), list[0].ID); err != nil {
		t.Fatal(err)
	}

	body := c.submit(t, submission(t, "U0SRE1", view, map[string]string{"/namespace": "web", "/replicas": "4",
		"/dry_run": "false", "/severity": "page", "/hosts": "a.example\nb.example", "/owner/team": "sre", "/extra": "7"}))
	if body != "" {
		t.Fatalf("good submission answered %s", body)
	}
	list = c.executions(t)
	e := list[0]
	if len(list) != 2 || e.Runbook != "deploy" || e.Trigger.Type != TriggerSlack || e.Trigger.Source != "sam" ||
		e.Trigger.Attrs[AttrSlackUser] != "U0SRE1" || e.Trigger.Attrs[AttrChannel] != "CONCALL" {
		t.Fatalf("executions %d, newest %+v", len(list), e)
	}
	if want := `{"dry_run":false,"extra":7,"hosts":["a.example","b.example"],"namespace":"web","owner":{"team":"sre"},"replicas":4,"severity":"page"}`; string(e.Input) != want {
		t.Fatalf("input %s\nwant  %s", e.Input, want)
	}
	posts := c.fake.Calls("chat.postMessage")
	post := posts[len(posts)-1]
	if post.Form["channel"] != "CONCALL" || !strings.Contains(post.Form["text"], "Starting *deploy* for sam") ||
		e.Trigger.Attrs[AttrMessageTS] == "" {
		t.Fatalf("post %+v, trigger %+v", post.Form, e.Trigger)
	}
	ts := e.Trigger.Attrs[AttrMessageTS]
	c.awaitUpdate(t, ts, "waiting", "Waiting for signal `go`", e.ID, "sam (\\u003c@U0SRE1\\u003e)",
		publicURL+"/ui/#/executions/"+e.ID, "1 done; last: 1 `now`")
	if err := c.svc.Signal(context.Background(), e.ID, "go", nil, "test"); err != nil {
		t.Fatal(err)
	}
	c.end(t, e.ID)
	c.awaitUpdate(t, ts, "completed", `\"replicas\": 4`)

	recs, err := c.svc.Audit(context.Background(), "", 100)
	if err != nil {
		t.Fatal(err)
	}
	starts := 0
	for _, r := range recs {
		if r.Action == "execution.start" && r.Actor == "sam" && r.Outcome == starbook.AuditOK && r.Detail == "via slack U0SRE1" {
			starts++
		}
	}
	if starts != 2 {
		t.Fatalf("%d audited starts by sam, want 2: %+v", starts, recs)
	}
}

// startDeploy starts deploy directly (as the CLI would) and waits until it
// waits for its signal.
func (c *console) startDeploy(t *testing.T) *sbruntime.Execution {
	t.Helper()
	ctx := context.Background()
	e, err := c.svc.Start(ctx, "deploy", json.RawMessage(`{"namespace":"web","replicas":2}`), sbruntime.Trigger{Type: "manual", Source: "cli"})
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(20 * time.Second); ; {
		waits, err := c.svc.ExecutionWaits(ctx, e.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(waits) == 1 {
			return e
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s does not wait", e.ID)
		}
		time.Sleep(10 * time.Millisecond) // polling storage: no event to wait on from here
	}
}

func (c *console) status(t *testing.T, id string) sbruntime.Status {
	t.Helper()
	e, _, err := c.svc.Execution(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return e.Status
}

// Each command does what it says for a role that may, and nothing but an
// ephemeral refusal for one that may not or for someone the auth file does
// not name.
func TestSlackCommands(t *testing.T) {
	c := startConsole(t, false)
	e := c.startDeploy(t)
	contains := func(t *testing.T, what, got string, want ...string) {
		t.Helper()
		for _, w := range want {
			if !strings.Contains(got, w) {
				t.Fatalf("%s: %q lacks %q", what, got, w)
			}
		}
	}

	// kim is mapped by her Slack profile's email, as a viewer.
	reply, kind := c.command(t, "U0SRE2", "status "+e.ID)
	contains(t, "status", reply, e.ID, "waiting", "Waiting for signal `go`", "cli", publicURL+"/ui/#/executions/"+e.ID)
	if kind != "ephemeral" {
		t.Fatalf("status reply is %q", kind)
	}
	reply, _ = c.command(t, "U0SRE2", "cancel "+e.ID)
	contains(t, "viewer cancels", reply, "kim is a viewer: that role may not cancel")
	reply, _ = c.command(t, "U0SRE2", "pause deploy because")
	contains(t, "viewer pauses", reply, "kim is a viewer: that role may not pause")
	if c.status(t, e.ID) != sbruntime.StatusWaiting {
		t.Fatal("a refused cancel cancelled")
	}

	// eve is not in the auth file: told so, with the id to add; nothing done.
	for _, text := range []string{"run deploy", "cancel " + e.ID, "pause deploy x", "ls", "status " + e.ID} {
		reply, kind := c.command(t, "U0EVE1", text)
		contains(t, "eve: "+text, reply, "not in starbook's auth file", "slack_id: U0EVE1")
		if kind != "ephemeral" {
			t.Fatalf("refusal is %q", kind)
		}
	}
	if n := len(c.fake.Calls("views.open")); n != 0 {
		t.Fatalf("%d modals opened for refused users", n)
	}
	if ps, _ := c.pauses.PauseState(context.Background(), "deploy"); ps.Paused || c.status(t, e.ID) != sbruntime.StatusWaiting {
		t.Fatalf("refused commands changed something: %+v, %s", ps, c.status(t, e.ID))
	}

	// Unknown commands and bad arguments get the usage.
	for _, text := range []string{"frobnicate", "status", "cancel a b", "ls now", "run --all"} {
		reply, _ := c.command(t, "U0SRE1", text)
		contains(t, text, reply, "/starbook run NAME")
	}
	reply, _ = c.command(t, "U0SRE1", "")
	contains(t, "help", reply, "/starbook ls")
	reply, _ = c.command(t, "U0SRE1", "status 01NOSUCH")
	contains(t, "status of nothing", reply, "execution 01NOSUCH: not found")
	reply, _ = c.command(t, "U0SRE1", "run nosuch")
	contains(t, "run of nothing", reply, "runbook nosuch: not found")

	// sam, an operator, pauses: the channel sees it, ls and the run form say so.
	reply, kind = c.command(t, "U0SRE1", "pause deploy  maintenance window, back at 3")
	contains(t, "pause", reply, "*deploy* paused by sam", "maintenance window, back at 3")
	if kind != "in_channel" {
		t.Fatalf("pause reply is %q", kind)
	}
	if ps, _ := c.pauses.PauseState(context.Background(), "deploy"); !ps.Paused || ps.By != "sam" || ps.Reason != "maintenance window, back at 3" {
		t.Fatalf("pause state %+v", ps)
	}
	reply, _ = c.command(t, "U0SRE2", "ls")
	contains(t, "ls", reply, "*deploy* is paused by sam: maintenance window", e.ID, "waiting", "manual by cli")
	reply, _ = c.command(t, "U0SRE1", "status "+e.ID)
	contains(t, "status of a paused runbook", reply, "is paused by sam")
	view := c.openForm(t, "U0SRE1", "deploy")
	contains(t, "form of a paused runbook", mustJSON(t, view["blocks"]), "*deploy* is paused by sam", "A run started now is refused")
	// A run submitted while paused is refused: the message says so, nothing starts.
	if body := c.submit(t, submission(t, "U0SRE1", view, map[string]string{"/namespace": "web", "/replicas": "2"})); body != "" {
		t.Fatalf("submission while paused answered %s", body)
	}
	refused := c.awaitCall(t, "chat.update", 1)
	contains(t, "run while paused", refused.Form["text"], ":no_entry: sam's run of deploy: runbook deploy is paused by sam")
	if n := len(c.executions(t)); n != 1 {
		t.Fatalf("%d executions after a run refused by the pause", n)
	}
	reply, _ = c.command(t, "U0SRE1", "pause nosuch x")
	contains(t, "pause of nothing", reply, "pause nosuch: not found")
	reply, _ = c.command(t, "U0SRE1", "resume deploy")
	contains(t, "resume", reply, "*deploy* resumed by sam")
	if ps, _ := c.pauses.PauseState(context.Background(), "deploy"); ps.Paused {
		t.Fatalf("still paused: %+v", ps)
	}
	reply, _ = c.command(t, "U0BOSS", "pause --all freeze")
	contains(t, "pause --all", reply, "every runbook paused by boss")
	reply, _ = c.command(t, "U0SRE2", "ls")
	contains(t, "ls --all", reply, "every runbook is paused by boss: freeze")
	c.command(t, "U0BOSS", "resume --all")

	// sam cancels.
	reply, _ = c.command(t, "U0SRE1", "cancel "+e.ID)
	contains(t, "cancel", reply, "Cancelled `"+e.ID+"`")
	if got := c.end(t, e.ID).Status; got != sbruntime.StatusCancelled {
		t.Fatalf("after cancel: %s", got)
	}
	reply, _ = c.command(t, "U0SRE1", "cancel "+e.ID)
	contains(t, "second cancel", reply, ":no_entry: cancel "+e.ID)
	recs, err := c.svc.Audit(context.Background(), "", 100)
	if err != nil {
		t.Fatal(err)
	}
	var cancels, pauses []string
	for _, r := range recs {
		switch r.Action {
		case "execution.cancel":
			cancels = append(cancels, r.Actor+" "+r.Outcome)
		case "runbook.pause", "runbook.resume":
			pauses = append(pauses, r.Actor+" "+r.Action+" "+r.Runbook)
		}
	}
	if strings.Join(cancels, ",") != "sam ok,sam refused" {
		t.Fatalf("audited cancels %v", cancels)
	}
	if want := "sam runbook.pause deploy,sam runbook.resume deploy,boss runbook.pause *,boss runbook.resume *"; strings.Join(pauses, ",") != want {
		t.Fatalf("audited pauses %v, want %s", pauses, want)
	}
}

// A request not signed with the signing secret, or signed too long ago, is
// refused with 401 and does nothing.
func TestSlackForgedCommand(t *testing.T) {
	c := startConsole(t, false)
	e := c.startDeploy(t)
	before := len(c.fake.Calls(""))
	code, _ := c.send(t, CommandsPath, slashCommand("U0BOSS", "CONCALL", "cancel "+e.ID), "not-the-secret")
	if code != http.StatusUnauthorized {
		t.Fatalf("forged command: %d", code)
	}
	view := map[string]any{"callback_id": RunCallbackID, "private_metadata": `{"runbook":"deploy","channel":"CONCALL"}`, "blocks": []any{}}
	code, _ = c.send(t, InteractionsPath, url.Values{"payload": {mustJSON(t, submission(t, "U0BOSS", view, nil))}}, "not-the-secret")
	if code != http.StatusUnauthorized {
		t.Fatalf("forged submission: %d", code)
	}
	stale := signed(t, c.srv.URL+CommandsPath, nil, secret, time.Now().Add(-10*time.Minute))
	stale.RequestURI = ""
	resp, err := http.DefaultClient.Do(stale)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("stale request: %d", resp.StatusCode)
	}
	if c.status(t, e.ID) != sbruntime.StatusWaiting || len(c.executions(t)) != 1 || len(c.fake.Calls("")) != before {
		t.Fatalf("a forged request did something: %s, %d executions, %d Slack calls", c.status(t, e.ID), len(c.executions(t)), len(c.fake.Calls(""))-before)
	}
}

// awaitAck waits for the Socket Mode acknowledgement of envelope id and
// returns its payload (nil for none).
func (c *console) awaitAck(t *testing.T, id string) json.RawMessage {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		changed := c.fake.Changed()
		for _, a := range c.fake.Acks() {
			if a == id {
				return c.fake.AckPayload(id)
			}
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("envelope %s not acknowledged: %v; calls %+v", id, c.fake.Acks(), c.fake.Calls(""))
		}
	}
}

// Over Socket Mode, a slash command's reply and a modal's field errors go
// back in the envelopes' acknowledgements; the run starts as over HTTP.
func TestSlackSocketModeConsole(t *testing.T) {
	c := startConsole(t, true)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.app.RunSocketMode(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("RunSocketMode: %v", err)
		}
	}()
	command := func(user, text string) map[string]any {
		return map[string]any{"user_id": user, "user_name": "x", "channel_id": "CONCALL", "team_id": "T0TEAM",
			"command": "/starbook", "text": text, "trigger_id": "1337.42." + user}
	}

	c.fake.SendSlashCommand("env-1", command("U0SRE1", "run deploy"))
	if p := c.awaitAck(t, "env-1"); p != nil {
		t.Fatalf("run answered %s, want a modal", p)
	}
	opens := c.fake.Calls("views.open")
	if len(opens) != 1 || opens[0].Form["trigger_id"] != "1337.42.U0SRE1" {
		t.Fatalf("views.open calls %+v", opens)
	}
	view := opens[0].View()

	c.fake.SendInteraction("env-2", submission(t, "U0SRE1", view, map[string]string{"/namespace": "web", "/replicas": "99"}))
	var resp struct {
		Action string            `json:"response_action"`
		Errors map[string]string `json:"errors"`
	}
	if p := c.awaitAck(t, "env-2"); json.Unmarshal(p, &resp) != nil || resp.Action != "errors" ||
		!strings.Contains(resp.Errors["/replicas"], "maximum: got 99, want <= 50") {
		t.Fatalf("refused submission acknowledged with %s", p)
	}
	if n := len(c.executions(t)); n != 0 {
		t.Fatalf("%d executions after a refused submission", n)
	}

	c.fake.SendInteraction("env-3", submission(t, "U0SRE1", view, map[string]string{"/namespace": "web", "/replicas": "5"}))
	if p := c.awaitAck(t, "env-3"); p != nil {
		t.Fatalf("good submission acknowledged with %s", p)
	}
	list := c.executions(t)
	if len(list) != 1 || list[0].Trigger.Source != "sam" || string(list[0].Input) != `{"namespace":"web","replicas":5}` {
		t.Fatalf("executions %+v", list)
	}
	id := list[0].ID
	c.awaitUpdate(t, list[0].Trigger.Attrs[AttrMessageTS], "Waiting for signal `go`")

	c.fake.SendSlashCommand("env-4", command("U0SRE2", "status "+id))
	var msg struct {
		ResponseType string `json:"response_type"`
		Text         string `json:"text"`
		Blocks       []any  `json:"blocks"`
	}
	p := c.awaitAck(t, "env-4")
	if json.Unmarshal(p, &msg) != nil || msg.ResponseType != "ephemeral" || !strings.Contains(mustJSON(t, msg.Blocks), "Waiting for signal `go`") {
		t.Fatalf("status acknowledged with %s", p)
	}
	c.fake.SendSlashCommand("env-5", command("U0EVE1", "cancel "+id))
	if p := c.awaitAck(t, "env-5"); !strings.Contains(string(p), "not in starbook's auth file") || c.status(t, id) != sbruntime.StatusWaiting {
		t.Fatalf("unmapped user's cancel: %s, run %s", p, c.status(t, id))
	}
}

// follow runs app's FollowRuns until the returned stop is called; stop
// waits for it to return.
func follow(app *App) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		app.FollowRuns(ctx)
	}()
	return func() { cancel(); <-done }
}

// A run's message is kept in step by whichever node leads: where it is
// lives in the run's trigger, so a new leader (here a new App, with nothing
// in memory) gives a run that ended while none led its final update, and
// follows a run still in flight to its end.
func TestSlackRunMessageSurvivesLeaderChange(t *testing.T) {
	c := startConsole(t, false)
	view := c.openForm(t, "U0SRE1", "deploy")
	start := func(replicas string) *sbruntime.Execution {
		t.Helper()
		if body := c.submit(t, submission(t, "U0SRE1", view, map[string]string{"/namespace": "web", "/replicas": replicas})); body != "" {
			t.Fatalf("submission answered %s", body)
		}
		for _, e := range c.executions(t) {
			if strings.Contains(string(e.Input), `"replicas":`+replicas) {
				return e
			}
		}
		t.Fatalf("no run with %s replicas", replicas)
		return nil
	}
	signal := func(id string) {
		t.Helper()
		if err := c.svc.Signal(context.Background(), id, "go", nil, "test"); err != nil {
			t.Fatal(err)
		}
		c.end(t, id)
	}
	first := start("1")
	ts1 := first.Trigger.Attrs[AttrMessageTS]
	stop := follow(c.app) // the first leader
	c.awaitUpdate(t, ts1, "Waiting for signal `go`")
	stop() // it loses leadership

	second := start("2")
	ts2 := second.Trigger.Attrs[AttrMessageTS]
	signal(first.ID) // ends while no node leads
	for _, u := range c.fake.Calls("chat.update") {
		if u.Form["ts"] == ts1 && strings.Contains(u.Form["blocks"], "completed") {
			t.Fatal("updated with no leader")
		}
	}

	next, err := New(c.cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	next.SetService(c.svc)
	next.SetPauses(c.pauses)
	dir, _ := auth.NewDirectory(consolePeople, nil)
	next.SetPeople(dir)
	next.SetRefresh(200 * time.Millisecond)
	defer follow(next)() // the next leader
	c.awaitUpdate(t, ts1, "completed", `\"replicas\": 1`)
	c.awaitUpdate(t, ts2, "Waiting for signal `go`")
	signal(second.ID)
	c.awaitUpdate(t, ts2, "completed", `\"replicas\": 2`)
}

func TestParseCommand(t *testing.T) {
	for _, tc := range []struct {
		text string
		want Command
		err  string
	}{
		{"", Command{Verb: "help"}, ""},
		{"run deploy", Command{Verb: "run", Arg: "deploy"}, ""},
		{"  RUN   deploy ", Command{Verb: "run", Arg: "deploy"}, ""},
		{"pause deploy  DB migration, back at 3", Command{Verb: "pause", Arg: "deploy", Reason: "DB migration, back at 3"}, ""},
		{"pause\tdeploy", Command{Verb: "pause", Arg: "deploy"}, ""},
		{"pause --all freeze", Command{Verb: "pause", Arg: starbook.AllRunbooks, Reason: "freeze"}, ""},
		{"resume --all", Command{Verb: "resume", Arg: starbook.AllRunbooks}, ""},
		{"list", Command{Verb: "ls"}, ""},
		{"status", Command{}, "status needs the execution id"},
		{"cancel a b", Command{}, `cancel takes one execution id, not "a b"`},
		{"resume a b", Command{}, `resume takes one runbook name, not "a b"`},
		{"ls -l", Command{}, "ls takes no argument"},
		{"run --all", Command{}, "run has no --all"},
		{"pause * freeze", Command{}, `pause: "*" is not accepted (pause and resume take --all for every runbook)`},
		{"status *", Command{}, `status: "*" is not accepted (pause and resume take --all for every runbook)`},
		{"deploy", Command{}, `unknown command "deploy"`},
	} {
		got, err := ParseCommand(tc.text)
		if got != tc.want || (err == nil) != (tc.err == "") || (err != nil && err.Error() != tc.err) {
			t.Errorf("ParseCommand(%q) = %+v, %v; want %+v, %q", tc.text, got, err, tc.want, tc.err)
		}
	}
}

// The approval request of a paused runbook's run says the runbook is
// paused (and that the run goes on).
func TestSlackApprovalShowsPause(t *testing.T) {
	c := startConsole(t, false)
	if _, err := c.svc.Apply(context.Background(), map[string]string{"restart.star": `
def main(event):
    return bool(wait_for_approval("Restart?", approvers = ["U0SRE1"], channel = "#oncall"))
`}); err != nil {
		t.Fatal(err)
	}
	if reply, _ := c.command(t, "U0SRE1", "pause restart flapping alerts"); !strings.Contains(reply, "paused by sam") {
		t.Fatalf("pause: %s", reply)
	}
	// Started by hand past the pause (admin's force).
	if _, err := c.svc.Start(context.Background(), "restart", nil, sbruntime.Trigger{Type: "manual", Source: "cli",
		Attrs: map[string]string{starbook.AttrForced: ""}}); err != nil {
		t.Fatal(err)
	}
	post := c.awaitCall(t, "chat.postMessage", 1)
	if b := mustJSON(t, post.Blocks()); !strings.Contains(b, "*restart* is paused by sam: flapping alerts (this run goes on).") ||
		!strings.Contains(b, "Restart?") {
		t.Fatalf("approval request %s", b)
	}
}
