package node_test

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/starbook/starbook/builtins"
	"github.com/starbook/starbook/cluster"
	"github.com/starbook/starbook/node"
	sbruntime "github.com/starbook/starbook/runtime"
)

// upgradeFixture is testdata/store/format1.json: what the format 1 store
// holds (node/format1_fixture_test.go wrote both).
type upgradeFixture struct {
	Prefix    string    `json:"prefix"`
	Clock     time.Time `json:"clock"`
	Signal    string    `json:"signal"`
	Approval  string    `json:"approval"`
	Sleep     string    `json:"sleep"`
	Completed string    `json:"completed"`
	Failed    string    `json:"failed"`
	Cancelled string    `json:"cancelled"`
	Keys      int64     `json:"keys"`
}

// openFormat1 unpacks the format 1 store into a new data dir.
func openFormat1(t *testing.T) (dir string, m upgradeFixture) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "store", "format1.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	dir = t.TempDir()
	if err := untar(filepath.Join("testdata", "store", "format1.tar.gz"), dir); err != nil {
		t.Fatal(err)
	}
	return dir, m
}

// untar unpacks the gzipped tar at path into dir, keeping modes (etcd
// wants its directories 0700).
func untar(path, dir string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return err
	}
	tr := tar.NewReader(zr)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		dst := filepath.Join(dir, filepath.FromSlash(hdr.Name))
		if !strings.HasPrefix(dst, dir+string(filepath.Separator)) {
			return errors.New("untar: " + hdr.Name + " is outside the data dir")
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(dst, hdr.FileInfo().Mode().Perm()); err != nil {
				return err
			}
		case tar.TypeReg:
			out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_EXCL, hdr.FileInfo().Mode().Perm())
			if err != nil {
				return err
			}
			_, err = io.Copy(out, tr)
			if cerr := out.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
		}
	}
}

