package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/starbook/starbook"
	sbruntime "github.com/starbook/starbook/runtime"
	"github.com/starbook/starbook/triggers"
)

// dlFixture is a store with dead letters of every reason and kind, written
// by the paths that write them in production, on a clock the test moves.
type dlFixture struct {
	t    *testing.T
	ctx  context.Context
	s    *Store
	tr   *Triggers
	mu   sync.Mutex
	now  time.Time
	seq  int
	want map[string]*starbook.DeadLetter // by id: what should be listed
}

func newDLFixture(t *testing.T, prefix string) *dlFixture {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	s := NewStore(startSuiteEtcd(t).Client, prefix)
	t.Cleanup(func() { s.Close() })
	f := &dlFixture{t: t, ctx: ctx, s: s, now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC), want: map[string]*starbook.DeadLetter{}}
	s.SetClock(f.clock)
	f.tr = NewTriggers(s, f.clock, nil)
	return f
}

func (f *dlFixture) clock() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *dlFixture) tick(d time.Duration) {
	f.mu.Lock()
	f.now = f.now.Add(d)
	f.mu.Unlock()
}

// endExecution creates an execution of runbook and ends it as o says
// through a claim (the end txn of claim.go).
func (f *dlFixture) endExecution(runbook string, o sbruntime.Outcome) *sbruntime.Execution {
	f.t.Helper()
	f.seq++
	now := f.clock()
	e := &sbruntime.Execution{ID: fmt.Sprintf("01J%04d", f.seq), Runbook: runbook, Version: "v1",
		Status: sbruntime.StatusPending, Trigger: sbruntime.Trigger{Type: "manual"}, CreatedAt: now, UpdatedAt: now}
	if err := f.s.CreateExecution(f.ctx, e); err != nil {
		f.t.Fatal(err)
	}
	lease, err := f.s.cli.Grant(f.ctx, 60)
	if err != nil {
		f.t.Fatal(err)
	}
	c, err := f.s.Claim(f.ctx, e.ID, "n1", lease.ID)
	if err != nil {
		f.t.Fatal(err)
	}
	ended, err := c.Finish(f.ctx, o)
	if err != nil {
		f.t.Fatal(err)
	}
	if dl := deadLetterOf(ended); dl != nil {
		f.expect(dl)
	}
	return ended
}

// refuse records a start a budget refused (budget.go's refuseStart).
func (f *dlFixture) refuse(runbook string) {
	f.t.Helper()
	f.seq++
	now := f.clock()
	e := &sbruntime.Execution{ID: fmt.Sprintf("01J%04d", f.seq), Runbook: runbook, Version: "v1",
		Status: sbruntime.StatusPending, Trigger: sbruntime.Trigger{Type: "manual"}, CreatedAt: now, UpdatedAt: now}
	err := f.s.refuseStart(f.ctx, e, &sbruntime.BudgetError{Budget: "runs_per_day", Limit: 3})
	var le *sbruntime.LimitError
	if !errors.As(err, &le) {
		f.t.Fatalf("refuseStart: %v", err)
	}
	f.expect(deadLetterOf(e))
}

// event keeps a trigger event as a dead letter (Triggers.DeadLetter), with
// a dedup key or without.
func (f *dlFixture) event(reason, runbook string, dedup bool) {
	f.t.Helper()
	f.seq++
	ev := triggers.Unstarted{Source: "alertmanager", Reason: reason, Runbook: runbook, Detail: "test"}
	if dedup {
		ev.DedupKey = fmt.Sprintf("fp%d/start", f.seq)
	}
	before := f.listAll()
	if err := f.tr.DeadLetter(f.ctx, []triggers.Unstarted{ev}); err != nil {
		f.t.Fatal(err)
	}
	after := f.listAll()
	for _, dl := range after {
		if !slices.ContainsFunc(before, func(b *starbook.DeadLetter) bool { return b.ID == dl.ID }) {
			f.expect(dl)
			return
		}
	}
	f.t.Fatal("the event was not kept")
}

func (f *dlFixture) expect(dl *starbook.DeadLetter) {
	if dl == nil {
		f.t.Fatal("not a dead letter")
	}
	f.want[dl.ID] = dl
}

