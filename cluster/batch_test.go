package cluster

import (
	"context"
	"errors"
	"testing"

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
