package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/starbook/starbook"
	"github.com/starbook/starbook/api"
	sbruntime "github.com/starbook/starbook/runtime"
)

// The versions of runbook "mig" the migration tests apply. v2 takes the
// same steps as v1 up to its wait and different ones after it; bad takes a
// different step before it.
const (
	migV1 = `
def one():
    return 1

def main(event):
    call(one)
    wait_for_signal("go")
    return "v1"
`
	migV2 = `
def one():
    return 1

def two():
    return 2

def main(event):
    call(one)
    wait_for_signal("go")
    n = call(two)
    return "v2 ran step %d" % n
`
	migBad = `
def other():
    return 1

def main(event):
    call(other)
    wait_for_signal("go")
    return "bad"
`
)

// start starts runbook and waits until it parks.
func (d *dlNode) startParked(t *testing.T, runbook string) *sbruntime.Execution {
	t.Helper()
	e, err := d.cli.Start(context.Background(), runbook, json.RawMessage(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	d.awaitStatus(t, e.ID, sbruntime.StatusWaiting)
	return e
}

// migration returns the result for execution id in res, failing without one.
func migration(t *testing.T, res *api.ApplyResponse, id string) starbook.MigrationResult {
	t.Helper()
	for _, m := range res.Migration {
		if m.Execution == id {
			return m
		}
	}
	t.Fatalf("no migration result for %s in %+v", id, res.Migration)
	return starbook.MigrationResult{}
}

// TestApplyMigrate: an execution parked on wait_for_signal under v1 is
// reported by a dry run (which stores nothing), left alone by an
// incompatible version (listed with its divergence), and re-pinned by a
// compatible one, whose code runs after the signal; an ended execution is
// never touched.
func TestApplyMigrate(t *testing.T) {
	d := startDLNode(t)
	ctx := context.Background()
	d.apply(t, map[string]string{"mig.star": migV1})
	ended := d.startParked(t, "mig")
	if _, err := d.cli.Cancel(ctx, ended.ID); err != nil {
		t.Fatal(err)
	}
	d.awaitEnd(t, ended.ID)
	parked := d.startParked(t, "mig")
	v1 := parked.Version
	record := func(id string) int64 {
		t.Helper()
		return d.keysExceptAudit(t)[dlPrefix+"executions/"+id]
	}
	endedRev := record(ended.ID)

	// A dry run stores nothing: no version, no re-pin.
	before := d.keysExceptAudit(t)
	res, err := d.cli.ApplyMigrate(ctx, map[string]string{"mig.star": migV2}, true)
	if err != nil {
		t.Fatal(err)
	}
	assertUnchanged(t, before, d.keysExceptAudit(t))
	if m := migration(t, res, parked.ID); !res.DryRun || m.Result != starbook.MigrationWouldMigrate ||
		m.From != v1 || m.To != res.Runbooks[0].Version || m.Status != sbruntime.StatusWaiting {
		t.Errorf("dry run: %+v", m)
	}
	if len(res.Migration) != 1 {
		t.Errorf("dry run lists %d executions, want only the parked one: %+v", len(res.Migration), res.Migration)
	}

	// An incompatible version is stored and current, and leaves it alone.
	parkedRev := record(parked.ID)
	res, err = d.cli.ApplyMigrate(ctx, map[string]string{"mig.star": migBad}, false)
	if err != nil {
		t.Fatal(err)
	}
	m := migration(t, res, parked.ID)
	t.Logf("incompatible: %+v", m)
	if m.Result != starbook.MigrationIncompatible || m.Position != "1" || !strings.HasPrefix(m.Where, "mig.star:") ||
		!strings.Contains(m.Expected, "one") || !strings.Contains(m.Actual, "other") {
		t.Errorf("incompatible: %+v", m)
	}
	if record(parked.ID) != parkedRev {
		t.Error("an incompatible migration rewrote the record")
	}
	rbs, err := d.cli.Runbooks(ctx)
	if err != nil || len(rbs) != 1 || rbs[0].Version != res.Runbooks[0].Version {
		t.Errorf("after apply --migrate: current %+v, %v; want %s", rbs, err, res.Runbooks[0].Version)
	}

	// A compatible version re-pins it; the signal resumes it on v2.
	res, err = d.cli.ApplyMigrate(ctx, map[string]string{"mig.star": migV2}, false)
	if err != nil {
		t.Fatal(err)
	}
	v2 := res.Runbooks[0].Version
	if m := migration(t, res, parked.ID); m.Result != starbook.MigrationMigrated || m.From != v1 || m.To != v2 {
		t.Errorf("compatible: %+v", m)
	}
	if record(ended.ID) != endedRev {
		t.Error("the migration rewrote an ended execution's record")
	}
	e, _, err := d.svc.Execution(ctx, parked.ID)
	if err != nil {
		t.Fatal(err)
	}
	if e.Version != v2 || len(e.Migrations) != 1 || e.Migrations[0].From != v1 || e.Migrations[0].By != "alice" {
		t.Errorf("re-pinned record: version %s, migrations %+v", e.Version, e.Migrations)
	}
	if err := d.cli.Signal(ctx, parked.ID, "go", nil); err != nil {
		t.Fatal(err)
	}
	end := d.awaitEnd(t, parked.ID)
	if end.Status != sbruntime.StatusCompleted || string(end.Result) != `"v2 ran step 2"` {
		t.Errorf("after the signal: %s with %s (%s), want v2's result", end.Status, end.Result, end.Error)
	}
	audit, err := d.cli.Audit(ctx, "", 100)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, rec := range audit.Audit {
		found = found || rec.Action == "execution.migrate" && rec.Execution == parked.ID && rec.Actor == "alice"
	}
	if !found {
		t.Error("no audit record of the re-pin")
	}
}

// TestApplyMigrateRunning: an execution a node runs (its step blocks on a
// real HTTP server) is reported running and keeps its version; once it
// parks, apply --migrate again moves it.
func TestApplyMigrateRunning(t *testing.T) {
	d := startDLNode(t)
	ctx := context.Background()
	entered, release := make(chan struct{}), make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-release
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{}`))
	}))
	defer srv.Close()
	defer func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}()
	v1 := `
def main(event):
    call(http.get, event.url)
    wait_for_signal("go")
    return "v1"
`
	v2 := `
def main(event):
    call(http.get, event.url)
    wait_for_signal("go")
    return "v2"
`
	d.apply(t, map[string]string{"busy.star": v1})
	e, err := d.cli.Start(ctx, "busy", json.RawMessage(`{"url": "`+srv.URL+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	<-entered
	res, err := d.cli.ApplyMigrate(ctx, map[string]string{"busy.star": v2}, false)
	if err != nil {
		t.Fatal(err)
	}
	if m := migration(t, res, e.ID); m.Result != starbook.MigrationRunning || m.Status != sbruntime.StatusRunning {
		t.Errorf("while running: %+v", m)
	}
	close(release)
	d.awaitStatus(t, e.ID, sbruntime.StatusWaiting)
	res, err = d.cli.ApplyMigrate(ctx, map[string]string{"busy.star": v2}, false)
	if err != nil {
		t.Fatal(err)
	}
	if m := migration(t, res, e.ID); m.Result != starbook.MigrationMigrated || !res.Runbooks[0].Unchanged {
		t.Errorf("once parked: %+v (runbooks %+v)", m, res.Runbooks)
	}
	if err := d.cli.Signal(ctx, e.ID, "go", nil); err != nil {
		t.Fatal(err)
	}
	if end := d.awaitEnd(t, e.ID); string(end.Result) != `"v2"` {
		t.Errorf("ended %s with %s, want v2's result", end.Status, end.Result)
	}
}

// TestApplyMigrateBadInput: errors in the files or the options refuse the
// apply with a 400 and store nothing.
func TestApplyMigrateBadInput(t *testing.T) {
	d := startDLNode(t)
	ctx := context.Background()
	d.apply(t, map[string]string{"mig.star": migV1})
	d.startParked(t, "mig")
	tests := []struct {
		name  string
		files map[string]string
		dry   bool
		want  string
	}{
		{"unknown name", map[string]string{"mig.star": "def main(event):\n    nope()\n"}, false, "mig.star:2"},
		{"unknown name, dry run", map[string]string{"mig.star": "def main(event):\n    nope()\n"}, true, "mig.star:2"},
		{"syntax error", map[string]string{"mig.star": "def main(event)\n"}, false, "mig.star:2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := d.keysExceptAudit(t)
			_, err := d.cli.ApplyMigrate(ctx, tt.files, tt.dry)
			var ae *api.Error
			if !errors.As(err, &ae) || ae.Status != http.StatusBadRequest || !strings.Contains(ae.Message, tt.want) {
				t.Errorf("apply --migrate: %v, want a 400 naming %s", err, tt.want)
			}
			assertUnchanged(t, before, d.keysExceptAudit(t))
		})
	}
	t.Run("dry run without migrate", func(t *testing.T) {
		before := d.keysExceptAudit(t)
		resp, err := http.Post(d.url+"/api/v1/runbooks", "application/json",
			strings.NewReader(`{"files": {"mig.star": `+jsonString(migV2)+`}, "dry_run": true}`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("dry_run without migrate: %d, want 400", resp.StatusCode)
		}
		assertUnchanged(t, before, d.keysExceptAudit(t))
	})
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
