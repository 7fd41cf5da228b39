//go:build fixture

package node_test

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"encoding/json"
	"flag"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	sbruntime "github.com/starbook/starbook/runtime"
)

// fixtureOut is where TestWriteFormat1Fixture writes the fixture.
var fixtureOut = flag.String("fixture-out", "testdata/store", "directory the format 1 fixture is written to")

// TestWriteFormat1Fixture writes the store of the release before store
// formats (format 1) to node/testdata/store: a tar of an embedded etcd data dir
// (format1.tar.gz) and what it holds (format1.json, see upgradeFixture).
// It must run on that release's code, which writes no format marker; on a
// later one it fails rather than write a fixture of the wrong format:
//
//	git worktree add /tmp/format1 6552fac
//	cp node/format1_fixture_test.go /tmp/format1/node/
//	(cd /tmp/format1 && go test -tags fixture ./node -run TestWriteFormat1Fixture -fixture-out "$OLDPWD/node/testdata/store")
func TestWriteFormat1Fixture(t *testing.T) {
	dir := t.TempDir()
	m := format1Manifest{Prefix: format1Prefix, Clock: format1Clock}
	t.Cleanup(func() { // after the node and its etcd stopped (cleanups run last first)
		if !t.Failed() {
			writeFormat1Fixture(t, dir, m)
		}
	})
	clock := &fakeClock{t: format1Clock}
	tn := startNodeWith(t, dir, format1Prefix, clock.Now, nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tn.apply(t, format1Runbooks)
	start := func(runbook, input string) string {
		e, err := tn.svc.Start(ctx, runbook, json.RawMessage(input), sbruntime.Trigger{Type: "manual", Source: "fixture"})
		if err != nil {
			t.Fatal(err)
		}
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

	m.Signal = start("signals", `{"host": "web-1"}`)
	parked(m.Signal)
	// The second signal arrives before its wait: kept under signals/.
	if err := tn.svc.Signal(ctx, m.Signal, "second", json.RawMessage(`{"n": 2}`), "fixture"); err != nil {
		t.Fatal(err)
	}
	m.Approval = start("approve", `{"pod": "web-2"}`)
	awaitPendingWait(t, tn.svc.Store, m.Approval)
	m.Sleep = start("nap", `{}`)
	parked(m.Sleep)

	m.Completed = start("signals", `{"host": "web-3"}`)
	parked(m.Completed)
	for _, name := range []string{"first", "second"} {
		if err := tn.svc.Signal(ctx, m.Completed, name, json.RawMessage(`{"n": 0}`), "fixture"); err != nil {
			t.Fatal(err)
		}
	}
	awaitEnd(m.Completed)
	m.Failed = start("boom", `{}`)
	awaitEnd(m.Failed)
	m.Cancelled = start("nap", `{}`)
	parked(m.Cancelled)
	if _, err := tn.svc.Cancel(ctx, m.Cancelled); err != nil {
		t.Fatal(err)
	}
	awaitEnd(m.Cancelled)
	want := map[string]sbruntime.Status{m.Signal: sbruntime.StatusWaiting, m.Approval: sbruntime.StatusWaiting,
		m.Sleep: sbruntime.StatusWaiting, m.Completed: sbruntime.StatusCompleted, m.Failed: sbruntime.StatusFailed,
		m.Cancelled: sbruntime.StatusCancelled}
	for id, st := range want {
		if got := status(id); got != st {
			t.Fatalf("execution %s is %s, want %s", id, got, st)
		}
	}
	// A release with store formats writes a marker: its store is not format 1.
	resp, err := tn.svc.Store.Client().Get(ctx, format1Prefix+"format")
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) > 0 {
		t.Fatalf("this build wrote a store format marker (%s): the fixture is the release before formats; see the doc comment", resp.Kvs[0].Value)
	}
	all, err := tn.svc.Store.Client().Get(ctx, format1Prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	m.Keys = all.Count
}

// writeFormat1Fixture writes the data dir of a stopped node and its manifest.
func writeFormat1Fixture(t *testing.T, dir string, m format1Manifest) {
	if err := os.MkdirAll(*fixtureOut, 0o755); err != nil {
		t.Error(err)
		return
	}
	if err := tarDir(filepath.Join(*fixtureOut, "format1.tar.gz"), dir); err != nil {
		t.Error(err)
		return
	}
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		t.Error(err)
		return
	}
	if err := os.WriteFile(filepath.Join(*fixtureOut, "format1.json"), append(data, '\n'), 0o644); err != nil {
		t.Error(err)
	}
}

// format1Prefix is the fixture store's prefix, serve's default.
const format1Prefix = "/starbook/"

// format1Clock is the fixture's clock, which does not move: the sleep's
// timer is due an hour after it.
var format1Clock = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

// format1Manifest says what the fixture's store holds: its prefix and
// clock, the ids of its executions by what they are doing, and its key count.
type format1Manifest struct {
	Prefix string    `json:"prefix"`
	Clock  time.Time `json:"clock"`
	// Signal waits for signal "first"; "second" was sent before its wait.
	Signal string `json:"signal"`
	// Approval waits for alice's approval.
	Approval string `json:"approval"`
	// Sleep sleeps an hour from Clock.
	Sleep string `json:"sleep"`
	// Completed, Failed and Cancelled have ended.
	Completed string `json:"completed"`
	Failed    string `json:"failed"`
	Cancelled string `json:"cancelled"`
	Keys      int64  `json:"keys"`
}

// format1Runbooks are the fixture's runbooks.
var format1Runbooks = map[string]string{
	"signals.star": `
def main(event):
    host = call(lambda: event.host, name = "host")
    doubled = fan_out(lambda i: call(lambda: i * 2, name = "double"), [1, 2, 3])
    log("waiting", host = host)
    first = wait_for_signal("first")
    second = wait_for_signal("second")
    return {"host": host, "doubled": doubled, "first": first, "second": second}
`,
	"approve.star": `
def main(event):
    ok = wait_for_approval("Restart " + event.pod + "?", approvers = ["alice"])
    return {"approved": ok.approved, "by": ok.by}
`,
	"nap.star": `
def main(event):
    call(lambda: "before", name = "before")
    sleep("1h")
    return "woke"
`,
	"boom.star": `
def main(event):
    call(lambda: 1, name = "one")
    fail("boom")
`,
}

// tarDir writes dir's regular files and directories, with their modes,
// to a gzipped tar at path.
func tarDir(path, dir string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	zw, err := gzip.NewWriterLevel(f, gzip.BestCompression)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(zw)
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		hdr, err := tar.FileInfoHeader(info, "")
		if err != nil {
			return err
		}
		hdr.Name = filepath.ToSlash(rel)
		hdr.ModTime = format1Clock // the same bytes for the same store
		hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname = 0, 0, "", ""
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		src, err := os.Open(p)
		if err != nil {
			return err
		}
		defer src.Close()
		_, err = io.Copy(tw, src)
		return err
	})
	if err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	return f.Close()
}