// listAll reads the dead-letter records themselves, not the index.
func (f *dlFixture) listAll() []*starbook.DeadLetter {
	f.t.Helper()
	resp, err := f.s.cli.Get(f.ctx, f.s.k.deadLetters(), clientv3.WithPrefix())
	if err != nil {
		f.t.Fatal(err)
	}
	var out []*starbook.DeadLetter
	for _, kv := range resp.Kvs {
		var dl starbook.DeadLetter
		if err := json.Unmarshal(kv.Value, &dl); err != nil {
			f.t.Fatal(err)
		}
		out = append(out, &dl)
	}
	return out
}

// expected is what a listing of flt should return across its pages: the
// dead letters the test made, newest first by cursor.
func (f *dlFixture) expected(flt starbook.DeadLetterFilter) []string {
	var out []string
	for _, dl := range f.want {
		if (flt.Runbook == "" || dl.Runbook == flt.Runbook) && (flt.Reason == "" || dl.Reason == flt.Reason) &&
			(flt.After == "" || dl.Cursor() < flt.After) {
			out = append(out, dl.Cursor())
		}
	}
	slices.Sort(out)
	slices.Reverse(out)
	return out
}

// checkPages pages through every filter with every kind of cursor and
// compares with expected.
func (f *dlFixture) checkPages(t *testing.T) {
	var mid string
	if all := f.expected(starbook.DeadLetterFilter{}); len(all) > 2 {
		mid = all[len(all)/2]
	}
	ms, _, _ := starbook.ParseDeadLetterCursor(mid)
	tests := []struct {
		name string
		f    starbook.DeadLetterFilter
	}{
		{"everything a page at a time", starbook.DeadLetterFilter{Limit: 1}},
		{"everything", starbook.DeadLetterFilter{Limit: 7}},
		{"from a cursor", starbook.DeadLetterFilter{Limit: 5, After: mid}},
		{"from a cursor no dead letter has", starbook.DeadLetterFilter{Limit: 4, After: fmt.Sprintf("%013d.zz", ms)}},
		{"from past the newest", starbook.DeadLetterFilter{Limit: 9, After: "9999999999999.z"}},
		{"from before the oldest", starbook.DeadLetterFilter{Limit: 9, After: "0000000000000.0"}},
		{"runbook", starbook.DeadLetterFilter{Runbook: "a", Limit: 3}},
		{"reason", starbook.DeadLetterFilter{Reason: starbook.ReasonFailed, Limit: 2}},
		{"reason of events", starbook.DeadLetterFilter{Reason: starbook.ReasonNoRunbook, Limit: 2}},
		{"runbook and reason", starbook.DeadLetterFilter{Runbook: "b", Reason: starbook.ReasonStuck, Limit: 2}},
		{"runbook and cursor", starbook.DeadLetterFilter{Runbook: "a", Limit: 2, After: mid}},
		{"sparse", starbook.DeadLetterFilter{Runbook: "rare", Limit: 2}},
		{"no match", starbook.DeadLetterFilter{Runbook: "none", Limit: 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := f.expected(tt.f)
			flt := tt.f
			var got []string
			for range len(f.want) + 1 {
				page, err := f.s.DeadLetters(f.ctx, flt)
				if err != nil {
					t.Fatal(err)
				}
				for _, dl := range page {
					got = append(got, dl.Cursor())
				}
				if len(page) < flt.Limit {
					break
				}
				flt.After = page[len(page)-1].Cursor()
			}
			if !slices.Equal(got, want) {
				t.Errorf("paged %q\nwant  %q", got, want)
			}
		})
	}
	t.Run("no limit", func(t *testing.T) {
		all, err := f.s.DeadLetters(f.ctx, starbook.DeadLetterFilter{})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, dl := range all {
			got = append(got, dl.Cursor())
			if w := f.want[dl.ID]; w == nil || w.Reason != dl.Reason || w.Kind != dl.Kind {
				t.Errorf("listed %+v, want %+v", dl, w)
			}
		}
		if want := f.expected(starbook.DeadLetterFilter{}); !slices.Equal(got, want) {
			t.Errorf("listed %q\nwant   %q", got, want)
		}
	})
	t.Run("index keys", func(t *testing.T) { f.checkIndexKeys(t) })
	t.Run("counts", func(t *testing.T) {
		got, err := f.s.DeadLetterCounts(f.ctx)
		if err != nil {
			t.Fatal(err)
		}
		want := map[[2]string]int{}
		for _, dl := range f.want {
			want[[2]string{dl.Runbook, dl.Reason}]++
		}
		if !maps.Equal(got, want) {
			t.Errorf("counts %v, want %v", got, want)
		}
	})
}

