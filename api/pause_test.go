package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/starbook/starbook"
	"github.com/starbook/starbook/api"
	sbruntime "github.com/starbook/starbook/runtime"
)

var pauseRunbooks = map[string]string{
	"crash.star": `
trigger.alert(alertname = "Crash")

def main(event):
    return event["labels"]["pod"]
`,
	"deploy.star": `
trigger.webhook("deploy", token_env = "PAUSE_HOOK_TOKEN")

def main(event):
    return event["version"]
`,
	"waits.star": `
def main(event):
    return wait_for_signal("go")
`,
}

// apiStatus returns the HTTP status of an *api.Error, 0 for another error.
func apiStatus(err error) int {
	var ae *api.Error
	if errors.As(err, &ae) {
		return ae.Status
	}
	return 0
}

func postJSON(t *testing.T, url, body string, hdr map[string]string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestPauseRefusesBadInput: an unknown runbook, an until in the past, a
// body that is not a PauseRequest: each refused with a clear error, and
// nothing stored but the audit record of the refusal.
func TestPauseRefusesBadInput(t *testing.T) {
	d := startDLNode(t)
	d.apply(t, pauseRunbooks)
	ctx := context.Background()
	before := d.keysExceptAudit(t)
	for _, c := range []struct {
		what, path, body string
		status           int
		want             string
	}{
		{"unknown runbook", "/api/v1/runbooks/nope/pause", `{"paused": true}`, 404, `runbook \"nope\": not found`},
		{"until in the past", "/api/v1/runbooks/crash/pause", `{"paused": true, "until": "2020-01-01T00:00:00Z"}`, 400, "not in the future"},
		{"every runbook, until in the past", "/api/v1/pause", `{"paused": true, "until": "2020-01-01T00:00:00Z"}`, 400, "not in the future"},
		{"until not a time", "/api/v1/runbooks/crash/pause", `{"paused": true, "until": "2h"}`, 400, `until \"2h\": want an RFC 3339 time`},
		{"bad JSON", "/api/v1/runbooks/crash/pause", `{"paused": tru`, 400, "invalid request body"},
		{"unknown field", "/api/v1/runbooks/crash/pause", `{"paused": true, "why": "x"}`, 400, "unknown field"},
		{"resume with until", "/api/v1/runbooks/crash/pause", `{"paused": false, "until": "2099-01-01T00:00:00Z"}`, 400, "not a resume"},
		{"invalid name", "/api/v1/runbooks/Crash/pause", `{"paused": true}`, 400, "invalid runbook name"},
	} {
		status, body := postJSON(t, d.url+c.path, c.body, nil)
		if status != c.status || !strings.Contains(body, c.want) {
			t.Errorf("%s: %d %s, want %d with %q", c.what, status, body, c.status, c.want)
		}
	}
	if _, err := d.cli.Pause(ctx, "nope", starbook.PauseRequest{Paused: false}); apiStatus(err) != 404 {
		t.Errorf("resume of an unknown runbook: %v, want a 404", err)
	}
	if after := d.keysExceptAudit(t); !maps.Equal(before, after) {
		t.Errorf("refused pauses changed the store:\nbefore %v\nafter  %v", before, after)
	}
	if st, err := d.cli.PauseState(ctx, "crash"); err != nil || st.Paused {
		t.Errorf("crash after refused pauses: %+v, %v; want not paused", st, err)
	}
}

// TestPauseAlertsAndManualStarts: a paused runbook's alert starts nothing
// and becomes a paused dead letter with its payload; a manual start gets
// 409 naming who paused it and why, unless forced; the listing shows the
// pause; once resumed, the dead letter replays once.
func TestPauseAlertsAndManualStarts(t *testing.T) {
	t.Setenv("PAUSE_HOOK_TOKEN", "hook-token-0123456789")
	d := startDLNode(t)
	d.apply(t, pauseRunbooks)
	ctx := context.Background()

	until := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	st, err := d.cli.Pause(ctx, "crash", starbook.PauseRequest{Paused: true, Reason: "db migration", Until: until})
	if err != nil {
		t.Fatal(err)
	}
	if !st.Paused || st.By != "alice" || st.Reason != "db migration" || !st.Until.Equal(until) || st.At.IsZero() {
		t.Fatalf("pause: %+v", st)
	}
	if got, err := d.cli.PauseState(ctx, "crash"); err != nil || !got.Paused || got.By != "alice" {
		t.Fatalf("GET pause: %+v, %v", got, err)
	}
	rbs, err := d.cli.Runbooks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, rb := range rbs {
		if paused := rb.Pause != nil; paused != (rb.Name == "crash") {
			t.Errorf("runbook %s listed with pause %+v", rb.Name, rb.Pause)
		}
	}
	if list, err := d.cli.Pauses(ctx); err != nil || len(list) != 1 || list[0].Runbook != "crash" {
		t.Errorf("pauses: %+v, %v", list, err)
	}
	resp, err := http.Get(d.url + "/api/v1/runbooks/crash")
	if err != nil {
		t.Fatal(err)
	}
	var info starbook.RunbookInfo
	_ = json.NewDecoder(resp.Body).Decode(&info)
	resp.Body.Close()
	if info.Pause == nil || info.Pause.By != "alice" || info.Pause.Reason != "db migration" {
		t.Errorf("GET /api/v1/runbooks/crash: pause %+v", info.Pause)
	}

	d.alert(t, firing("Crash", "f00dcafe01"))
	if list, _ := d.cli.Executions(ctx, starbook.Filter{Runbook: "crash"}); len(list) != 0 {
		t.Fatalf("a paused runbook's alert started %d runs", len(list))
	}
	dls := d.deadLetters(t, starbook.DeadLetterFilter{Reason: starbook.ReasonPaused})
	if len(dls) != 1 {
		t.Fatalf("paused dead letters: %v", dls)
	}
	var dl *starbook.DeadLetter
	for _, v := range dls {
		dl = v
	}
	var payload struct {
		Labels map[string]string `json:"labels"`
	}
	if err := json.Unmarshal(dl.Payload, &payload); err != nil || payload.Labels["pod"] != "api-1" ||
		dl.Runbook != "crash" || dl.Source != "alertmanager" || !strings.Contains(dl.Detail, "alice") {
		t.Errorf("dead letter %+v (payload %s, %v)", dl, dl.Payload, err)
	}

	// A manual start: 409, naming the pause; forced (no auth here): started,
	// the record saying whose pause it overrode.
	_, err = d.cli.Start(ctx, "crash", json.RawMessage(`{"labels": {"pod": "x"}}`))
	if apiStatus(err) != 409 || !strings.Contains(err.Error(), "paused by alice") || !strings.Contains(err.Error(), "db migration") {
		t.Errorf("manual start of a paused runbook: %v, want 409 naming alice and the reason", err)
	}
	e, err := d.cli.StartForced(ctx, "crash", json.RawMessage(`{"labels": {"pod": "x"}}`), true)
	if err != nil {
		t.Fatal(err)
	}
	if e.Trigger.Attrs[starbook.AttrForced] != "alice" {
		t.Errorf("forced start's trigger %+v, want %s=alice", e.Trigger, starbook.AttrForced)
	}
	if status, body := postJSON(t, d.url+"/api/v1/runbooks/crash/executions?force=maybe", `{}`, nil); status != 400 {
		t.Errorf("force=maybe: %d %s", status, body)
	}

	// A redrive of a failed run of it: 409 too, unless forced.
	failed, err := d.cli.StartForced(ctx, "crash", json.RawMessage(`{}`), true) // no labels: it fails
	if err != nil {
		t.Fatal(err)
	}
	if e := d.awaitEnd(t, failed.ID); e.Status != sbruntime.StatusFailed {
		t.Fatalf("crash without labels: %s", e.Status)
	}
	if _, err := d.cli.Redrive(ctx, failed.ID, starbook.RedriveRequest{From: starbook.RedriveFromStart}); apiStatus(err) != 409 ||
		!strings.Contains(err.Error(), "paused by alice") {
		t.Errorf("redrive while paused: %v, want 409 naming the pause", err)
	}
	if _, err := d.cli.Redrive(ctx, failed.ID, starbook.RedriveRequest{From: starbook.RedriveFromStart, Force: true}); err != nil {
		t.Errorf("forced redrive while paused: %v", err)
	}

	// Replay while paused: 409, the dead letter stays.
	if _, err := d.cli.ReplayDeadLetter(ctx, dl.ID, false); apiStatus(err) != 409 || !strings.Contains(err.Error(), "paused") {
		t.Errorf("replay while paused: %v, want 409", err)
	}
	if _, err := d.cli.Pause(ctx, "crash", starbook.PauseRequest{Paused: false}); err != nil {
		t.Fatal(err)
	}
	if got, _ := d.cli.PauseState(ctx, "crash"); got.Paused {
		t.Fatalf("resumed, still %+v", got)
	}
	res, err := d.cli.ReplayDeadLetter(ctx, dl.ID, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Executions) != 1 || res.Executions[0].Runbook != "crash" {
		t.Fatalf("replay: %+v", res)
	}
	re := d.awaitEnd(t, res.Executions[0].ID)
	if re.Status != sbruntime.StatusCompleted || string(re.Result) != `"api-1"` || re.Trigger.Type != "alert" ||
		re.Trigger.Source != "f00dcafe01" || re.Trigger.Attrs["replay_of"] != dl.ID {
		t.Errorf("replayed run: %+v (result %s)", re, re.Result)
	}
	if _, err := d.cli.ReplayDeadLetter(ctx, dl.ID, false); apiStatus(err) != 409 || !strings.Contains(err.Error(), "replayed already") ||
		!strings.Contains(err.Error(), re.ID) {
		t.Errorf("second replay: %v, want 409 naming %s", err, re.ID)
	}
	if left := d.deadLetters(t, starbook.DeadLetterFilter{Reason: starbook.ReasonPaused}); len(left) != 0 {
		t.Errorf("replayed dead letter still listed: %v", left)
	}

	// Audited with who and why.
	resp, err = http.Get(d.url + "/api/v1/audit")
	if err != nil {
		t.Fatal(err)
	}
	var audit api.AuditResponse
	_ = json.NewDecoder(resp.Body).Decode(&audit)
	resp.Body.Close()
	var paused, replayed bool
	for _, rec := range audit.Audit {
		paused = paused || (rec.Action == "runbook.pause" && rec.Actor == "alice" && strings.Contains(rec.Detail, "db migration"))
		replayed = replayed || (rec.Action == "deadletter.replay" && rec.Actor == "alice" && strings.Contains(rec.Detail, re.ID))
	}
	if !paused || !replayed {
		t.Errorf("audit log lacks the pause (%v) or the replay (%v)", paused, replayed)
	}
}

// TestPauseAllWebhooksAndCancelRunning: the pause of every runbook keeps a
// webhook's body as a paused dead letter (answered 200: nothing to retry),
// refuses manual starts of any runbook, and with cancel_running cancels the
// runs in flight.
func TestPauseAllWebhooksAndCancelRunning(t *testing.T) {
	t.Setenv("PAUSE_HOOK_TOKEN", "hook-token-0123456789")
	d := startDLNode(t)
	d.apply(t, pauseRunbooks)
	ctx := context.Background()
	w, err := d.cli.Start(ctx, "waits", nil)
	if err != nil {
		t.Fatal(err)
	}
	d.awaitStatus(t, w.ID, sbruntime.StatusWaiting)

	st, err := d.cli.Pause(ctx, starbook.AllRunbooks, starbook.PauseRequest{Paused: true, Reason: "incident 42", CancelRunning: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Cancelled) != 1 || st.Cancelled[0] != w.ID {
		t.Errorf("cancelled %v, want [%s]", st.Cancelled, w.ID)
	}
	if e := d.awaitEnd(t, w.ID); e.Status != sbruntime.StatusCancelled {
		t.Errorf("run in flight: %s, want cancelled", e.Status)
	}
	if got, err := d.cli.PauseState(ctx, "deploy"); err != nil || !got.Paused || !got.All || got.Reason != "incident 42" {
		t.Errorf("deploy under the pause of all: %+v, %v", got, err)
	}

	status, body := postJSON(t, d.url+"/hooks/deploy", `{"version": "1.2.3"}`, map[string]string{"Authorization": "Bearer hook-token-0123456789"})
	if status != 200 || !strings.Contains(body, `"paused"`) {
		t.Errorf("webhook while paused: %d %s", status, body)
	}
	if list, _ := d.cli.Executions(ctx, starbook.Filter{Runbook: "deploy"}); len(list) != 0 {
		t.Errorf("a paused webhook started %d runs", len(list))
	}
	dls := d.deadLetters(t, starbook.DeadLetterFilter{Reason: starbook.ReasonPaused, Runbook: "deploy"})
	if len(dls) != 1 {
		t.Fatalf("paused webhook dead letters: %v", dls)
	}
	for _, dl := range dls {
		if string(dl.Payload) != `{"version":"1.2.3"}` || dl.Source != "webhook:deploy" {
			t.Errorf("dead letter %+v, payload %s", dl, dl.Payload)
		}
	}
	// An unauthenticated request is refused as before: no dead letter.
	if status, _ := postJSON(t, d.url+"/hooks/deploy", `{"version": "9"}`, nil); status != 401 {
		t.Errorf("unauthenticated webhook while paused: %d, want 401", status)
	}
	if n := len(d.deadLetters(t, starbook.DeadLetterFilter{Reason: starbook.ReasonPaused})); n != 1 {
		t.Errorf("%d paused dead letters after an unauthenticated request, want 1", n)
	}
	if _, err := d.cli.Start(ctx, "waits", nil); apiStatus(err) != 409 || !strings.Contains(err.Error(), "every runbook") {
		t.Errorf("start under the pause of all: %v", err)
	}
	if _, err := d.cli.Pause(ctx, starbook.AllRunbooks, starbook.PauseRequest{}); err != nil {
		t.Fatal(err)
	}
	for id := range dls {
		res, err := d.cli.ReplayDeadLetter(ctx, id, false)
		if err != nil {
			t.Fatal(err)
		}
		if e := d.awaitEnd(t, res.Executions[0].ID); string(e.Result) != `"1.2.3"` || e.Trigger.Type != "webhook" || e.Trigger.Source != "deploy" {
			t.Errorf("replayed webhook run: %+v, result %s", e, e.Result)
		}
	}
}

// TestReplayUnmatchedAlert: an alert no runbook matched replays only once
// a runbook matches it; an execution's dead letter is redriven, not replayed.
func TestReplayUnmatchedAlert(t *testing.T) {
	d := startDLNode(t)
	d.apply(t, pauseRunbooks)
	ctx := context.Background()
	d.alert(t, firing("DiskFull", "d15cf011"))
	dls := d.deadLetters(t, starbook.DeadLetterFilter{Reason: starbook.ReasonNoRunbook})
	if len(dls) != 1 {
		t.Fatalf("no_runbook dead letters: %v", dls)
	}
	var id string
	for k := range dls {
		id = k
	}
	before := d.keysExceptAudit(t)
	if _, err := d.cli.ReplayDeadLetter(ctx, id, false); apiStatus(err) != 409 || !strings.Contains(err.Error(), "no runbook") {
		t.Errorf("replay of an alert still unmatched: %v, want 409", err)
	}
	if after := d.keysExceptAudit(t); !maps.Equal(before, after) {
		t.Errorf("a refused replay changed the store")
	}
	d.apply(t, map[string]string{"disk.star": `
trigger.alert(alertname = "DiskFull")

def main(event):
    return event["fingerprint"]
`})
	res, err := d.cli.ReplayDeadLetter(ctx, id, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Executions) != 1 || res.Executions[0].Runbook != "disk" {
		t.Fatalf("replay: %+v", res)
	}
	if e := d.awaitEnd(t, res.Executions[0].ID); string(e.Result) != `"d15cf011"` {
		t.Errorf("replayed run: %+v, result %s", e, e.Result)
	}

	failed := d.run(t, "crash", `{}`) // no labels: it fails
	if failed.Status != sbruntime.StatusFailed {
		t.Fatalf("crash without labels: %s", failed.Status)
	}
	if _, err := d.cli.ReplayDeadLetter(ctx, failed.ID, false); apiStatus(err) != 400 || !strings.Contains(err.Error(), "redrive") {
		t.Errorf("replay of an execution's dead letter: %v, want 400 saying redrive", err)
	}
	if _, err := d.cli.ReplayDeadLetter(ctx, "01JUNKNOWN00000000000000000", false); apiStatus(err) != 404 {
		t.Errorf("replay of an unknown dead letter: %v, want 404", err)
	}
}
