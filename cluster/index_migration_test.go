package cluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	sbruntime "github.com/starbook/starbook/runtime"
)

// faultKV is a clientv3.KV that hands every txn writing key (a put or a
// delete) to fault, with the number of such txns so far (from 1) and the
// txn's own commit: fault decides whether it commits and what the caller
// hears, as a migrator killed before or after a txn, or one whose lock
// goes meanwhile, would.
type faultKV struct {
	clientv3.KV
	key   string
	n     atomic.Int32
	fault func(n int, commit func() (*clientv3.TxnResponse, error)) (*clientv3.TxnResponse, error)
}

func (f *faultKV) Txn(ctx context.Context) clientv3.Txn { return &faultTxn{Txn: f.KV.Txn(ctx), kv: f} }

type faultTxn struct {
	clientv3.Txn
	kv      *faultKV
	watched bool
}

func (t *faultTxn) If(cs ...clientv3.Cmp) clientv3.Txn { t.Txn = t.Txn.If(cs...); return t }
func (t *faultTxn) Else(ops ...clientv3.Op) clientv3.Txn {
	t.Txn = t.Txn.Else(ops...)
	return t
}

func (t *faultTxn) Then(ops ...clientv3.Op) clientv3.Txn {
	for _, op := range ops {
		if (op.IsPut() || op.IsDelete()) && string(op.KeyBytes()) == t.kv.key {
			t.watched = true
		}
	}
	t.Txn = t.Txn.Then(ops...)
	return t
}

func (t *faultTxn) Commit() (*clientv3.TxnResponse, error) {
	if !t.watched || t.kv.fault == nil {
		return t.Txn.Commit()
	}
	return t.kv.fault(int(t.kv.n.Add(1)), t.Txn.Commit)
}

// format3Store is a store under prefix as format 3 left it: n executions
// (ids e000…, runbooks and statuses in turn, every class) with no index
// keys and a format 3 marker. It returns the executions oldest first.
func format3Store(t *testing.T, emb *Embedded, prefix string, n int) (*Store, []*sbruntime.Execution) {
	t.Helper()
	ctx := context.Background()
	s := NewStore(emb.Client, prefix)
	t.Cleanup(s.Close)
	statuses := []sbruntime.Status{sbruntime.StatusPending, sbruntime.StatusCompleted, sbruntime.StatusRunning,
		sbruntime.StatusFailed, sbruntime.StatusWaiting, sbruntime.StatusCancelled, sbruntime.StatusStuck}
	runbooks := []string{"deploy", "restart", "rollback"}
	var execs []*sbruntime.Execution
	for i := range n {
		now := time.Now().UTC()
		e := &sbruntime.Execution{ID: fmt.Sprintf("e%03d", i), Runbook: runbooks[i%len(runbooks)], Version: "v1",
			Status: statuses[i%len(statuses)], Trigger: sbruntime.Trigger{Type: "manual"}, CreatedAt: now, UpdatedAt: now}
		if err := s.CreateExecution(ctx, e); err != nil {
			t.Fatal(err)
		}
		execs = append(execs, e)
	}
	if _, err := s.cli.Delete(ctx, prefix+"ix", clientv3.WithPrefix()); err != nil { // ix/ and ixs/
		t.Fatal(err)
	}
	putMarker(t, s, `{"format":3,"written_by":"starbook v3"}`)
	return s, execs
}

// indexKeysOf returns the store's index keys, each with how often it is there.
func indexKeysOf(t *testing.T, s *Store) map[string]int {
	t.Helper()
	keys := map[string]int{}
	for _, family := range []string{"ix/", "ixs/"} { // the index and its sample
		resp, err := s.cli.Get(context.Background(), s.k.prefix+family, clientv3.WithPrefix(), clientv3.WithKeysOnly())
		if err != nil {
			t.Fatal(err)
		}
		for _, kv := range resp.Kvs {
			keys[string(kv.Key)]++
		}
	}
	return keys
}