// TestUpgradeFromFormat1: a data dir the release before store formats
// wrote opens with this build's node, which marks it with the current
// format; its parked executions resume when their signal, approval and
// timer come, and its ended ones are as they ended.
func TestUpgradeFromFormat1(t *testing.T) {
	dir, m := openFormat1(t)
	clock := &fakeClock{t: m.Clock} // the timer stays pending until the test fires it
	tn := startNodeWith(t, dir, m.Prefix, clock.Now, nil)
	store := tn.svc.Store
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	f, err := store.ReadFormat(ctx)
	if err != nil || f.Format != cluster.CurrentFormat || !strings.HasPrefix(f.WrittenBy, "starbook ") {
		t.Fatalf("store format %+v, %v; want %d", f, err, cluster.CurrentFormat)
	}

	ended := []struct {
		id     string
		status sbruntime.Status
		result string // the result's JSON, or a part of the error
		events int
	}{
		{m.Completed, sbruntime.StatusCompleted,
			`{"doubled":[2,4,6],"first":{"at":"2026-06-01T12:00:00Z","by":"fixture","data":{"n":0},"name":"first","timed_out":false},` +
				`"host":"web-3","second":{"at":"2026-06-01T12:00:00Z","by":"fixture","data":{"n":0},"name":"second","timed_out":false}}`, 7},
		{m.Failed, sbruntime.StatusFailed, "boom", 1},
		{m.Cancelled, sbruntime.StatusCancelled, "", 1},
	}
	for _, want := range ended {
		e, history, err := tn.svc.Execution(ctx, want.id)
		if err != nil {
			t.Fatal(err)
		}
		got := string(e.Result)
		if e.Status == sbruntime.StatusFailed {
			got = e.Error
		}
		if e.Status != want.status || !strings.Contains(got, want.result) || len(history) != want.events {
			t.Errorf("%s: %s %q with %d events; want %s %q with %d", want.id, e.Status, got, len(history),
				want.status, want.result, want.events)
		}
	}

	for _, id := range []string{m.Signal, m.Approval, m.Sleep} {
		if e, _, err := tn.svc.Execution(ctx, id); err != nil || e.Status != sbruntime.StatusWaiting {
			t.Fatalf("%s: %+v, %v; want waiting", id, e, err)
		}
	}
	// Resume each: the signal its wait needs ("second" came before the upgrade),
	// alice's approval, and the sleep's timer as the leader fires it when due.
	if err := tn.svc.Signal(ctx, m.Signal, "first", json.RawMessage(`{"n": 1}`), "test"); err != nil {
		t.Fatal(err)
	}
	w := awaitPendingWait(t, store, m.Approval)
	if st, err := decide(store, w, "alice", true); err != nil || !st.Resolved {
		t.Fatalf("approve: %+v, %v", st, err)
	}
	// The cancelled execution's timer is there too: a cancel leaves it for
	// the leader, which deletes it when it fires with no wait left.
	timers, err := store.Client().Get(ctx, store.Keys().Timers(), clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		t.Fatal(err)
	}
	sleepTimer := ""
	for _, kv := range timers.Kvs {
		due, id, _, err := store.Keys().ParseTimer(string(kv.Key))
		if err != nil {
			t.Fatal(err)
		}
		if id == m.Sleep && due.Equal(m.Clock.Add(time.Hour)) {
			sleepTimer = string(kv.Key)
		}
	}
	if sleepTimer == "" {
		t.Fatalf("no timer of %s due at %v among %v", m.Sleep, m.Clock.Add(time.Hour), timers.Kvs)
	}
	clock.Add(time.Hour)
	if err := store.FireTimer(ctx, sleepTimer); err != nil {
		t.Fatal(err)
	}

	resumed := map[string]string{
		m.Signal: `{"doubled":[2,4,6],"first":{"at":"2026-06-01T12:00:00Z","by":"test","data":{"n":1},"name":"first","timed_out":false},` +
			`"host":"web-1","second":{"at":"2026-06-01T12:00:00Z","by":"fixture","data":{"n":2},"name":"second","timed_out":false}}`,
		m.Approval: `{"approved":true,"by":["alice"]}`,
		m.Sleep:    `"woke"`,
	}
	for id, want := range resumed {
		e, _ := endOf(t, tn, id)
		if e.Status != sbruntime.StatusCompleted || string(e.Result) != want {
			t.Errorf("%s: %s %s %s; want completed %s", id, e.Status, e.Result, e.Error, want)
		}
	}
}

// TestNewerFormatRefused: a node refuses a store a newer release marked,
// with an error that says so, and writes nothing to it.
func TestNewerFormatRefused(t *testing.T) {
	dir, m := openFormat1(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	emb, err := cluster.StartEmbedded(ctx, cluster.EmbeddedConfig{Dir: dir, Fast: true, NoFsync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer emb.Close()
	store := cluster.NewStore(emb.Client, m.Prefix)
	defer store.Close()
	if _, err := emb.Client.Put(ctx, m.Prefix+"format", `{"format":99,"written_by":"starbook v99.0.0"}`); err != nil {
		t.Fatal(err)
	}
	count := func() *clientv3.GetResponse {
		resp, err := emb.Client.Get(ctx, m.Prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	before := count()
	_, err = node.New(ctx, store, node.Config{ID: "n2", Builtins: builtins.New(builtins.Options{})})
	var fe *cluster.FormatError
	want := fmt.Sprintf("node n2: store format 99 (written by starbook v99.0.0) is newer than this starbook understands (%d): upgrade starbook", cluster.CurrentFormat)
	if !errors.As(err, &fe) || err.Error() != want {
		t.Fatalf("got %v, want %q", err, want)
	}
	if after := count(); after.Header.Revision != before.Header.Revision || after.Count != before.Count {
		t.Errorf("revision %d, %d keys after the refusal; want %d and %d: the node wrote",
			after.Header.Revision, after.Count, before.Header.Revision, before.Count)
	}
}
