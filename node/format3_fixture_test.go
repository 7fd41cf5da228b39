//go:build fixture

package node_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	sbruntime "github.com/starbook/starbook/runtime"
)

// TestWriteFormat3Fixture writes a store of the last format 3 release to
// node/testdata/store: a tar of an embedded etcd data dir (format3.tar.gz)
// and what it holds (format3.json, see format3Manifest): executions of five
// runbooks in every state a node leaves them in, enough ended ones that
// listings page. It must run on that release's code, whose store has a
// format 3 marker and no execution index; on a later one it fails rather
// than write a fixture of the wrong format:
//
//	git worktree add /tmp/format3 9791644
//	cp node/format3_fixture_test.go /tmp/format3/node/
//	(cd /tmp/format3 && go test -tags fixture ./node -run TestWriteFormat3Fixture -fixture-out "$OLDPWD/node/testdata/store")
//
// (format1_fixture_test.go, which that release has too, gives tarDir and
// -fixture-out.)
func TestWriteFormat3Fixture(t *testing.T) {
	dir := t.TempDir()
	m := format3Manifest{Prefix: format1Prefix}
	t.Cleanup(func() { // after the node and its etcd stopped (cleanups run last first)
		if !t.Failed() {
			writeFormat3Fixture(t, dir, m)
		}
	})
	clock := &fakeClock{t: format3Clock}
	tn := startNodeWith(t, dir, format1Prefix, clock.Now, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	tn.apply(t, format3Runbooks)
	// Each start a second after the last, so that ids sort by their time
	// as well as by the monotonic entropy within one.
	start := func(runbook, input string) string {
		clock.Add(time.Second)
		e, err := tn.svc.Start(ctx, runbook, json.RawMessage(input), sbruntime.Trigger{Type: "manual", Source: "fixture"})
		if err != nil {
			t.Fatal(err)
		}
		m.Executions = append(m.Executions, format3Execution{ID: e.ID, Runbook: runbook})
		return e.ID
	}
	status := func(id string) sbruntime.Status {
		e, _, err := tn.svc.Execution(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return e.Status
	}
	parked := func(id string) {
		waitFor(t, func() bool { return status(id) == sbruntime.StatusWaiting })
	}
	awaitEnd := func(id string) {
		if _, err := tn.svc.AwaitEnd(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	cancelParked := func(id string) {
		parked(id)
		if _, err := tn.svc.Cancel(ctx, id); err != nil {
			t.Fatal(err)
		}
		awaitEnd(id)
	}
	// ended runs the i-th ended execution: echo completes (fails when n is
	// a multiple of 5), boom fails, nap and signals are cancelled while
	// they wait, and some signals complete.
	ended := func(i int) {
		switch i % 6 {
		case 0, 3:
			awaitEnd(start("echo", fmt.Sprintf(`{"n": %d}`, i)))
		case 1:
			awaitEnd(start("boom", `{}`))
		case 2:
			cancelParked(start("nap", `{}`))
		case 4:
			id := start("signals", fmt.Sprintf(`{"host": "web-%d"}`, i))
			if i%12 == 4 {
				cancelParked(id)
				return
			}
			parked(id)
			for _, name := range []string{"first", "second"} {
				if err := tn.svc.Signal(ctx, id, name, json.RawMessage(`{"n": 0}`), "fixture"); err != nil {
					t.Fatal(err)
				}
			}
			awaitEnd(id)
		case 5:
			awaitEnd(start("echo", fmt.Sprintf(`{"n": %d}`, 5*i)))
		}
	}

	i := 0
	for ; i < 12; i++ {
		ended(i)
	}
	m.Signal = start("signals", `{"host": "web-1"}`)
	parked(m.Signal)
	// The second signal arrives before its wait: kept under signals/.
	if err := tn.svc.Signal(ctx, m.Signal, "second", json.RawMessage(`{"n": 2}`), "fixture"); err != nil {
		t.Fatal(err)
	}
	for ; i < 24; i++ {
		ended(i)
	}
	m.Approval = start("approve", `{"pod": "web-2"}`)
	awaitPendingWait(t, tn.svc.Store, m.Approval)
	for ; i < 30; i++ {
		ended(i)
	}
	m.Sleep = start("nap", `{}`)
	parked(m.Sleep)
	m.SleepDue = clock.Now().Add(time.Hour)
	for ; i < 36; i++ {
		ended(i)
	}
	m.Clock = clock.Now()

	for j := range m.Executions {
		x := &m.Executions[j]
		x.Status = status(x.ID)
		want := x.Status.Terminal()
		if x.ID == m.Signal || x.ID == m.Approval || x.ID == m.Sleep {
			want = x.Status == sbruntime.StatusWaiting
		}
		if !want {
			t.Fatalf("execution %s of %s is %s", x.ID, x.Runbook, x.Status)
		}
		if j > 0 && x.ID <= m.Executions[j-1].ID {
			t.Fatalf("execution %s started after %s sorts before it", x.ID, m.Executions[j-1].ID)
		}
	}
	// The fixture is of format 3: a marker saying so, and no index.
	resp, err := tn.svc.Store.Client().Get(ctx, format1Prefix+"format")
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Format int `json:"format"`
	}
	if len(resp.Kvs) == 0 || json.Unmarshal(resp.Kvs[0].Value, &f) != nil || f.Format != 3 {
		t.Fatalf("store format marker %v: the fixture is format 3; see the doc comment", resp.Kvs)
	}
	ix, err := tn.svc.Store.Client().Get(ctx, format1Prefix+"ix/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	if ix.Count > 0 {
		t.Fatalf("this build wrote %d execution index keys: the fixture is format 3; see the doc comment", ix.Count)
	}
	all, err := tn.svc.Store.Client().Get(ctx, format1Prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	m.Keys = all.Count
}

// writeFormat3Fixture writes the data dir of a stopped node and its manifest.
func writeFormat3Fixture(t *testing.T, dir string, m format3Manifest) {
	if err := os.MkdirAll(*fixtureOut, 0o755); err != nil {
		t.Error(err)
		return
	}
	if err := tarDir(filepath.Join(*fixtureOut, "format3.tar.gz"), dir); err != nil {
		t.Error(err)
		return
	}
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		t.Error(err)
		return
	}
	if err := os.WriteFile(filepath.Join(*fixtureOut, "format3.json"), append(data, '\n'), 0o644); err != nil {
		t.Error(err)
	}
}

// format3Clock is the fixture's clock when it starts; each start moves it a
// second.
var format3Clock = time.Date(2026, 9, 1, 12, 0, 0, 0, time.UTC)

// format3Manifest says what the fixture's store holds: its prefix, its
// clock when written, every execution oldest first, the ids of the parked
// ones, and its key count.
type format3Manifest struct {
	Prefix string    `json:"prefix"`
	Clock  time.Time `json:"clock"`
	// Signal waits for signal "first"; "second" was sent before its wait.
	Signal string `json:"signal"`
	// Approval waits for alice's approval.
	Approval string `json:"approval"`
	// Sleep sleeps until SleepDue.
	Sleep      string             `json:"sleep"`
	SleepDue   time.Time          `json:"sleep_due"`
	Executions []format3Execution `json:"executions"`
	Keys       int64              `json:"keys"`
}

// format3Execution is one execution of the fixture, as a listing shows it.
type format3Execution struct {
	ID      string           `json:"id"`
	Runbook string           `json:"runbook"`
	Status  sbruntime.Status `json:"status"`
}

// format3Runbooks are format1Runbooks and echo, which completes or fails
// on its input.
var format3Runbooks = func() map[string]string {
	rbs := map[string]string{"echo.star": `
def main(event):
    n = call(lambda: event.n, name = "n")
    if n % 5 == 0:
        fail("n is a multiple of 5")
    return n
`}
	for name, src := range format1Runbooks {
		rbs[name] = src
	}
	return rbs
}()