// checkIndexKeys checks that the index holds exactly the keys of the dead
// letters expected: none left behind by what removed the others.
func (f *dlFixture) checkIndexKeys(t *testing.T) {
	t.Helper()
	want := map[string]bool{}
	for _, dl := range f.want {
		for _, k := range f.s.k.deadIndexKeys(dl) {
			want[k] = true
		}
	}
	got := map[string]bool{}
	for _, p := range []string{f.s.k.prefix + "ix/d/", f.s.k.deadRunbookIndexes(), f.s.k.prefix + "ixs/d/", f.s.k.prefix + "ixs/dr/"} {
		resp, err := f.s.cli.Get(f.ctx, p, clientv3.WithPrefix(), clientv3.WithKeysOnly())
		if err != nil {
			t.Fatal(err)
		}
		for _, kv := range resp.Kvs {
			got[string(kv.Key)] = true
		}
	}
	for k := range got {
		if !want[k] {
			t.Errorf("index key %q outlived its dead letter", k)
		}
	}
	for k := range want {
		if !got[k] {
			t.Errorf("index key %q missing", k)
		}
	}
}

// populate makes dead letters of every reason, a second apart, with two
// events in the same millisecond (the id breaks the tie).
func (f *dlFixture) populate() {
	failed := sbruntime.Outcome{Status: sbruntime.StatusFailed, Error: "boom"}
	for i := range 12 {
		runbook := []string{"a", "b"}[i%2]
		if i%5 == 4 {
			runbook = "rare"
		}
		switch i % 4 {
		case 0:
			f.endExecution(runbook, failed)
		case 1:
			f.endExecution(runbook, sbruntime.Outcome{Status: sbruntime.StatusStuck, Error: "[SB1001] diverged"})
		case 2:
			f.endExecution(runbook, sbruntime.Outcome{Status: sbruntime.StatusFailed, Error: "compensation_failed: undo"})
		case 3:
			f.refuse(runbook)
		}
		f.endExecution(runbook, sbruntime.Outcome{Status: sbruntime.StatusCompleted}) // no dead letter
		f.tick(time.Second)
		f.event(starbook.ReasonNoRunbook, "", i%2 == 0)
		f.tick(1500 * time.Millisecond) // the bucket refills
		f.event(starbook.ReasonRefused, runbook, i%2 == 1)
		if i == 6 {
			f.event(starbook.ReasonRefused, runbook, false) // the same millisecond
		}
		f.tick(time.Second)
	}
}

