package cluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"

	sbruntime "github.com/starbook/starbook/runtime"
)

// putIfAbsent is a request built from clientv3 compares and ops, as claims,
// creations and outcomes are: put key if it does not exist.
func putIfAbsent(key, value string) *txnReq {
	return &txnReq{
		cmps:  []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(key), "=", 0)},
		ops:   []clientv3.Op{clientv3.OpPut(key, value)},
		reads: []clientv3.Op{clientv3.OpGet(key, clientv3.WithKeysOnly())},
		check: func(r []*etcdserverpb.ResponseOp) error {
			if len(r[0].GetResponseRange().Kvs) > 0 {
				return sbruntime.ErrPositionTaken
			}
			return nil
		},
	}
}

// TestBatchFailsOnlyTheRequestWhoseFenceFailed puts the checkpoints of a
// current owner and of one that lost its claim into one batch, with requests
// built from clientv3 ops beside them: the stale one fails with ErrNotOwner
// and writes nothing, each one whose position is taken fails alone, and the
// others are committed.
func TestBatchFailsOnlyTheRequestWhoseFenceFailed(t *testing.T) {
	emb := startSuiteEtcd(t)
	ctx := context.Background()
	cli := emb.Client
	put := func(key string) int64 {
		resp, err := cli.Put(ctx, key, "n")
		if err != nil {
			t.Fatal(err)
		}
		return resp.Header.Revision
	}
	liveRev := put("/batch/owners/live")
	staleRev := put("/batch/owners/stale")
	put("/batch/owners/stale") // rewritten: still there, same create revision
	if _, err := cli.Delete(ctx, "/batch/owners/stale"); err != nil {
		t.Fatal(err)
	}
	put("/batch/owners/stale") // another owner now: a new create revision

	taken := "/batch/history/taken/1"
	put(taken)
	checkpoint := func(owner string, rev int64, key, value string) *txnReq {
		return (&appendReq{owner: owner, ownerRev: rev, key: key, value: []byte(value)}).txn()
	}
	const (
		live1, live2, stale1 = "/batch/history/live/1", "/batch/history/live/2", "/batch/history/stale/1"
		free, taken2         = "/batch/general/free", "/batch/general/taken"
	)
	put(taken2)
	tests := []struct {
		name       string
		req        *txnReq
		key, value string
		want       error
	}{
		{"live", checkpoint("/batch/owners/live", liveRev, live1, "live"), live1, "live", nil},
		{"stale", checkpoint("/batch/owners/stale", staleRev, stale1, "stale"), stale1, "stale", sbruntime.ErrNotOwner},
		{"general, free", putIfAbsent(free, "general"), free, "general", nil},
		{"taken", checkpoint("/batch/owners/live", liveRev, taken, "again"), taken, "again", sbruntime.ErrPositionTaken},
		{"general, taken", putIfAbsent(taken2, "again"), taken2, "again", sbruntime.ErrPositionTaken},
		{"live again", checkpoint("/batch/owners/live", liveRev, live2, "live"), live2, "live", nil},
	}
	c := newCommitter(cli, 0)
	sent := &recordingKV{KVClient: c.remote}
	c.remote = sent
	reqs := make([]*txnReq, len(tests))
	for i, tt := range tests {
		reqs[i] = tt.req
		reqs[i].done = make(chan txnResult, 1)
	}
	c.commit(context.Background(), reqs) // one batch
	for i, tt := range tests {
		res := <-reqs[i].done
		if !errors.Is(res.err, tt.want) || (tt.want == nil) != (res.err == nil) {
			t.Errorf("%s: got %v, want %v", tt.name, res.err, tt.want)
		}
		resp, err := cli.Get(ctx, tt.key)
		if err != nil {
			t.Fatal(err)
		}
		written := len(resp.Kvs) == 1 && string(resp.Kvs[0].Value) == tt.value
		if written != (tt.want == nil) {
			t.Errorf("%s: written %v, want %v", tt.name, written, tt.want == nil)
		}
	}
	// Sent flat first; after its failure (and the fences read), nested.
	if got := sent.shapes(); len(got) != 2 || got[0] != "flat" || got[1] != "nested" {
		t.Errorf("txns sent: %v, want flat, then nested", got)
	}
}

// recordingKV records the shape of each txn sent: flat (ops side by side),
// nested (one nested txn per request) or read (no writes).
type recordingKV struct {
	etcdserverpb.KVClient
	mu   sync.Mutex
	sent []string
}

