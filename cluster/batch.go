package cluster

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	sbruntime "github.com/starbook/starbook/runtime"
)

// Group commit: fenced writes of different executions that are ready at the
// same moment (checkpoints, claims, creations, outcomes) share one etcd txn.
// A batch is first sent flat, all of its requests' compares and ops side by
// side: fences nearly always hold, and etcd checks and applies a flat txn
// for less than one nested txn per request. If a compare fails, the failed
// requests are told apart by their diagnostic reads and fail alone; their
// neighbours go again, each a nested txn with its own compares, so that a
// failed compare fails only its own request. Claims, which nodes race for,
// always go nested, their reads in their else branch.

// txnReq is one fenced write waiting for a batch.
type txnReq struct {
	// pbCmps and pbOps are compares and ops built as protobuf (see
	// pbops.go), cmps and ops those built by clientv3, which copies and
	// converts each: the hot path's (checkpoints, creations, outcomes) are
	// built. The built come first.
	pbCmps []*etcdserverpb.Compare
	cmps   []clientv3.Cmp
	pbOps  []*etcdserverpb.RequestOp // run when its compares hold
	ops    []clientv3.Op
	reads  []clientv3.Op // run when one of its compares failed, to find out which
	// diagnostics, when set, builds reads and check on first need (nreads
	// of them): nearly every request's compares hold, and it never needs
	// them.
	diagnostics func() ([]clientv3.Op, func([]*etcdserverpb.ResponseOp) error)
	nreads      int
	// contested requests (claims) fail often: their reads go in their own
	// txn's else branch, so they are told apart without a second round trip.
	contested bool
	// check looks at the results of reads and returns the request's error if
	// one of its own compares failed, nil if they all held.
	check func(reads []*etcdserverpb.ResponseOp) error
	done  chan txnResult
	w     *writeSet // what ops write, once asked (see writes)
}

// writeSet is what a request's ops write: keys, prefixes and bytes.
type writeSet struct {
	keys, prefixes []string
	size           int
}

// txnResult is a request's share of a committed batch.
type txnResult struct {
	resps []*etcdserverpb.ResponseOp // results of its ops
	rev   int64                      // the txn's revision
	err   error
}

// appendReq is one fenced checkpoint: put key if the position is empty and
// owner still has the create revision ownerRev.
type appendReq struct {
	owner    string
	ownerRev int64
	key      string
	value    []byte
}

// committer batches fenced writes over a few concurrent txns.
type committer struct {
	cli      *clientv3.Client
	remote   etcdserverpb.KVClient // cli's, with its retries
	reqs     chan *txnReq
	maxOps   int // per list (compares, ops, reads): etcd's --max-txn-ops
	maxBytes int
	once     sync.Once
	busy     chan struct{} // holds a token while a batch commits
	inflight atomic.Int32  // batches committing
	writers  atomic.Int32  // callers waiting for their request to commit
	freed    chan struct{} // a batch finished committing
	// nestedFor is how many more batches go nested after a flat one failed:
	// while fences fail (a node lost its claims), a flat batch would cost
	// its neighbours two more round trips each time.
	nestedFor atomic.Int32
	stop      chan struct{}
	wg        sync.WaitGroup
}

// errStoreClosed is the error of a write after Store.Close.
var errStoreClosed = errors.New("store closed")

// Defaults fit etcd's default --max-txn-ops (128) and 1.5 MiB request limit.
const (
	defaultMaxTxnOps = 128
	batchBytes       = 1 << 20
)

// committers is how many batches may commit at once. While one commits, the
// next fills, so batches grow with the load and each write costs least; a
// second one starts only once it holds pipelineShare of the writers waiting
// on the committer, so that etcd can sync one batch while it applies the
// other, and neither is a handful of requests paying a txn's fixed cost.
// Measured on 2 cores (steps per second over the floor at the same number
// of writers): one committer 0.83-0.88 at 50 executions in flight; two, the
// second from a fixed 16 requests, 0.68 at 20, 0.96 at 50 and 1.04 at 100;
// from 2/5 of the waiting writers, 0.83, 0.98 and 1.05.
const committers = 2

