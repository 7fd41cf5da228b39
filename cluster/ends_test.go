package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	sbruntime "github.com/starbook/starbook/runtime"
)

// reportingWatcher reports the key of each watch it opens; a deaf one
// delivers nothing on them, so that a waiter can hear of an end only from
// its store's own feed.
type reportingWatcher struct {
	clientv3.Watcher
	opened chan string
	deaf   bool
}

func (w *reportingWatcher) Watch(ctx context.Context, key string, opts ...clientv3.OpOption) clientv3.WatchChan {
	w.opened <- key
	if !w.deaf {
		return w.Watcher.Watch(ctx, key, opts...)
	}
	ch := make(chan clientv3.WatchResponse)
	go func() { <-ctx.Done(); close(ch) }()
	return ch
}

// endsEnv is an embedded etcd with a helper that creates and claims
// executions through a store, as a node does.
type endsEnv struct {
	emb    *Embedded
	prefix string
	seq    int
}

func (env *endsEnv) claim(t *testing.T, s *Store) *Claim {
	t.Helper()
	ctx := context.Background()
	env.seq++
	now := time.Now().UTC()
	e := &sbruntime.Execution{ID: fmt.Sprintf("end%03d", env.seq), Runbook: "r", Version: "v1",
		Status: sbruntime.StatusPending, Trigger: sbruntime.Trigger{Type: "manual"}, CreatedAt: now, UpdatedAt: now}
	if err := s.CreateExecution(ctx, e); err != nil {
		t.Fatal(err)
	}
	lease, err := s.cli.Grant(ctx, 60)
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.Claim(ctx, e.ID, "n1", lease.ID)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// store returns a store on its own client, whose watcher is w's (w.Watcher
// is set to the client's own).
func (env *endsEnv) store(t *testing.T, w *reportingWatcher) *Store {
	t.Helper()
	cli, err := DialEtcd(env.emb.Client.Endpoints(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	if w != nil {
		w.Watcher, cli.Watcher = cli.Watcher, w
	}
	s := NewStore(cli, env.prefix)
	t.Cleanup(s.Close)
	return s
}

func TestAwaitEndHearsALocalEndAtOnceAndARemoteOneByWatch(t *testing.T) {
	env := &endsEnv{emb: startSuiteEtcd(t), prefix: "/ends/"}
	for _, tc := range []struct {
		name string
		deaf bool // the waiter's watches deliver nothing
		here bool // the execution ends through the waiter's store
	}{
		{name: "ended through the waiter's store, its watch deaf", deaf: true, here: true},
		{name: "ended through another store", deaf: false, here: false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := &reportingWatcher{opened: make(chan string, 10), deaf: tc.deaf}
			waiter := env.store(t, w)
			ender := waiter
			if !tc.here {
				ender = env.store(t, nil)
			}
			c := env.claim(t, ender)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			type awaited struct {
				e   *sbruntime.Execution
				err error
			}
			got := make(chan awaited, 1)
			go func() {
				e, err := waiter.AwaitEnd(ctx, c.Execution.ID)
				got <- awaited{e, err}
			}()
			select {
			case key := <-w.opened: // past its reads: the end can only come now
				if key != waiter.k.execution(c.Execution.ID) {
					t.Fatalf("watched %q", key)
				}
			case <-ctx.Done():
				t.Fatal("AwaitEnd opened no watch")
			}
			if _, err := c.Finish(ctx, sbruntime.Outcome{Status: sbruntime.StatusCompleted, Result: json.RawMessage(`"ok"`)}); err != nil {
				t.Fatal(err)
			}
			a := <-got
			if a.err != nil || a.e == nil || a.e.Status != sbruntime.StatusCompleted || string(a.e.Result) != `"ok"` || a.e.EndedAt == nil {
				t.Fatalf("AwaitEnd = %+v, %v; want the completed record", a.e, a.err)
			}
		})
	}
}

func TestOnEndReportsEachEndThroughTheStoreOnce(t *testing.T) {
	env := &endsEnv{emb: startSuiteEtcd(t), prefix: "/onend/"}
	s := env.store(t, nil)
	var mu sync.Mutex
	var reported []string
	stop := s.OnEnd(func(e *sbruntime.Execution) {
		mu.Lock()
		defer mu.Unlock()
		reported = append(reported, e.ID+" "+string(e.Status))
	})
	ctx := context.Background()

	done := env.claim(t, s)
	if _, err := done.Finish(ctx, sbruntime.Outcome{Status: sbruntime.StatusFailed, Error: "boom"}); err != nil {
		t.Fatal(err)
	}
	parked := env.claim(t, s)
	if _, err := parked.Finish(ctx, sbruntime.Outcome{Status: sbruntime.StatusWaiting}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Cancel(ctx, parked.Execution.ID); err != nil { // unowned: ended by the cancel's txn
		t.Fatal(err)
	}
	if _, err := s.Cancel(ctx, parked.Execution.ID); err != nil { // ended already: nothing to report
		t.Fatal(err)
	}
	stop()
	after := env.claim(t, s)
	if _, err := after.Finish(ctx, sbruntime.Outcome{Status: sbruntime.StatusCompleted}); err != nil {
		t.Fatal(err)
	}

	want := []string{done.Execution.ID + " failed", parked.Execution.ID + " cancelled"}
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(reported) != fmt.Sprint(want) {
		t.Fatalf("reported %q, want %q (a park is no end; nothing after stop)", reported, want)
	}
}
