package cluster

import (
	"context"
	"fmt"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Read batching: fenced reads that are ready at the same moment (a storm's
// deliveries to many groups' runs) share one etcd txn, each a nested txn of
// its own with its fence as compares, so that a failed fence fails only its
// own read. While one batch is out, the next fills: a lone read goes alone.

// readReq is one fenced read waiting for a batch.
type readReq struct {
	fence []clientv3.Cmp
	reads []clientv3.Op
	done  chan readResult
}

// readResult is a read's share of a batch: whether its fence held, the
// results of its reads if it did, and the revision they were read at.
type readResult struct {
	ok    bool
	resps []*etcdserverpb.ResponseOp
	rev   int64
	err   error
}

// readBatcher sends fenced reads in batches, one batch at a time.
type readBatcher struct {
	cli    *clientv3.Client
	maxOps int // etcd's --max-txn-ops: a batch's reads plus its widest read's ops
	mu     sync.Mutex
	queue  []*readReq
	busy   bool // a goroutine is sending batches
}

// readBatchTimeout bounds one batch: a caller stops waiting on its own
// context, the batch on this.
const readBatchTimeout = 30 * time.Second

// read runs reads if fence holds, in some batch.
func (b *readBatcher) read(ctx context.Context, fence []clientv3.Cmp, reads []clientv3.Op) (readResult, error) {
	r := &readReq{fence: fence, reads: reads, done: make(chan readResult, 1)}
	b.mu.Lock()
	b.queue = append(b.queue, r)
	if !b.busy {
		b.busy = true
		go b.send()
	}
	b.mu.Unlock()
	select {
	case res := <-r.done:
		return res, res.err
	case <-ctx.Done():
		return readResult{}, ctx.Err()
	}
}

// send sends the queued reads in batches until none is left.
func (b *readBatcher) send() {
	for {
		b.mu.Lock()
		batch, rest := b.fill(b.queue)
		b.queue = rest
		if len(batch) == 0 {
			b.busy = false
			b.mu.Unlock()
			return
		}
		b.mu.Unlock()
		b.commit(batch)
	}
}

// fill takes from queue the reads that fit one txn: its own ops (one per
// read) plus its widest read's within maxOps (etcd allows a nested txn the
// ops its parent leaves).
func (b *readBatcher) fill(queue []*readReq) (batch, rest []*readReq) {
	widest := 0
	for i, r := range queue {
		w := max(widest, len(r.fence), len(r.reads))
		if i > 0 && i+1+w > b.maxOps {
			return queue[:i], queue[i:]
		}
		widest = w
	}
	return queue, nil
}

// commit sends batch as one txn, a lone read as a txn of its own.
func (b *readBatcher) commit(batch []*readReq) {
	ctx, cancel := context.WithTimeout(context.Background(), readBatchTimeout)
	defer cancel()
	if len(batch) == 1 {
		r := batch[0]
		resp, err := b.cli.Txn(ctx).If(r.fence...).Then(r.reads...).Commit()
		if err != nil {
			r.done <- readResult{err: err}
			return
		}
		r.done <- readResult{ok: resp.Succeeded, resps: resp.Responses, rev: resp.Header.Revision}
		return
	}
	ops := make([]clientv3.Op, len(batch))
	for i, r := range batch {
		ops[i] = clientv3.OpTxn(r.fence, r.reads, nil)
	}
	resp, err := b.cli.Txn(ctx).Then(ops...).Commit()
	if err == nil && len(resp.Responses) != len(batch) {
		err = fmt.Errorf("batched read: %d responses to %d reads", len(resp.Responses), len(batch))
	}
	for i, r := range batch {
		if err != nil {
			r.done <- readResult{err: err}
			continue
		}
		sub := resp.Responses[i].GetResponseTxn()
		r.done <- readResult{ok: sub.GetSucceeded(), resps: sub.GetResponses(), rev: resp.Header.Revision}
	}
}