// pipelineShare is the share of the waiting writers that a batch holds
// before it starts while another commits.
const pipelineShare = 0.4

// pipelineMin is the fewest requests a batch starts with while another
// commits.
func (c *committer) pipelineMin() int {
	return max(1, int(float64(c.writers.Load())*pipelineShare))
}

func newCommitter(cli *clientv3.Client, maxOps int) *committer {
	if maxOps <= 0 {
		maxOps = defaultMaxTxnOps
	}
	return &committer{cli: cli, remote: clientv3.RetryKVClient(cli), reqs: make(chan *txnReq, 1024), maxOps: maxOps, maxBytes: batchBytes,
		busy: make(chan struct{}, committers), freed: make(chan struct{}, 1), stop: make(chan struct{})}
}

// append commits a checkpoint and returns nil, ErrNotOwner or
// ErrPositionTaken, or the txn's error.
func (c *committer) append(ctx context.Context, a *appendReq) error {
	_, err := c.do(ctx, a.txn())
	return err
}

// txn is the fenced write of a checkpoint: owner's create revision is
// ownerRev, key's is 0 (empty), then put.
func (a *appendReq) txn() *txnReq {
	key := []byte(a.key) // shared by the compare and the put: proto only reads it
	return &txnReq{
		pbCmps:      []*etcdserverpb.Compare{createRevision([]byte(a.owner), a.ownerRev), createRevision(key, 0)},
		pbOps:       []*etcdserverpb.RequestOp{putOp(key, a.value)},
		w:           &writeSet{keys: []string{a.key}, size: len(a.key) + len(a.value)},
		diagnostics: a.diagnostics,
		nreads:      2,
	}
}

// diagnostics tells a failed checkpoint's two fences apart.
func (a *appendReq) diagnostics() ([]clientv3.Op, func([]*etcdserverpb.ResponseOp) error) {
	reads := []clientv3.Op{clientv3.OpGet(a.owner, clientv3.WithKeysOnly()), clientv3.OpGet(a.key, clientv3.WithKeysOnly())}
	return reads, func(r []*etcdserverpb.ResponseOp) error {
		if owner := r[0].GetResponseRange().Kvs; len(owner) == 0 || owner[0].CreateRevision != a.ownerRev {
			return fmt.Errorf("append %s: %w", a.key, sbruntime.ErrNotOwner)
		}
		if len(r[1].GetResponseRange().Kvs) > 0 {
			return fmt.Errorf("append %s: %w", a.key, sbruntime.ErrPositionTaken)
		}
		return nil
	}
}

// counts returns how many compares, ops and diagnostic reads r carries.
func (r *txnReq) counts() (cmps, ops, reads int) {
	cmps, ops, reads = len(r.pbCmps)+len(r.cmps), len(r.pbOps)+len(r.ops), len(r.reads)
	if r.diagnostics != nil {
		reads = r.nreads
	}
	return cmps, ops, reads
}

// compares returns all of r's compares as sent.
func (r *txnReq) compares() []*etcdserverpb.Compare {
	if len(r.cmps) == 0 {
		return r.pbCmps // shared: sending only reads it
	}
	return r.appendCompares(make([]*etcdserverpb.Compare, 0, len(r.pbCmps)+len(r.cmps)))
}

// appendCompares appends all of r's compares, as sent, to dst.
func (r *txnReq) appendCompares(dst []*etcdserverpb.Compare) []*etcdserverpb.Compare {
	dst = append(dst, r.pbCmps...)
	for i := range r.cmps {
		dst = append(dst, r.cmps[i].GetCompare())
	}
	return dst
}

// requestOps returns all of r's ops as sent, given its clientv3 ops as
// clientv3 converted them.
func (r *txnReq) requestOps(converted []*etcdserverpb.RequestOp) []*etcdserverpb.RequestOp {
	switch {
	case len(converted) == 0:
		return r.pbOps // shared: sending only reads it
	case len(r.pbOps) == 0:
		return converted
	}
	return append(append(make([]*etcdserverpb.RequestOp, 0, len(r.pbOps)+len(converted)), r.pbOps...), converted...)
}

