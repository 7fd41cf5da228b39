package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	sbruntime "github.com/starbook/starbook/runtime"
)

// signalWait is the wait wait_for_signal(name) registers at pos.
func signalWait(id, pos, name string) *sbruntime.Wait {
	return &sbruntime.Wait{Execution: id, Position: pos, Kind: sbruntime.KindSignal, Name: name,
		Since: time.Now().UTC()}
}

// signalData returns the data of a recorded signal result.
func signalData(t *testing.T, result json.RawMessage) string {
	t.Helper()
	var r struct {
		Data json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(result, &r); err != nil {
		t.Fatalf("decode signal result %s: %v", result, err)
	}
	return string(r.Data)
}

// delivered returns the data of the signals recorded in the history by
// position, and of those kept for name, in order.
func (f *fencingFixture) delivered(t *testing.T, name string) (recorded map[string]string, kept []string) {
	t.Helper()
	recorded = map[string]string{}
	_, events, err := f.s.Execution(f.ctx, f.id)
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range events {
		recorded[ev.Position] = signalData(t, ev.Result)
	}
	resp, err := f.s.cli.Get(f.ctx, f.s.k.keptSignals(f.id, name), clientv3.WithPrefix(),
		clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend))
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range resp.Kvs {
		kept = append(kept, signalData(t, kv.Value))
	}
	return recorded, kept
}

// TestSignalDelivery: a signal is kept until a wait for it is registered,
// and resolves a wait registered before it; branches waiting for one name
// take its signals in position order.
func TestSignalDelivery(t *testing.T) {
	emb := startSuiteEtcd(t)
	type step struct {
		wait   string // register a wait for "go" at this position, or
		signal string // send "go" with this data
	}
	tests := []struct {
		name     string
		steps    []step
		recorded map[string]string
		kept     []string
		waiting  []string // positions still waiting
	}{
		{name: "sent before the wait is consumed by it",
			steps:    []step{{signal: "1"}, {signal: "2"}, {wait: "1"}},
			recorded: map[string]string{"1": "1"}, kept: []string{"2"}},
		{name: "sent to a registered wait resolves it",
			steps:    []step{{wait: "1"}, {signal: "1"}, {signal: "2"}},
			recorded: map[string]string{"1": "1"}, kept: []string{"2"}},
		{name: "branches waiting for one name take it in position order",
			steps:    []step{{wait: "2/1/1"}, {wait: "2/0/1"}, {signal: "1"}},
			recorded: map[string]string{"2/0/1": "1"}, waiting: []string{"2/1/1"}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFencingFixture(t, emb, fmt.Sprintf("/signals/%d/", i))
			c := f.claim(t, f.s, "a", f.grant(t))
			for _, st := range tt.steps {
				if st.wait != "" {
					if _, err := c.Wait(f.ctx, signalWait(f.id, st.wait, "go")); err != nil {
						t.Fatal(err)
					}
					continue
				}
				if err := f.s.Signal(f.ctx, f.id, "go", json.RawMessage(st.signal), "test"); err != nil {
					t.Fatal(err)
				}
			}
			recorded, kept := f.delivered(t, "go")
			if fmt.Sprint(recorded) != fmt.Sprint(tt.recorded) || !slices.Equal(kept, tt.kept) {
				t.Errorf("recorded %v, kept %v; want recorded %v, kept %v", recorded, kept, tt.recorded, tt.kept)
			}
			var waiting []string
			h, err := newEtcdBackend(f.s).History(f.ctx, f.id)
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range h.Waits {
				waiting = append(waiting, w.Position)
			}
			if !slices.Equal(waiting, tt.waiting) {
				t.Errorf("waits at %v, want %v", waiting, tt.waiting)
			}
		})
	}
}

// TestSignalRacesWaitRegistration: signals sent while the execution
// registers its wait are each either recorded at the wait or kept, none lost
// and none recorded twice, whichever of the two commits first.
func TestSignalRacesWaitRegistration(t *testing.T) {
	emb := startSuiteEtcd(t)
	const rounds, senders = 20, 8
	for round := range rounds {
		f := newFencingFixture(t, emb, fmt.Sprintf("/signalrace/%d/", round))
		c := f.claim(t, f.s, "a", f.grant(t))
		var wg sync.WaitGroup
		start := make(chan struct{})
		errs := make(chan error, senders+1)
		for i := range senders {
			wg.Go(func() {
				<-start
				errs <- f.s.Signal(f.ctx, f.id, "go", json.RawMessage(strconv.Itoa(i)), "test")
			})
		}
		var consumed *sbruntime.Event
		wg.Go(func() {
			<-start
			ev, err := c.Wait(f.ctx, signalWait(f.id, "1", "go"))
			consumed = ev
			errs <- err
		})
		close(start)
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		recorded, kept := f.delivered(t, "go")
		if len(recorded) != 1 {
			t.Fatalf("round %d: recorded %v, want one signal at position 1", round, recorded)
		}
		if consumed != nil && signalData(t, consumed.Result) != recorded["1"] {
			t.Errorf("round %d: the wait consumed %s, the history holds %s", round, consumed.Result, recorded["1"])
		}
		all := append([]string{recorded["1"]}, kept...)
		slices.Sort(all)
		var want []string
		for i := range senders {
			want = append(want, strconv.Itoa(i))
		}
		if !slices.Equal(all, want) {
			t.Errorf("round %d: recorded %v and kept %v, want each of %v once", round, recorded, kept, want)
		}
		if n := len(f.get(t, f.s.k.wait(f.id, "1")).Kvs); n != 0 {
			t.Errorf("round %d: the wait is still pending after its signal was recorded", round)
		}
	}
}