func (r *recordingKV) Txn(ctx context.Context, in *etcdserverpb.TxnRequest, opts ...grpc.CallOption) (*etcdserverpb.TxnResponse, error) {
	shape := "read"
	for _, op := range in.Success {
		switch {
		case op.GetRequestTxn() != nil:
			shape = "nested"
		case op.GetRequestRange() == nil && shape == "read":
			shape = "flat"
		}
	}
	r.mu.Lock()
	r.sent = append(r.sent, shape)
	r.mu.Unlock()
	return r.KVClient.Txn(ctx, in, opts...)
}

func (r *recordingKV) shapes() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.sent)
}

// A flat batch answers each request with the results of its own ops.
func TestFlatBatchAnswersEachRequestWithItsOwnResults(t *testing.T) {
	emb := startSuiteEtcd(t)
	ctx := context.Background()
	c := newCommitter(emb.Client, 0)
	sent := &recordingKV{KVClient: c.remote}
	c.remote = sent
	owner, err := emb.Client.Put(ctx, "/flat/owner", "n")
	if err != nil {
		t.Fatal(err)
	}
	var reqs []*txnReq
	for i := range 4 {
		key := fmt.Sprintf("/flat/general/%d", i)
		r := putIfAbsent(key, fmt.Sprint(i))
		r.ops = append(r.ops, clientv3.OpGet(key))
		reqs = append(reqs, r, (&appendReq{owner: "/flat/owner", ownerRev: owner.Header.Revision,
			key: fmt.Sprintf("/flat/history/%d", i), value: []byte("v")}).txn())
	}
	for _, r := range reqs {
		r.done = make(chan txnResult, 1)
	}
	c.commit(ctx, reqs)
	for i, r := range reqs {
		res := <-r.done
		_, ops, _ := r.counts()
		if res.err != nil || len(res.resps) != ops {
			t.Fatalf("request %d: %d results, %v; want %d", i, len(res.resps), res.err, ops)
		}
		if i%2 == 1 {
			continue // a checkpoint: one put
		}
		kvs := res.resps[1].GetResponseRange().Kvs
		if want := fmt.Sprint(i / 2); len(kvs) != 1 || string(kvs[0].Value) != want {
			t.Errorf("request %d read %v, want its own key's %q", i, kvs, want)
		}
	}
	if got := sent.shapes(); len(got) != 1 || got[0] != "flat" {
		t.Errorf("txns sent: %v, want one flat", got)
	}
}

// heldKV holds every txn until release is closed, and reports each one sent.
type heldKV struct {
	etcdserverpb.KVClient
	sent    chan struct{}
	release chan struct{}
}

func (h *heldKV) Txn(ctx context.Context, in *etcdserverpb.TxnRequest, opts ...grpc.CallOption) (*etcdserverpb.TxnResponse, error) {
	h.sent <- struct{}{}
	<-h.release
	return h.KVClient.Txn(ctx, in, opts...)
}

// With few writers, a second batch does not wait for the one committing: it
// starts once it holds its share of the writers waiting (with a fixed
// threshold of 16 it waited, and 20 executions in flight ran one batch at a
// time).
func TestCommitterPipelinesWithFewWriters(t *testing.T) {
	emb := startSuiteEtcd(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c := newCommitter(emb.Client, 0)
	defer c.close()
	held := &heldKV{KVClient: c.remote, sent: make(chan struct{}, 16), release: make(chan struct{})}
	c.remote = held
	resp, err := emb.Client.Put(ctx, "/pipe/owner", "n")
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 6)
	appendAt := func(i int) {
		errs <- c.append(ctx, &appendReq{owner: "/pipe/owner", ownerRev: resp.Header.Revision,
			key: fmt.Sprintf("/pipe/history/%d", i), value: []byte("v")})
	}
	go appendAt(0)
	<-held.sent // the first commits alone, and is held
	for i := 1; i < 6; i++ {
		go appendAt(i)
	}
	select {
	case <-held.sent:
		close(held.release)
	case <-ctx.Done():
		close(held.release) // let the held batch go, so that close returns
		t.Fatal("no second batch was sent while the first committed")
	}
	for range 6 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	got, err := emb.Client.Get(ctx, "/pipe/history/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	if got.Count != 6 {
		t.Fatalf("%d checkpoints recorded, want 6", got.Count)
	}
}