// diagnosis returns r's diagnostic reads and their check, built on first use.
func (r *txnReq) diagnosis() ([]clientv3.Op, func([]*etcdserverpb.ResponseOp) error) {
	if r.diagnostics != nil {
		r.reads, r.check = r.diagnostics()
		r.diagnostics = nil
	}
	return r.reads, r.check
}

// do commits r in some batch and returns its share of the result.
func (c *committer) do(ctx context.Context, r *txnReq) (txnResult, error) {
	c.once.Do(func() {
		c.wg.Add(committers)
		for range committers {
			go func() { defer c.wg.Done(); c.loop() }()
		}
	})
	r.done = make(chan txnResult, 1)
	c.writers.Add(1)
	defer c.writers.Add(-1)
	if c.inline(ctx, r) {
		res := <-r.done
		return res, res.err
	}
	select {
	case c.reqs <- r:
	case <-c.stop:
		return txnResult{}, errStoreClosed
	case <-ctx.Done():
		return txnResult{}, ctx.Err()
	}
	select {
	case res := <-r.done:
		return res, res.err
	case <-c.stop:
		return txnResult{}, errStoreClosed
	case <-ctx.Done():
		// The batch may still commit it; whoever runs the execution next
		// reads what was recorded.
		return txnResult{}, ctx.Err()
	}
}

// inline commits r in the caller's goroutine when no batch is committing and
// no request waits: a lone writer (a sequential run) saves the hand-offs to
// and from a committer goroutine.
func (c *committer) inline(ctx context.Context, r *txnReq) bool {
	select {
	case c.busy <- struct{}{}:
	default:
		return false
	}
	defer func() { <-c.busy }()
	select {
	case <-c.stop:
		return false
	default:
	}
	if len(c.reqs) > 0 || ctx.Err() != nil || c.inflight.Load() > 0 {
		return false // the loop takes the waiting ones and r in order
	}
	c.inflight.Add(1)
	c.commit(ctx, []*txnReq{r}) // the caller's ctx: it stops waiting as it would for a batch
	c.done()
	return true
}

// loop takes the first waiting request and everything else already waiting,
// and commits them in batches within etcd's limits. etcd refuses a txn that
// writes one key twice, so a request whose writes overlap the batch's waits
// for the next one.
func (c *committer) loop() {
	for {
		var first *txnReq
		select {
		case first = <-c.reqs:
		case <-c.stop:
			c.drainClosed()
			return
		}
		pending := []*txnReq{first}
		// While a batch commits, the next one starts only once it is worth
		// a txn of its own (pipelineMin); else it waits and grows.
	fill:
		for len(pending) < c.maxOps {
			select {
			case r := <-c.reqs:
				pending = append(pending, r)
				continue
			default:
			}
			if c.inflight.Load() == 0 || len(pending) >= c.pipelineMin() {
				break fill
			}
			select {
			case r := <-c.reqs:
				pending = append(pending, r)
			case <-c.freed:
			case <-c.stop:
				c.drainClosed(pending...)
				return
			}
		}
		select {
		case c.busy <- struct{}{}:
		case <-c.stop:
			c.drainClosed(pending...)
			return
		}
		c.inflight.Add(1)
		for len(pending) > 0 {
			var b batch
			var later []*txnReq
			for _, r := range pending {
				if !b.fits(r, c.maxOps, c.maxBytes) {
					later = append(later, r)
					continue
				}
				b.add(r)
			}
			c.commit(context.Background(), b.reqs)
			pending = later
		}
		<-c.busy
		c.done()
	}
}

// done marks a batch committed and wakes a committer waiting to pipeline.
func (c *committer) done() {
	c.inflight.Add(-1)
	select {
	case c.freed <- struct{}{}:
	default:
	}
}

// batch is a set of requests that fit one txn.
type batch struct {
	reqs             []*txnReq
	cmps, ops, reads int
	widest           int // most compares, ops or reads of one request
	bytes            int
	keys             map[string]bool
	prefixes         []string
}

