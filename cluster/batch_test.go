package cluster

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"

	sbruntime "github.com/starbook/starbook/runtime"
)

// TestBatchFailsOnlyTheRequestWhoseFenceFailed puts the checkpoints of a
// current owner and of one that lost its claim into one batch: the stale one
// fails with ErrNotOwner and writes nothing, the other is committed.
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
	tests := []struct {
		name string
		req  *appendReq
		want error
	}{
		{"live", &appendReq{owner: "/batch/owners/live", ownerRev: liveRev, key: "/batch/history/live/1", value: "live"}, nil},
		{"stale", &appendReq{owner: "/batch/owners/stale", ownerRev: staleRev, key: "/batch/history/stale/1", value: "stale"}, sbruntime.ErrNotOwner},
		{"taken", &appendReq{owner: "/batch/owners/live", ownerRev: liveRev, key: taken, value: "again"}, sbruntime.ErrPositionTaken},
		{"live again", &appendReq{owner: "/batch/owners/live", ownerRev: liveRev, key: "/batch/history/live/2", value: "live"}, nil},
	}
	c := newCommitter(cli, 0)
	reqs := make([]*txnReq, len(tests))
	for i, tt := range tests {
		reqs[i] = tt.req.txn()
		reqs[i].done = make(chan txnResult, 1)
	}
	c.commit(context.Background(), reqs) // one batch
	for i, tt := range tests {
		res := <-reqs[i].done
		if !errors.Is(res.err, tt.want) || (tt.want == nil) != (res.err == nil) {
			t.Errorf("%s: got %v, want %v", tt.name, res.err, tt.want)
		}
		resp, err := cli.Get(ctx, tt.req.key)
		if err != nil {
			t.Fatal(err)
		}
		written := len(resp.Kvs) == 1 && string(resp.Kvs[0].Value) == tt.req.value
		if written != (tt.want == nil) {
			t.Errorf("%s: written %v, want %v", tt.name, written, tt.want == nil)
		}
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
			key: fmt.Sprintf("/pipe/history/%d", i), value: "v"})
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