// checkIndexed fails unless the index holds exactly the two keys of each
// of execs, in its class.
func checkIndexed(t *testing.T, s *Store, execs []*sbruntime.Execution) {
	t.Helper()
	got := indexKeysOf(t, s)
	want := map[string]int{}
	for _, e := range execs {
		for _, k := range s.k.indexKeys(e.ID, e.Runbook, indexClass(e.Status)) {
			want[k]++
		}
	}
	for k, n := range want {
		if got[k] != n {
			t.Errorf("index key %q is there %d times, want %d", k, got[k], n)
		}
	}
	for k := range got {
		if want[k] == 0 {
			t.Errorf("index key %q should not be there", k)
		}
	}
}

// progressOf is migrating/4's value, "" when absent.
func progressOf(t *testing.T, s *Store) string {
	t.Helper()
	resp, err := s.cli.Get(context.Background(), s.k.migrating(4))
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) == 0 {
		return ""
	}
	return string(resp.Kvs[0].Value)
}

// The index migration killed half way leaves migrating/4 at the last
// execution it indexed and those executions indexed; the next start
// resumes after it (it does not index the store again) and ends with
// every execution indexed once, in its class, and migrating/4 gone.
func TestIndexMigrationResumes(t *testing.T) {
	emb := startSuiteEtcd(t)
	const n = 2*indexChunk + indexChunk/2 + 1 // three chunks, the last part full
	errKilled := errors.New("killed")
	tests := []struct {
		name  string
		fault func(ctx context.CancelFunc) func(int, func() (*clientv3.TxnResponse, error)) (*clientv3.TxnResponse, error)
		err   error
		done  int // chunks committed before the kill
	}{
		{name: "killed after its second chunk committed", done: 2, err: errKilled,
			fault: func(context.CancelFunc) func(int, func() (*clientv3.TxnResponse, error)) (*clientv3.TxnResponse, error) {
				return func(n int, commit func() (*clientv3.TxnResponse, error)) (*clientv3.TxnResponse, error) {
					if n == 2 {
						if _, err := commit(); err != nil {
							return nil, err
						}
						return nil, errKilled // it never heard
					}
					return commit()
				}
			}},
		{name: "killed before its second chunk", done: 1, err: errKilled,
			fault: func(context.CancelFunc) func(int, func() (*clientv3.TxnResponse, error)) (*clientv3.TxnResponse, error) {
				return func(n int, commit func() (*clientv3.TxnResponse, error)) (*clientv3.TxnResponse, error) {
					if n == 2 {
						return nil, errKilled
					}
					return commit()
				}
			}},
		{name: "its context cancelled during the third chunk", done: 2, err: context.Canceled,
			fault: func(cancel context.CancelFunc) func(int, func() (*clientv3.TxnResponse, error)) (*clientv3.TxnResponse, error) {
				return func(n int, commit func() (*clientv3.TxnResponse, error)) (*clientv3.TxnResponse, error) {
					if n == 3 {
						cancel()
					}
					return commit()
				}
			}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			prefix := fmt.Sprintf("/buildindex-%d/", i)
			s, execs := format3Store(t, emb, prefix, n)
			if keys := indexKeysOf(t, s); len(keys) != 0 {
				t.Fatalf("the format 3 store has %d index keys", len(keys))
			}
			_, rev, err := s.readFormat(ctx)
			if err != nil {
				t.Fatal(err)
			}

			// The first migrator, killed.
			runCtx, stop := context.WithCancel(ctx)
			defer stop()
			killed := NewStore(&clientv3.Client{KV: &faultKV{KV: emb.Client.KV, key: s.k.migrating(4), fault: tt.fault(stop)}}, prefix)
			defer killed.Close()
			err = killed.buildIndex(runCtx, []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(s.k.format()), "=", rev)})
			if !errors.Is(err, tt.err) {
				t.Fatalf("got %v, want %v", err, tt.err)
			}
			indexed := execs[:tt.done*indexChunk]
			if got := progressOf(t, s); got != indexed[len(indexed)-1].ID {
				t.Errorf("migrating/4 is %q after %d chunks; want %s", got, tt.done, indexed[len(indexed)-1].ID)
			}
			checkIndexed(t, s, indexed)
			if f, err := s.ReadFormat(ctx); err != nil || f.Format != 3 {
				t.Fatalf("store format %+v, %v after the kill; want 3", f, err)
			}

			// The next start migrates with the registered migrations,
			// under the lock. Watch what it writes to migrating/4.
			w := emb.Client.Watch(ctx, s.k.migrating(4), clientv3.WithRev(storeRev(t, s)+1))
			f, err := s.OpenFormat(ctx)
			if err != nil || f.Format != CurrentFormat {
				t.Fatalf("open after the kill: %+v, %v", f, err)
			}
			var progress []string
			for deleted := false; !deleted; {
				resp := <-w
				if err := resp.Err(); err != nil {
					t.Fatal(err)
				}
				for _, ev := range resp.Events {
					if ev.Type == mvccpb.DELETE {
						deleted = true
					} else {
						progress = append(progress, string(ev.Kv.Value))
					}
				}
			}
			var want []string
			for c := tt.done + 1; c*indexChunk < n+indexChunk; c++ {
				want = append(want, execs[min(c*indexChunk, n)-1].ID)
			}
			if !slices.Equal(progress, want) {
				t.Errorf("the resumed migration recorded progress %v; want %v (the chunks after %d)", progress, want, tt.done)
			}
			if got := progressOf(t, s); got != "" {
				t.Errorf("migrating/4 is %q after the migration; want it gone", got)
			}
			checkIndexed(t, s, execs)

			// The listings see every execution, newest first.
			list, err := s.Executions(ctx, ListFilter{Limit: 2 * n})
			if err != nil {
				t.Fatal(err)
			}
			var got, all []string
			for _, e := range list {
				got = append(got, e.ID)
			}
			for _, e := range slices.Backward(execs) {
				all = append(all, e.ID)
			}
			if !slices.Equal(got, all) {
				t.Errorf("listed %v; want %v", got, all)
			}
		})
	}
}