// writes returns what r's ops write, worked out on first use: a request is
// weighed for a batch, then added to it.
func writes(r *txnReq) *writeSet {
	if r.w != nil {
		return r.w
	}
	w := &writeSet{}
	for _, op := range r.pbOps {
		if put := op.GetRequestPut(); put != nil {
			w.keys = append(w.keys, string(put.Key))
			w.size += len(put.Key) + len(put.Value)
		} else if del := op.GetRequestDeleteRange(); del != nil {
			if len(del.RangeEnd) > 0 {
				w.prefixes = append(w.prefixes, string(del.Key))
			} else {
				w.keys = append(w.keys, string(del.Key))
			}
			w.size += len(del.Key)
		}
	}
	w.addOps(r.ops)
	r.w = w
	return w
}

// addOps adds what ops write to w, the ops of nested txns (such as an end's
// conditional group release) included.
func (w *writeSet) addOps(ops []clientv3.Op) {
	for _, op := range ops {
		switch {
		case op.IsPut():
			w.keys = append(w.keys, string(op.KeyBytes()))
			w.size += len(op.KeyBytes()) + len(op.ValueBytes())
		case op.IsDelete():
			if end := op.RangeBytes(); len(end) > 0 {
				w.prefixes = append(w.prefixes, string(op.KeyBytes()))
			} else {
				w.keys = append(w.keys, string(op.KeyBytes()))
			}
			w.size += len(op.KeyBytes())
		case op.IsTxn():
			_, then, orElse := op.Txn()
			w.addOps(then)
			w.addOps(orElse)
		}
	}
}

// fits reports whether r can join the batch: within the op and size limits,
// and writing no key the batch writes. The first request always fits.
func (b *batch) fits(r *txnReq, maxOps, maxBytes int) bool {
	if len(b.reqs) == 0 {
		return true
	}
	w := writes(r)
	cmps, ops, reads := r.counts()
	if b.cmps+cmps > maxOps || b.ops+ops > maxOps || b.reads+reads > maxOps || b.bytes+w.size > maxBytes {
		return false
	}
	// etcd allows a nested txn the ops its parent leaves: the batch's own
	// ops (one per request) plus its widest request's.
	if len(b.reqs)+1+max(b.widest, width(r)) > maxOps {
		return false
	}
	for _, k := range w.keys {
		if b.keys[k] {
			return false
		}
		for _, p := range b.prefixes {
			if strings.HasPrefix(k, p) {
				return false
			}
		}
	}
	for _, p := range w.prefixes {
		for k := range b.keys {
			if strings.HasPrefix(k, p) {
				return false
			}
		}
		for _, q := range b.prefixes {
			if strings.HasPrefix(p, q) || strings.HasPrefix(q, p) {
				return false
			}
		}
	}
	return true
}

func (b *batch) add(r *txnReq) {
	w := writes(r)
	if b.keys == nil {
		b.keys = map[string]bool{}
	}
	for _, k := range w.keys {
		b.keys[k] = true
	}
	b.prefixes = append(b.prefixes, w.prefixes...)
	b.reqs = append(b.reqs, r)
	cmps, ops, reads := r.counts()
	b.cmps, b.ops, b.reads, b.bytes = b.cmps+cmps, b.ops+ops, b.reads+reads, b.bytes+w.size
	b.widest = max(b.widest, width(r))
}

func width(r *txnReq) int { return max(r.counts()) }

// commit commits reqs in one txn, each as a nested txn of its own. The
// requests whose compares failed are diagnosed with one read-only txn; the
// reads come after the failed attempt, so a request can look fine by then (a
// claim released meanwhile): it is committed again, its compares checked
// again, and the rounds are bounded.
func (c *committer) commit(parent context.Context, reqs []*txnReq) {
	for round := 0; len(reqs) > 0; round++ {
		ctx, cancel := context.WithTimeout(parent, 30*time.Second)
		failed, err := c.commitOnce(ctx, reqs, round == 0)
		reqs = failed
		if err == nil && len(failed) > 0 {
			reqs, err = c.diagnose(ctx, failed, round)
		}
		cancel()
		if err != nil {
			for _, r := range reqs {
				r.done <- txnResult{err: err}
			}
			return
		}
	}
}