// TestDeadLettersPaged pages through dead letters with every filter and
// cursor, compared with the full list sorted by cursor, then again after
// acks, redrives, retention and pruning, checking each time that the index
// holds exactly the keys of the dead letters left.
func TestDeadLettersPaged(t *testing.T) {
	f := newDLFixture(t, "/dlpage/")
	f.populate()
	if len(f.want) < 30 {
		t.Fatalf("%d dead letters made", len(f.want))
	}
	t.Run("stored", f.checkPages)

	ids := slices.Sorted(maps.Keys(f.want))
	var execs, events []string
	for _, id := range ids {
		if f.want[id].Kind == starbook.DeadExecution {
			execs = append(execs, id)
		} else {
			events = append(events, id)
		}
	}
	t.Run("ack", func(t *testing.T) {
		for _, id := range []string{execs[2], events[3], events[4]} {
			dl, err := f.s.AckDeadLetter(f.ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if dl.ID != id {
				t.Fatalf("acked %s, want %s", dl.ID, id)
			}
			delete(f.want, id)
		}
		f.checkPages(t)
	})
	t.Run("redrive", func(t *testing.T) {
		// From the failed step: the same execution runs again.
		st, err := f.s.ReadRedrive(f.ctx, execs[3])
		if err != nil {
			t.Fatal(err)
		}
		next := *st.Execution
		next.Redrives = append(next.Redrives, sbruntime.Redrive{Attempt: 2, At: f.clock(), Status: next.Status, Error: next.Error})
		next.Status, next.Error, next.EndedAt = sbruntime.StatusPending, "", nil
		if err := f.s.RedriveFailed(f.ctx, st, &next); err != nil {
			t.Fatal(err)
		}
		delete(f.want, execs[3])
		// From the start: a new execution.
		st, err = f.s.ReadRedrive(f.ctx, execs[4])
		if err != nil {
			t.Fatal(err)
		}
		old := *st.Execution
		fresh := &sbruntime.Execution{ID: "01K0001", Runbook: old.Runbook, Version: "v1", Status: sbruntime.StatusPending,
			Trigger: sbruntime.Trigger{Type: "manual"}, CreatedAt: f.clock(), UpdatedAt: f.clock(), RedriveOf: old.ID}
		old.RedrivenAs = []string{fresh.ID}
		if err := f.s.RedriveStart(f.ctx, st, &old, fresh); err != nil {
			t.Fatal(err)
		}
		delete(f.want, execs[4])
		f.checkPages(t)
	})
	t.Run("retention", func(t *testing.T) {
		cutoff := f.want[execs[len(execs)/2]].At.Add(time.Millisecond)
		if _, err := f.s.Prune(f.ctx, cutoff, 3); err != nil {
			t.Fatal(err)
		}
		if _, err := f.s.PruneDeadEvents(f.ctx, cutoff); err != nil {
			t.Fatal(err)
		}
		for id, dl := range f.want {
			// RedriveStart linked execs[4], which stays a record: it
			// is no dead letter any more either way.
			if dl.At.Before(cutoff) {
				delete(f.want, id)
			}
		}
		if len(f.want) < 10 {
			t.Fatalf("%d dead letters left", len(f.want))
		}
		f.checkPages(t)
	})
	t.Run("prune events in chunks", func(t *testing.T) {
		n := 0
		for _, dl := range f.want {
			if dl.Kind == starbook.DeadEvent {
				n++
			}
		}
		deleted, err := f.s.PruneDeadEvents(f.ctx, f.clock().Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if deleted != int64(n) {
			t.Errorf("pruned %d, want %d", deleted, n)
		}
		for id, dl := range f.want {
			if dl.Kind == starbook.DeadEvent {
				delete(f.want, id)
			}
		}
		f.checkPages(t)
	})
}

// TestPruneDeadEventsChunks prunes more events' dead letters than one txn
// deletes, and only those older than the cutoff.
func TestPruneDeadEventsChunks(t *testing.T) {
	f := newDLFixture(t, "/dlprune/")
	var evs []triggers.Unstarted
	for i := range 50 {
		evs = append(evs, triggers.Unstarted{Source: "alertmanager", Reason: starbook.ReasonNoRunbook, Detail: fmt.Sprint(i)})
	}
	// The bucket holds 60: all 50 at once, then 10 an hour later.
	if err := f.tr.DeadLetter(f.ctx, evs); err != nil {
		t.Fatal(err)
	}
	f.tick(time.Hour)
	cutoff := f.clock()
	if err := f.tr.DeadLetter(f.ctx, evs[:10]); err != nil {
		t.Fatal(err)
	}
	for _, dl := range f.listAll() {
		f.want[dl.ID] = dl
	}
	if len(f.want) != 60 {
		t.Fatalf("%d kept, want 60", len(f.want))
	}
	deleted, err := f.s.PruneDeadEvents(f.ctx, cutoff)
	if err != nil {
		t.Fatal(err)
	}
	if deleted != 50 {
		t.Errorf("pruned %d, want 50", deleted)
	}
	for id, dl := range f.want {
		if dl.At.Before(cutoff) {
			delete(f.want, id)
		}
	}
	f.checkIndexKeys(t)
	all, err := f.s.DeadLetters(f.ctx, starbook.DeadLetterFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 10 {
		t.Errorf("%d listed, want 10", len(all))
	}
}

// TestDeadLetterIndexMigration builds the dead-letter index of a format 3
// store (records, no index keys) in the migration to format 4: resuming
// after what migrating/4/deadletters says, idempotent when run again.
func TestDeadLetterIndexMigration(t *testing.T) {
	f := newDLFixture(t, "/dlmig/")
	f.populate()
	// What format 3 stored: the records without their index keys.
	for _, p := range []string{f.s.k.prefix + "ix/d/", f.s.k.deadRunbookIndexes(), f.s.k.prefix + "ixs/d/", f.s.k.prefix + "ixs/dr/"} {
		if _, err := f.s.cli.Delete(f.ctx, p, clientv3.WithPrefix()); err != nil {
			t.Fatal(err)
		}
	}
	if ok, err := f.s.putFormat(f.ctx, Format{Format: 3, WrittenBy: "test"}, nil); err != nil || !ok {
		t.Fatal(ok, err)
	}
	// A migrator died after indexing the first three records (and
	// recording it): the next one indexes the rest.
	recs, err := f.s.cli.Get(f.ctx, f.s.k.deadLetters(), clientv3.WithPrefix(), clientv3.WithLimit(3))
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range recs.Kvs {
		var dl starbook.DeadLetter
		if err := json.Unmarshal(kv.Value, &dl); err != nil {
			t.Fatal(err)
		}
		if _, err := f.s.cli.Txn(f.ctx).Then(f.s.k.deadIndexPuts(&dl)...).Commit(); err != nil {
			t.Fatal(err)
		}
	}
	done := strings.TrimPrefix(string(recs.Kvs[2].Key), f.s.k.deadLetters())
	if _, err := f.s.cli.Put(f.ctx, f.s.k.migratingDeadLetters(4), done); err != nil {
		t.Fatal(err)
	}
	got, err := f.s.OpenFormat(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got.Format != CurrentFormat {
		t.Fatalf("format %d after migrating", got.Format)
	}
	left, err := f.s.cli.Get(f.ctx, f.s.k.prefix+"migrating/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	if left.Count != 0 {
		t.Errorf("%d migration progress keys left", left.Count)
	}
	t.Run("migrated", f.checkPages)
	// Run again (a migrator that died before the marker): nothing changes.
	fence := []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(f.s.k.format()), ">", 0)}
	if err := f.s.buildIndex(f.ctx, fence); err != nil {
		t.Fatal(err)
	}
	t.Run("again", func(t *testing.T) { f.checkIndexKeys(t) })
}

// countingKV counts the keys etcd returns to the reads made through it.
type countingKV struct {
	clientv3.KV
	keys *atomic.Int64
}

func (c countingKV) Get(ctx context.Context, key string, opts ...clientv3.OpOption) (*clientv3.GetResponse, error) {
	resp, err := c.KV.Get(ctx, key, opts...)
	if err == nil {
		c.keys.Add(int64(len(resp.Kvs)))
	}
	return resp, err
}

func (c countingKV) Txn(ctx context.Context) clientv3.Txn { return countingTxn{c.KV.Txn(ctx), c.keys} }

type countingTxn struct {
	clientv3.Txn
	keys *atomic.Int64
}

func (t countingTxn) If(cs ...clientv3.Cmp) clientv3.Txn { return countingTxn{t.Txn.If(cs...), t.keys} }
func (t countingTxn) Then(ops ...clientv3.Op) clientv3.Txn {
	return countingTxn{t.Txn.Then(ops...), t.keys}
}
func (t countingTxn) Else(ops ...clientv3.Op) clientv3.Txn {
	return countingTxn{t.Txn.Else(ops...), t.keys}
}
func (t countingTxn) Commit() (*clientv3.TxnResponse, error) {
	resp, err := t.Txn.Commit()
	if err == nil {
		for _, r := range resp.Responses {
			if rr := r.GetResponseRange(); rr != nil {
				t.keys.Add(int64(len(rr.Kvs)))
			}
		}
	}
	return resp, err
}

// benchDeadLetters is a store on its own client, counting the keys its
// reads return, holding stored dead letters of every reason over five
// runbooks, a second apart.
func benchDeadLetters(b *testing.B, stored int) (*Store, *atomic.Int64) {
	ctx := context.Background()
	cli, err := DialEtcd(benchEtcd(b).Client.Endpoints(), nil)
	if err != nil {
		b.Fatal(err)
	}
	keys := new(atomic.Int64)
	cli.KV = countingKV{cli.KV, keys}
	s := NewStore(cli, fmt.Sprintf("/benchdl%d/", stored))
	b.Cleanup(func() { s.Close(); cli.Close() })
	reasons := starbook.DeadLetterReasons
	payload := json.RawMessage(`{"labels": {"alertname": "HighLatency", "pod": "api-1"}, "annotations": {"summary": "` + strings.Repeat("x", 400) + `"}}`)
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	if n, err := s.cli.Get(ctx, s.k.deadEvents(), clientv3.WithPrefix(), clientv3.WithCountOnly()); err == nil && n.Count == int64(stored) {
		return s, keys // -count > 1: stored already
	}
	for i := 0; i < stored; {
		var ops []clientv3.Op
		for ; i < stored && len(ops)+3 <= defaultMaxTxnOps; i++ {
			dl := &starbook.DeadLetter{ID: fmt.Sprintf("01JBENCH%06d", i), Kind: starbook.DeadEvent, Reason: reasons[i%len(reasons)],
				Runbook: fmt.Sprintf("rb%d", i%5), Source: "alertmanager", Payload: payload, At: t0.Add(time.Duration(i) * time.Second)}
			data, _ := json.Marshal(dl)
			ops = append(append(ops, clientv3.OpPut(s.k.deadEvent(dl.ID), string(data))), s.k.deadIndexPuts(dl)...)
		}
		if _, err := s.cli.Txn(ctx).Then(ops...).Commit(); err != nil {
			b.Fatal(err)
		}
	}
	return s, keys
}

// BenchmarkDeadLettersFirstPage lists the newest 100 dead letters with
// 1,000 and 10,000 stored, alternating between the two stores so that
// both see the same load on a shared machine, and reports the keys etcd
// returned per page and the ratio of the median page times (10k/1k). A
// page reads what it returns, give or take the sample keys that bound its
// windows and a window's worth at a stream's edge: the keys stay within a
// small factor and the ratio near 1. "scan" is what a listing cost before
// the index (every record read, decoded and sorted), for contrast.
//
//	go test ./cluster -run '^$' -bench DeadLettersFirstPage -benchtime 200x
func BenchmarkDeadLettersFirstPage(b *testing.B) {
	ctx := context.Background()
	small, smallKeys := benchDeadLetters(b, 1000)
	large, largeKeys := benchDeadLetters(b, 10_000)
	for _, tt := range []struct {
		name string
		f    starbook.DeadLetterFilter
	}{
		{"all", starbook.DeadLetterFilter{Limit: 100}},
		{"runbook", starbook.DeadLetterFilter{Runbook: "rb1", Limit: 100}},
		{"reason", starbook.DeadLetterFilter{Reason: starbook.ReasonFailed, Limit: 100}},
	} {
		b.Run(tt.name, func(b *testing.B) {
			var ts [2][]time.Duration
			var keys [2]int64
			for b.Loop() {
				for i, s := range []*Store{small, large} {
					counter := []*atomic.Int64{smallKeys, largeKeys}[i]
					before := counter.Load()
					start := time.Now()
					page, err := s.DeadLetters(ctx, tt.f)
					ts[i] = append(ts[i], time.Since(start))
					if err != nil || len(page) != 100 {
						b.Fatal(len(page), err)
					}
					keys[i] = counter.Load() - before
				}
			}
			med := func(d []time.Duration) time.Duration { slices.Sort(d); return d[len(d)/2] }
			m1, m10 := med(ts[0]), med(ts[1])
			b.ReportMetric(float64(m1.Microseconds()), "µs/page@1k")
			b.ReportMetric(float64(m10.Microseconds()), "µs/page@10k")
			b.ReportMetric(float64(m10)/float64(m1), "ratio")
			b.ReportMetric(float64(keys[0]), "keys@1k")
			b.ReportMetric(float64(keys[1]), "keys@10k")
		})
	}
	for _, s := range []*Store{small, large} {
		n := strings.Trim(strings.TrimPrefix(s.k.prefix, "/benchdl"), "/")
		b.Run("counts/stored="+n, func(b *testing.B) {
			for b.Loop() {
				if _, err := s.DeadLetterCounts(ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("scan/stored="+n, func(b *testing.B) {
			for b.Loop() {
				resp, err := s.cli.Get(ctx, s.k.deadLetters(), clientv3.WithPrefix())
				if err != nil {
					b.Fatal(err)
				}
				all := make([]*starbook.DeadLetter, len(resp.Kvs))
				for i, kv := range resp.Kvs {
					all[i] = new(starbook.DeadLetter)
					if err := json.Unmarshal(kv.Value, all[i]); err != nil {
						b.Fatal(err)
					}
				}
				slices.SortFunc(all, func(x, y *starbook.DeadLetter) int { return strings.Compare(y.Cursor(), x.Cursor()) })
			}
		})
	}
}