// beforeCommit is a gRPC client interceptor that calls before, once, ahead
// of the first txn writing a key under prefix: it makes one interleaving of
// two writers happen every time, whichever way the txn is sent (clientv3's
// KV or the store's committer).
type beforeCommit struct {
	prefix string
	once   sync.Once
	before func()
}

func (b *beforeCommit) intercept(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	if txn, ok := req.(*etcdserverpb.TxnRequest); ok && b.writes(txn) {
		b.once.Do(b.before)
	}
	return invoker(ctx, method, req, reply, cc, opts...)
}

// writes reports whether txn puts a key under b.prefix, nested txns included.
func (b *beforeCommit) writes(txn *etcdserverpb.TxnRequest) bool {
	for _, op := range append(append([]*etcdserverpb.RequestOp(nil), txn.Success...), txn.Failure...) {
		if put := op.GetRequestPut(); put != nil && strings.HasPrefix(string(put.Key), b.prefix) {
			return true
		}
		if nested := op.GetRequestTxn(); nested != nil && b.writes(nested) {
			return true
		}
	}
	return false
}

// TestSignalInterleavings makes each writer of a signal and its wait commit
// between the other's read and its write: the signal is recorded at the wait
// either way, never kept next to a pending wait for it.
func TestSignalInterleavings(t *testing.T) {
	emb := startSuiteEtcd(t)
	tests := []struct {
		name string
		// hooked says whose txns are delayed: "signal" (the wait is
		// registered between the signal's read and its keep) or "wait" (the
		// signal is sent between the wait's check and its registration).
		hooked string
	}{
		{name: "wait registered while the signal is being kept", hooked: "signal"},
		{name: "signal kept while the wait is being registered", hooked: "wait"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFencingFixture(t, emb, fmt.Sprintf("/interleave/%d/", i))
			kv := &beforeCommit{prefix: f.s.k.signals(f.id)}
			if tt.hooked == "wait" {
				kv.prefix = f.s.k.waits(f.id)
			}
			cli, err := clientv3.New(clientv3.Config{Endpoints: emb.Client.Endpoints(), DialTimeout: 5 * time.Second,
				Logger: zap.NewNop(), DialOptions: []grpc.DialOption{grpc.WithChainUnaryInterceptor(retryReadOnlyTxn, kv.intercept)}})
			if err != nil {
				t.Fatal(err)
			}
			defer cli.Close()
			hooked := NewStore(cli, f.prefix)
			defer hooked.Close()
			var err2 error
			var consumed *sbruntime.Event
			switch tt.hooked {
			case "signal":
				c := f.claim(t, f.s, "a", f.grant(t))
				kv.before = func() { consumed, err2 = c.Wait(f.ctx, signalWait(f.id, "1", "go")) }
				err = hooked.Signal(f.ctx, f.id, "go", json.RawMessage("1"), "test")
			case "wait":
				c := f.claim(t, hooked, "a", f.grant(t))
				kv.before = func() { err2 = f.s.Signal(f.ctx, f.id, "go", json.RawMessage("1"), "test") }
				consumed, err = c.Wait(f.ctx, signalWait(f.id, "1", "go"))
			}
			if err != nil || err2 != nil {
				t.Fatal(err, err2)
			}
			recorded, kept := f.delivered(t, "go")
			if len(recorded) != 1 || recorded["1"] != "1" || len(kept) > 0 {
				t.Errorf("recorded %v, kept %v; want the signal recorded at 1 and none kept", recorded, kept)
			}
			if n := len(f.get(t, f.s.k.wait(f.id, "1")).Kvs); n != 0 {
				t.Error("the wait is still pending after its signal was recorded")
			}
			if tt.hooked == "wait" && consumed == nil {
				t.Error("registering the wait did not consume the kept signal")
			}
		})
	}
}