// commitOnce sends reqs in one txn, answers those that committed or that
// failed with their fence reads at hand, and returns the other failed ones.
// A lone request is sent as a txn of its own, not nested. With flat set and
// no contested request, the txn is all of their compares and ops side by
// side: etcd checks and applies a nested txn at a cost of its own (an
// interval tree, a response), and fences nearly always hold. If one fails,
// they all fail; the failed ones are told apart and the others go again,
// nested.
func (c *committer) commitOnce(ctx context.Context, reqs []*txnReq, flat bool) (failed []*txnReq, err error) {
	for _, r := range reqs {
		flat = flat && !r.contested
	}
	if flat && len(reqs) > 1 && c.nestedFor.Load() <= 0 {
		failed, err := c.commitFlat(ctx, reqs)
		if err == nil && len(failed) > 0 {
			c.nestedFor.Store(nestedAfterFailure)
		}
		return failed, err
	}
	if len(reqs) > 1 && c.nestedFor.Load() > 0 {
		c.nestedFor.Add(-1) // only down to 0: it must not wrap
	}
	orElse := func(r *txnReq) []clientv3.Op {
		if r.contested {
			reads, _ := r.diagnosis()
			return reads
		}
		return nil
	}
	var subs []*etcdserverpb.TxnResponse
	var rev int64 // the txn's revision
	if len(reqs) == 1 {
		r := reqs[0]
		var resp *etcdserverpb.TxnResponse
		if len(r.ops) == 0 && !r.contested {
			resp, err = c.remote.Txn(ctx, &etcdserverpb.TxnRequest{Compare: r.compares(), Success: r.pbOps})
			err = kvErr(ctx, err)
		} else {
			var cr *clientv3.TxnResponse
			cr, err = c.kv(r).Txn(ctx).Then(r.ops...).Else(orElse(r)...).Commit()
			resp = (*etcdserverpb.TxnResponse)(cr)
		}
		if err != nil {
			return reqs, err
		}
		subs, rev = []*etcdserverpb.TxnResponse{resp}, resp.Header.Revision
	} else {
		ops := make([]clientv3.Op, len(reqs))
		for i, r := range reqs {
			ops[i] = clientv3.OpTxn(nil, r.ops, orElse(r))
		}
		resp, err := c.kv(nil, reqs...).Txn(ctx).Then(ops...).Commit()
		if err != nil {
			return reqs, err
		}
		subs, rev = make([]*etcdserverpb.TxnResponse, len(reqs)), resp.Header.Revision
		for i := range reqs {
			subs[i] = resp.Responses[i].GetResponseTxn()
		}
	}
	for i, r := range reqs {
		sub := subs[i]
		switch {
		case sub.GetSucceeded():
			r.done <- txnResult{resps: sub.Responses, rev: rev}
		case r.contested:
			_, check := r.diagnosis()
			if err := check(sub.Responses); err != nil {
				r.done <- txnResult{err: err}
			} else {
				failed = append(failed, r) // read with the failed compares: cannot be
			}
		default:
			failed = append(failed, r)
		}
	}
	return failed, nil
}

// commitFlat sends reqs as one txn of all their compares and ops, and
// answers them all if it committed; else it returns them all as failed.
func (c *committer) commitFlat(ctx context.Context, reqs []*txnReq) (failed []*txnReq, err error) {
	n := 0
	for _, r := range reqs {
		n += len(r.ops)
	}
	ops := make([]clientv3.Op, 0, n) // clientv3 converts these; attached adds the built ones
	for _, r := range reqs {
		ops = append(ops, r.ops...)
	}
	resp, err := clientv3.NewKVFromKVClient(&attached{KVClient: c.remote, flat: reqs}, c.cli).Txn(ctx).Then(ops...).Commit()
	if err != nil {
		return reqs, err
	}
	if !resp.Succeeded {
		return reqs, nil
	}
	at := 0
	for _, r := range reqs {
		_, n, _ := r.counts()
		r.done <- txnResult{resps: resp.Responses[at : at+n], rev: resp.Header.Revision}
		at += n
	}
	return nil, nil
}

// nestedAfterFailure is how many batches go nested after a flat one failed.
const nestedAfterFailure = 16

