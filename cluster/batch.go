package cluster

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	sbruntime "github.com/starbook/starbook/runtime"
)

// Group commit: checkpoints of different executions that are ready at the same
// moment share one etcd txn. Each append keeps its own fence (the owner's
// create revision and an empty position), so one failed compare fails only
// its own append: the else branch reads every fence, the failures are told
// apart and the rest is committed again without them.

// appendReq is one fenced checkpoint waiting for a batch.
type appendReq struct {
	owner    string
	ownerRev int64
	key      string
	value    string
	done     chan error
}

// committer batches appends over a few concurrent txns.
type committer struct {
	cli        *clientv3.Client
	reqs       chan *appendReq
	maxAppends int // each append is 2 compares, 1 put, 2 else reads
	maxBytes   int
	once       sync.Once
	stop       chan struct{}
	wg         sync.WaitGroup
}

// errStoreClosed is the error of an append after Store.Close.
var errStoreClosed = errors.New("store closed")

// Defaults fit etcd's default --max-txn-ops (128) and 1.5 MiB request limit.
const (
	defaultBatchAppends = 64
	batchBytes          = 1 << 20
	committers          = 8
)

func newCommitter(cli *clientv3.Client, maxAppends int) *committer {
	if maxAppends <= 0 {
		maxAppends = defaultBatchAppends
	}
	return &committer{cli: cli, reqs: make(chan *appendReq, 1024), maxAppends: maxAppends, maxBytes: batchBytes,
		stop: make(chan struct{})}
}

// append commits r in some batch and returns its own outcome: nil,
// ErrNotOwner or ErrPositionTaken, or the txn's error.
func (c *committer) append(ctx context.Context, r *appendReq) error {
	c.once.Do(func() {
		c.wg.Add(committers)
		for range committers {
			go func() { defer c.wg.Done(); c.loop() }()
		}
	})
	r.done = make(chan error, 1)
	select {
	case c.reqs <- r:
	case <-c.stop:
		return errStoreClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-r.done:
		return err
	case <-c.stop:
		return errStoreClosed
	case <-ctx.Done():
		// The batch may still commit it; a replay will find it recorded.
		return ctx.Err()
	}
}

// loop takes the first waiting append and everything else already waiting,
// up to the batch limits, and commits them together. etcd refuses a txn that
// puts one key twice, so a second append to a key waits for the next batch.
func (c *committer) loop() {
	for {
		var first *appendReq
		select {
		case first = <-c.reqs:
		case <-c.stop:
			c.drainClosed()
			return
		}
		pending := []*appendReq{first}
	fill:
		for len(pending) < c.maxAppends {
			select {
			case r := <-c.reqs:
				pending = append(pending, r)
			default:
				break fill
			}
		}
		for len(pending) > 0 {
			var batch, later []*appendReq
			keys, size := map[string]bool{}, 0
			for _, r := range pending {
				if keys[r.key] || size+len(r.value) > c.maxBytes && len(batch) > 0 {
					later = append(later, r)
					continue
				}
				keys[r.key] = true
				size += len(r.value)
				batch = append(batch, r)
			}
			c.commit(batch)
			pending = later
		}
	}
}

func (c *committer) commit(batch []*appendReq) {
	for len(batch) > 0 {
		cmps := make([]clientv3.Cmp, 0, 2*len(batch))
		puts := make([]clientv3.Op, 0, len(batch))
		reads := make([]clientv3.Op, 0, 2*len(batch))
		for _, r := range batch {
			cmps = append(cmps,
				clientv3.Compare(clientv3.CreateRevision(r.owner), "=", r.ownerRev),
				clientv3.Compare(clientv3.CreateRevision(r.key), "=", 0))
			puts = append(puts, clientv3.OpPut(r.key, r.value))
			reads = append(reads, clientv3.OpGet(r.owner, clientv3.WithKeysOnly()), clientv3.OpGet(r.key, clientv3.WithKeysOnly()))
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		resp, err := c.cli.Txn(ctx).If(cmps...).Then(puts...).Else(reads...).Commit()
		cancel()
		if err != nil {
			for _, r := range batch {
				r.done <- err
			}
			return
		}
		if resp.Succeeded {
			for _, r := range batch {
				r.done <- nil
			}
			return
		}
		var retry []*appendReq
		for i, r := range batch {
			owner := resp.Responses[2*i].GetResponseRange().Kvs
			taken := len(resp.Responses[2*i+1].GetResponseRange().Kvs) > 0
			switch {
			case len(owner) == 0 || owner[0].CreateRevision != r.ownerRev:
				r.done <- fmt.Errorf("append %s: %w", r.key, sbruntime.ErrNotOwner)
			case taken:
				r.done <- fmt.Errorf("append %s: %w", r.key, sbruntime.ErrPositionTaken)
			default:
				retry = append(retry, r)
			}
		}
		if len(retry) == len(batch) {
			err := errors.New("batched append failed with every fence intact")
			for _, r := range batch {
				r.done <- err
			}
			return
		}
		batch = retry
	}
}

// close stops the committers once the appends they hold are committed; later
// appends fail with errStoreClosed.
func (c *committer) close() {
	c.once.Do(func() {}) // no committers start after close
	close(c.stop)
	c.wg.Wait()
}

// drainClosed fails appends that were queued when the store closed.
func (c *committer) drainClosed() {
	for {
		select {
		case r := <-c.reqs:
			r.done <- errStoreClosed
		default:
			return
		}
	}
}