// TestKeptSignalsBound: an execution holds at most maxKeptSignals unconsumed
// signals of one name, counted as the store estimates them (keptcount.go):
// the one past the bound is refused, nothing of it kept; a signal consumed
// makes room again; and a second node sending meanwhile overshoots the bound
// by at most its recountEvery.
func TestKeptSignalsBound(t *testing.T) {
	emb := startSuiteEtcd(t)
	f := newFencingFixture(t, emb, "/bound/")
	other := NewStore(emb.Client, f.prefix)
	defer other.Close()
	send := func(s *Store, data int) error {
		return s.Signal(f.ctx, f.id, "go", json.RawMessage(strconv.Itoa(data)), "test")
	}
	for i := range maxKeptSignals {
		if err := send(f.s, i); err != nil {
			t.Fatalf("signal %d: %v", i, err)
		}
	}
	err := send(f.s, maxKeptSignals)
	if err == nil || !strings.Contains(err.Error(), "already holds 100 unconsumed go signals") {
		t.Fatalf("signal past the bound: %v, want it refused", err)
	}
	if _, kept := f.delivered(t, "go"); len(kept) != maxKeptSignals || kept[0] != "0" || kept[len(kept)-1] != "99" {
		t.Fatalf("kept %d signals (%v...), want 0-99", len(kept), kept[:min(3, len(kept))])
	}
	// A wait consumes the oldest: the next signal fits.
	c := f.claim(t, f.s, "a", f.grant(t))
	ev, err := c.Wait(f.ctx, signalWait(f.id, "1", "go"))
	if err != nil || ev == nil || signalData(t, ev.Result) != "0" {
		t.Fatalf("wait consumed %v (%v), want signal 0", ev, err)
	}
	if err := send(f.s, 100); err != nil {
		t.Fatalf("signal after one was consumed: %v", err)
	}
	if err := send(f.s, 101); err == nil {
		t.Fatal("signal past the bound again was kept")
	}
	// Another node, counting for itself, refuses past the bound too.
	if err := send(other, 102); err == nil {
		t.Fatal("the other node kept a signal past the bound")
	}
	if _, kept := f.delivered(t, "go"); len(kept) != maxKeptSignals {
		t.Errorf("kept %d signals, want %d", len(kept), maxKeptSignals)
	}
}

// TestCompareHolds checks the committer's reading of a failed fence against
// etcd's own: for each compare, compareHolds on a read of its keys says what
// a txn with that compare decides.
func TestCompareHolds(t *testing.T) {
	emb := startSuiteEtcd(t)
	ctx := context.Background()
	p := "/compare/"
	if _, err := emb.Client.Put(ctx, p+"a", "x"); err != nil {
		t.Fatal(err)
	}
	put, err := emb.Client.Put(ctx, p+"r/1", "1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := emb.Client.Put(ctx, p+"r/2", "2"); err != nil {
		t.Fatal(err)
	}
	rev := put.Header.Revision
	tests := []struct {
		name string
		cmp  clientv3.Cmp
	}{
		{"missing key has create revision 0", clientv3.Compare(clientv3.CreateRevision(p+"none"), "=", 0)},
		{"existing key has not", clientv3.Compare(clientv3.CreateRevision(p+"a"), "=", 0)},
		{"value equal", clientv3.Compare(clientv3.Value(p+"a"), "=", "x")},
		{"value differs", clientv3.Compare(clientv3.Value(p+"a"), "!=", "x")},
		{"missing key fails a value compare", clientv3.Compare(clientv3.Value(p+"none"), "=", "")},
		{"version", clientv3.Compare(clientv3.Version(p+"a"), ">", 0)},
		{"lease", clientv3.Compare(clientv3.LeaseValue(p+"a"), "=", clientv3.NoLease)},
		{"whole range below a revision", clientv3.Compare(clientv3.ModRevision(p+"r/"), "<", rev+1).WithPrefix()},
		{"one key of the range above it", clientv3.Compare(clientv3.ModRevision(p+"r/"), "<", rev).WithPrefix()},
		{"empty range compares as revision 0", clientv3.Compare(clientv3.ModRevision(p+"empty/"), "=", 0).WithPrefix()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			txn, err := emb.Client.Txn(ctx).If(tt.cmp).Commit()
			if err != nil {
				t.Fatal(err)
			}
			req := fencedReq([]clientv3.Cmp{tt.cmp}, nil)
			reads, check := req.diagnosis()
			resp, err := emb.Client.Txn(ctx).Then(reads...).Commit()
			if err != nil {
				t.Fatal(err)
			}
			got := check(resp.Responses) == nil
			if got != txn.Succeeded {
				t.Errorf("compareHolds says %v, etcd %v", got, txn.Succeeded)
			}
		})
	}
}
