package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/starbook/starbook"
	"github.com/starbook/starbook/builtins"
	"github.com/starbook/starbook/cluster"
	"github.com/starbook/starbook/service"
	"github.com/starbook/starbook/triggers"
)

// TestPauseCommands drives pause, resume, ls, run --force and dlq replay
// against a real service over embedded etcd: bad input is refused before
// anything is sent or stored, a paused runbook's alert becomes a dead letter
// that replays once after the resume.
func TestPauseCommands(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	t.Setenv("STARBOOK_USER", "alice")
	emb, err := cluster.StartEmbedded(ctx, cluster.EmbeddedConfig{Dir: t.TempDir(), Fast: true, NoFsync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer emb.Close()
	store := cluster.NewStore(emb.Client, "/cli/")
	defer store.Close()
	svc := service.New(store, builtins.New(builtins.Options{}))
	if _, err := svc.Apply(ctx, map[string]string{"crash.star": "trigger.alert(alertname = \"Crash\")\ndef main(event):\n    return 1\n"}); err != nil {
		t.Fatal(err)
	}
	tr := cluster.NewTriggers(store, nil, nil)
	alert := func() {
		t.Helper()
		d := &triggers.Dispatcher{Index: tr.Index(), Starter: tr, DeadLetters: tr}
		n := &triggers.Notification{Version: "4", Status: "firing", Receiver: "sb", Alerts: []*triggers.Alert{{Status: "firing",
			StartsAt: time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC), Labels: map[string]string{"alertname": "Crash"}, Fingerprint: "00ff"}}}
		if _, err := d.Alertmanager(ctx, n); err != nil {
			t.Fatal(err)
		}
	}

	// Refused before a request: nothing sent, nothing stored.
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"pause", "crash", "--until", "2020-01-01T00:00:00Z"}, "in the past"},
		{[]string{"pause", "crash", "--until=-5m"}, "positive duration"},
		{[]string{"pause", "crash", "--until", "soon"}, "want a duration"},
		{[]string{"pause", "crash", "--all"}, "not both"},
		{[]string{"resume"}, "name a RUNBOOK or --all"},
		{[]string{"pause", "--reason", "why"}, "name a RUNBOOK or --all"},
	} {
		res := cli(t, svc, "", c.args...)
		if res.code != 1 || !strings.Contains(res.stderr, c.want) || res.requests != 0 {
			t.Errorf("%v: exit %d, %d requests, stderr %q; want exit 1 before any request, saying %q", c.args, res.code, res.requests, res.stderr, c.want)
		}
	}
	if res := cli(t, svc, "", "pause", "nope"); res.code != 1 || !strings.Contains(res.stderr, `runbook "nope": not found`) {
		t.Errorf("pause of an unknown runbook: exit %d, stderr %q", res.code, res.stderr)
	}
	if list, err := svc.Pauses(ctx); err != nil || len(list) != 0 {
		t.Fatalf("refused pauses stored %v, %v", list, err)
	}
	if res := cli(t, svc, "", "pause"); res.code != 0 || !strings.Contains(res.stdout, "no runbook is paused") {
		t.Errorf("pause without pauses: %q %q", res.stdout, res.stderr)
	}

	res := cli(t, svc, "", "pause", "crash", "--reason", "db migration", "--until", "2h")
	if res.code != 0 || !strings.Contains(res.stdout, "crash paused by alice since ") || !strings.Contains(res.stdout, " until ") ||
		!strings.HasSuffix(strings.TrimSpace(res.stdout), ": db migration") {
		t.Fatalf("pause: exit %d, stdout %q, stderr %q", res.code, res.stdout, res.stderr)
	}
	if st, _ := svc.PauseState(ctx, "crash"); !st.Paused || st.Until.Sub(time.Now()) < 119*time.Minute {
		t.Errorf("stored pause %+v: want until about 2h from now", st)
	}
	if res := cli(t, svc, "", "pause"); res.code != 0 || !strings.Contains(res.stdout, "RUNBOOK") || !strings.Contains(res.stdout, "crash") ||
		!strings.Contains(res.stdout, "db migration") {
		t.Errorf("pause listing: %q", res.stdout)
	}
	if res := cli(t, svc, "", "ls"); res.code != 0 || !strings.HasPrefix(res.stderr, "PAUSED: crash paused by alice") || !strings.Contains(res.stdout, "RUNBOOK") {
		t.Errorf("ls: stdout %q, stderr %q; want the pause on stderr", res.stdout, res.stderr)
	}
	if res := cli(t, svc, "", "run", "crash"); res.code != 1 || !strings.Contains(res.stderr, "paused by alice") || !strings.Contains(res.stderr, "db migration") {
		t.Errorf("run of a paused runbook: exit %d, stderr %q", res.code, res.stderr)
	}
	res = cli(t, svc, "", "run", "crash", "--force")
	if res.code != 0 {
		t.Fatalf("run --force: exit %d, stderr %q", res.code, res.stderr)
	}
	if e, _, err := svc.Execution(ctx, strings.TrimSpace(res.stdout)); err != nil || e.Trigger.Attrs[starbook.AttrForced] != "alice" {
		t.Errorf("forced run %+v, %v", e, err)
	}

	alert()
	dls, err := svc.DeadLetters(ctx, starbook.DeadLetterFilter{Reason: starbook.ReasonPaused})
	if err != nil || len(dls) != 1 {
		t.Fatalf("paused dead letters %v, %v", dls, err)
	}
	id := dls[0].ID
	if res := cli(t, svc, "", "dlq", "replay", id); res.code != 1 || !strings.Contains(res.stderr, "paused by alice") {
		t.Errorf("replay while paused: exit %d, stderr %q", res.code, res.stderr)
	}
	if res := cli(t, svc, "", "resume", "crash"); res.code != 0 || strings.TrimSpace(res.stdout) != "crash is not paused" {
		t.Errorf("resume: %q %q", res.stdout, res.stderr)
	}
	res = cli(t, svc, "", "dlq", "replay", id)
	if res.code != 0 || !strings.HasSuffix(strings.TrimSpace(res.stdout), " crash started") {
		t.Fatalf("replay: exit %d, stdout %q, stderr %q", res.code, res.stdout, res.stderr)
	}
	started := strings.Fields(res.stdout)[0]
	if res := cli(t, svc, "", "dlq", "replay", id); res.code != 1 || !strings.Contains(res.stderr, "replayed already") || !strings.Contains(res.stderr, started) {
		t.Errorf("second replay: exit %d, stderr %q", res.code, res.stderr)
	}

	if res := cli(t, svc, "", "pause", "--all", "--reason", "incident"); res.code != 0 || !strings.Contains(res.stdout, "every runbook paused by alice") {
		t.Errorf("pause --all: %q %q", res.stdout, res.stderr)
	}
	if res := cli(t, svc, "", "run", "crash"); res.code != 1 || !strings.Contains(res.stderr, "every runbook is") {
		t.Errorf("run under the pause of all: exit %d, stderr %q", res.code, res.stderr)
	}
	if res := cli(t, svc, "", "resume", "--all"); res.code != 0 || !strings.Contains(res.stdout, "every runbook is not paused") {
		t.Errorf("resume --all: %q %q", res.stdout, res.stderr)
	}
}
