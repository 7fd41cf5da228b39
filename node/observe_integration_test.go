package node_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/starbook/starbook/cluster"
	sbruntime "github.com/starbook/starbook/runtime"
)

// fakeClock is a clock tests move by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// startClockedNode starts a node whose store, service and engine read now.
func startClockedNode(t *testing.T, now func() time.Time, tasks ...func(*cluster.Store) func(context.Context)) *testNode {
	t.Helper()
	return startNodeAt(t, t.TempDir(), now, tasks...)
}

func countKeys(t *testing.T, s *cluster.Store, prefix string) int64 {
	t.Helper()
	resp, err := s.Client().Get(context.Background(), prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	return resp.Count
}

// TestLogsWrittenOnceAcrossReplay: log() lines go to logs/<id>/ once each,
// although the second run (after the durable sleep) replays the lines'
// positions; a follower started at once sees every line and then stops.
func TestLogsWrittenOnceAcrossReplay(t *testing.T) {
	tn := startTestNode(t, t.TempDir())
	tn.apply(t, map[string]string{"logs.star": `
def main(event):
    log("start", n = 1)
    x = call(lambda: 1, name = "one")
    print("after one")
    sleep("1ms")
    log("after sleep", level = "warn")
    fan_out(lambda i: log("item %d" % i), [0, 1])
    return x
`})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	e, err := tn.svc.Start(ctx, "logs", nil, sbruntime.Trigger{Type: "manual"})
	if err != nil {
		t.Fatal(err)
	}
	var followed []*sbruntime.LogLine
	followErr := make(chan error, 1)
	go func() {
		followErr <- tn.svc.FollowLogs(ctx, e.ID, 0, func(l *sbruntime.LogLine) error {
			followed = append(followed, l)
			return nil
		})
	}()
	end, err := tn.svc.AwaitEnd(ctx, e.ID)
	if err != nil || end.Status != sbruntime.StatusCompleted {
		t.Fatalf("end = %+v, %v", end, err)
	}
	if err := <-followErr; err != nil {
		t.Fatalf("follow: %v", err)
	}
	lines, err := tn.svc.Logs(ctx, e.ID, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for i, l := range lines {
		got = append(got, fmt.Sprintf("%s@%s#%d", l.Msg, l.Position, l.Index))
		if i > 0 && l.Seq <= lines[i-1].Seq {
			t.Errorf("seq not increasing: %d after %d", l.Seq, lines[i-1].Seq)
		}
	}
	// fan_out items run in parallel: compare their lines as a set.
	want := "start@0#1 after one@1#1 after sleep@2#1 item 0@3/0/0#1 item 1@3/1/0#1"
	if len(got) == 5 && got[3] > got[4] {
		got[3], got[4] = got[4], got[3]
	}
	if strings.Join(got, " ") != want {
		t.Errorf("logs = %s\nwant %s", strings.Join(got, " "), want)
	}
	if len(followed) != len(lines) {
		t.Errorf("follower saw %d lines, stored %d", len(followed), len(lines))
	}
	if lines[0].Attrs["n"] != "1" || lines[2].Level != "WARN" {
		t.Errorf("attrs/level: %+v %+v", lines[0], lines[2])
	}
	_, history, _ := tn.svc.Execution(ctx, e.ID)
	if len(history) != 3 {
		t.Errorf("history has %d events: logs must not take positions", len(history))
	}
	more, err := tn.svc.Logs(ctx, e.ID, lines[1].Seq, 0)
	if err != nil || len(more) != 3 {
		t.Errorf("after=%d: %d lines, %v; want 3", lines[1].Seq, len(more), err)
	}
	if _, err := tn.svc.Logs(ctx, "nope", 0, 0); !errors.Is(err, sbruntime.ErrNotFound) {
		t.Errorf("unknown execution: %v", err)
	}
}

// TestRetentionDeletesOnlyOldEndedExecutions: with the clock moved past the
// retention age, Prune deletes the ended executions with their history, logs
// and dedup pointers, and leaves waiting and running ones whole; Compact then
// compacts etcd.
//
// The leader's retention task reads a clock of its own that stays put: a
// node that stalls past its 2s session TTL (a loaded machine) leads again,
// and its new leadership starts with a pass; on the moved clock that pass
// deleted the old executions before the Prune under test (which found none).
func TestRetentionDeletesOnlyOldEndedExecutions(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clk := &fakeClock{t: start}
	passes := make(chan int, 10)
	tn := startClockedNode(t, clk.Now, func(s *cluster.Store) func(context.Context) {
		return s.RetentionTask(cluster.Retention{Now: func() time.Time { return start }, Interval: time.Hour, OnPass: func(n int, err error) {
			if err != nil {
				t.Errorf("retention pass: %v", err)
			}
			select {
			case passes <- n: // the first pass always fits
			default: // more leaderships than the test looks at
			}
		}})
	})
	store := tn.svc.Store
	tn.apply(t, map[string]string{
		"done.star":    "def main(event):\n    log(\"hi\")\n    return call(lambda: 1, name = \"one\")\n",
		"waiting.star": "def main(event):\n    call(lambda: 1, name = \"one\")\n    return wait_for_signal(\"go\")\n",
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var old []string
	for range 2 {
		e, _ := tn.runToEnd(t, "done", "")
		if e.Status != sbruntime.StatusCompleted {
			t.Fatalf("done ended %s: %s", e.Status, e.Error)
		}
		old = append(old, e.ID)
	}
	if _, err := store.Client().Put(ctx, key(store, "dedup", "webhook", "k1"), old[0]); err != nil {
		t.Fatal(err)
	}
	waiting, err := tn.svc.Start(ctx, "waiting", nil, sbruntime.Trigger{Type: "manual"})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case n := <-passes: // the leader's first pass, with nothing old yet
		if n != 0 {
			t.Errorf("first pass deleted %d", n)
		}
	case <-ctx.Done():
		t.Fatal("no retention pass while leading")
	}

	clk.Add(cluster.DefaultRetention + 24*time.Hour)
	recent, _ := tn.runToEnd(t, "done", "") // ended now: kept
	n, err := store.Prune(ctx, clk.Now().Add(-cluster.DefaultRetention), 1)
	if err != nil || n != 2 {
		t.Fatalf("Prune = %d, %v; want 2", n, err)
	}
	for _, id := range old {
		if _, _, err := store.Execution(ctx, id); !errors.Is(err, sbruntime.ErrNotFound) {
			t.Errorf("%s: %v, want not found", id, err)
		}
		for _, p := range []string{key(store, "history", id) + "/", key(store, "logs", id) + "/", key(store, "executions", id)} {
			if c := countKeys(t, store, p); c != 0 {
				t.Errorf("%d keys left under %s", c, p)
			}
		}
	}
	if c := countKeys(t, store, key(store, "dedup")+"/"); c != 0 {
		t.Errorf("dedup pointer left")
	}
	for _, id := range []string{waiting.ID, recent.ID} {
		e, history, err := store.Execution(ctx, id)
		if err != nil || len(history) == 0 {
			t.Errorf("%s: %v, %d events; want it kept", id, err, len(history))
			continue
		}
		if id == waiting.ID && e.Status.Terminal() {
			t.Errorf("waiting execution is %s", e.Status)
		}
	}
	rev, err := store.Compact(ctx, 1)
	if err != nil || rev == 0 {
		t.Fatalf("Compact = %d, %v", rev, err)
	}
	if _, err := store.Client().Get(ctx, "x", clientv3.WithRev(rev-1)); err == nil {
		t.Errorf("revision %d still readable after compaction to %d", rev-1, rev)
	}
}

// TestSnapshotAndVersions: the state the metrics read, and the stored versions.
func TestSnapshotAndVersions(t *testing.T) {
	tn := startTestNode(t, t.TempDir())
	tn.apply(t, map[string]string{"w.star": "def main(event):\n    return wait_for_signal(\"go\", timeout = \"1h\")\n"})
	tn.apply(t, map[string]string{"w.star": "def main(event):\n    return wait_for_signal(\"go\")\n"})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	e, err := tn.svc.Start(ctx, "w", nil, sbruntime.Trigger{Type: "manual"})
	if err != nil {
		t.Fatal(err)
	}
	awaitStored(t, tn.svc.Store, e.ID, sbruntime.StatusWaiting)
	snap, err := tn.svc.Store.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if snap.Waits[sbruntime.KindSignal] != 1 || snap.OldestWait[sbruntime.KindSignal].IsZero() || snap.QueueDepth != 0 || snap.Nodes != 1 {
		t.Errorf("snapshot = %+v", snap)
	}
	waits, err := tn.svc.ExecutionWaits(ctx, e.ID)
	if err != nil || len(waits) != 1 || waits[0].Where != "w.star:2:27" {
		t.Errorf("waits = %+v, %v", waits, err)
	}
	info, err := tn.svc.Runbook(ctx, "w")
	if err != nil || len(info.Versions) != 2 || !info.Versions[0].Current || info.Current != info.Versions[0].Version {
		t.Errorf("runbook = %+v, %v", info, err)
	}
	if _, err := tn.svc.Runbook(ctx, "nope"); !errors.Is(err, sbruntime.ErrNotFound) {
		t.Errorf("unknown runbook: %v", err)
	}
}

// awaitStored watches execution id's record until it is stored with status.
func awaitStored(t *testing.T, s *cluster.Store, id string, status sbruntime.Status) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := s.Client().Get(ctx, key(s, "executions", id))
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) > 0 {
		if e, err := decodeRecord(resp.Kvs[0].Value); err == nil && e.Status == status {
			return
		}
	}
	for wr := range s.Client().Watch(ctx, key(s, "executions", id), clientv3.WithRev(resp.Header.Revision+1)) {
		for _, ev := range wr.Events {
			if e, err := decodeRecord(ev.Kv.Value); err == nil && e.Status == status {
				return
			}
		}
	}
	t.Fatalf("execution %s never stored as %s", id, status)
}

// decodeRecord decodes a stored execution record.
func decodeRecord(data []byte) (*sbruntime.Execution, error) {
	var e sbruntime.Execution
	return &e, json.Unmarshal(data, &e)
}