// A migrator whose fence fails (it lost the migration lock, or the marker
// moved) stops with an error at once, whether during a chunk or at its
// last write, and writes nothing more.
func TestIndexMigrationStopsWithoutTheLock(t *testing.T) {
	emb := startSuiteEtcd(t)
	const n = 2*indexChunk + 1
	tests := []struct {
		name string
		lose int // the progress txn before which the lock goes
		done int // chunks committed
	}{
		{name: "lost during the second chunk", lose: 2, done: 1},
		{name: "lost before the last write", lose: 4, done: 3}, // three chunks, then the delete of migrating/4
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			prefix := fmt.Sprintf("/lostlock-%d/", i)
			s, execs := format3Store(t, emb, prefix, n)
			lock := prefix + "migration/holder"
			put, err := s.cli.Put(ctx, lock, "m1")
			if err != nil {
				t.Fatal(err)
			}
			fence := []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(lock), "=", put.Header.Revision)}
			var txns atomic.Int32
			lost := NewStore(&clientv3.Client{KV: &faultKV{KV: emb.Client.KV, key: s.k.migrating(4),
				fault: func(n int, commit func() (*clientv3.TxnResponse, error)) (*clientv3.TxnResponse, error) {
					txns.Add(1)
					if n == tt.lose {
						if _, err := s.cli.Delete(ctx, lock); err != nil {
							return nil, err
						}
					}
					return commit()
				}}}, prefix)
			defer lost.Close()
			done := make(chan error, 1)
			go func() { done <- lost.buildIndex(ctx, fence) }()
			select {
			case err = <-done:
			case <-time.After(10 * time.Second):
				t.Fatalf("the migrator still runs 10s after it lost the lock (%d txns)", txns.Load())
			}
			if want := "index executions: the migration lock was lost"; err == nil || err.Error() != want {
				t.Fatalf("got %v, want %q", err, want)
			}
			if int(txns.Load()) != tt.lose {
				t.Errorf("%d txns on migrating/4; want %d, none after the loss", txns.Load(), tt.lose)
			}
			indexed := execs[:min(tt.done*indexChunk, n)]
			checkIndexed(t, s, indexed)
			if got := progressOf(t, s); got != indexed[len(indexed)-1].ID {
				t.Errorf("migrating/4 is %q; want %s", got, indexed[len(indexed)-1].ID)
			}
		})
	}
}