// kvErr is err as clientv3's KV returns it: etcd's errors as rpctypes
// errors, and a cancelled call as its context's error.
func kvErr(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	err = rpctypes.Error(err)
	if _, ok := err.(rpctypes.EtcdError); ok {
		return err
	}
	if st, ok := status.FromError(err); ok && (st.Code() == codes.Canceled || st.Code() == codes.DeadlineExceeded) && ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// kv returns a KV whose txns get their built compares and ops, and
// clientv3's compares, as they are sent: top's for the txn itself, and
// those of nested[i] for the nested txn of its i-th op. clientv3 copies
// every compare with proto.Clone, twice for a nested txn (OpTxn, then Then):
// 4% of all CPU with 50 executions in flight. A request's compares are built
// once and never changed, so the sent txn may share them.
func (c *committer) kv(top *txnReq, nested ...*txnReq) clientv3.KV {
	return clientv3.NewKVFromKVClient(&attached{KVClient: c.remote, top: top, nested: nested}, c.cli)
}

// attached is a KV client that completes a txn clientv3 converted from
// requests' clientv3 ops: it adds their compares and their built ops. For
// a flat batch, the txn is all of its requests' compares and ops.
type attached struct {
	etcdserverpb.KVClient
	top    *txnReq
	nested []*txnReq
	flat   []*txnReq
}

func (a *attached) Txn(ctx context.Context, in *etcdserverpb.TxnRequest, opts ...grpc.CallOption) (*etcdserverpb.TxnResponse, error) {
	switch {
	case a.flat != nil:
		converted := in.Success // the clientv3 ops of the requests, in order
		var ncmps, nops int
		for _, r := range a.flat {
			cmps, ops, _ := r.counts()
			ncmps, nops = ncmps+cmps, nops+ops
		}
		in.Compare, in.Success = make([]*etcdserverpb.Compare, 0, ncmps), make([]*etcdserverpb.RequestOp, 0, nops)
		for _, r := range a.flat {
			in.Compare = r.appendCompares(in.Compare)
			in.Success = append(append(in.Success, r.pbOps...), converted[:len(r.ops)]...)
			converted = converted[len(r.ops):]
		}
	case a.top != nil:
		in.Compare, in.Success = a.top.compares(), a.top.requestOps(in.Success)
	default:
		for i, r := range a.nested {
			txn := in.Success[i].GetRequestTxn()
			txn.Compare, txn.Success = r.compares(), r.requestOps(txn.Success)
		}
	}
	return a.KVClient.Txn(ctx, in, opts...)
}

// maxDiagnoseRounds bounds how often a batch is committed again after its
// failed requests were told apart.
const maxDiagnoseRounds = 8

// diagnose runs the diagnostic reads of requests whose compares failed,
// fails those whose own compares fail now, and returns the others to commit
// again.
func (c *committer) diagnose(ctx context.Context, reqs []*txnReq, round int) ([]*txnReq, error) {
	var reads []clientv3.Op
	for _, r := range reqs {
		rr, _ := r.diagnosis()
		reads = append(reads, rr...)
	}
	resp, err := c.cli.Txn(ctx).Then(reads...).Commit()
	if err != nil {
		return reqs, fmt.Errorf("read fences of a failed batch: %w", err)
	}
	var retry []*txnReq
	at := 0
	for _, r := range reqs {
		rr, check := r.diagnosis()
		if err := check(resp.Responses[at : at+len(rr)]); err != nil {
			r.done <- txnResult{err: err}
		} else {
			retry = append(retry, r)
		}
		at += len(rr)
	}
	if len(retry) == len(reqs) && round >= maxDiagnoseRounds {
		return retry, errors.New("batched write kept failing with every fence intact")
	}
	return retry, nil
}

// close stops the committers once the requests they hold are committed; later
// requests fail with errStoreClosed.
func (c *committer) close() {
	c.once.Do(func() {}) // no committers start after close
	close(c.stop)
	c.wg.Wait()
}

// drainClosed fails held, and the requests that were queued when the store
// closed.
func (c *committer) drainClosed(held ...*txnReq) {
	for _, r := range held {
		r.done <- txnResult{err: errStoreClosed}
	}
	for {
		select {
		case r := <-c.reqs:
			r.done <- txnResult{err: errStoreClosed}
		default:
			return
		}
	}
}
