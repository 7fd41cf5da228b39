package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	sbruntime "github.com/starbook/starbook/runtime"
)

// Claim is a node's ownership of one execution, bound to the node's session
// lease. It is the execution's runtime.Journal: every write is fenced on the
// ownership key's create revision, so a node that lost its lease (paused,
// partitioned, killed) can never write again.
type Claim struct {
	s         *Store
	Execution *sbruntime.Execution
	History   map[string]*sbruntime.Event
	Waits     map[string]*sbruntime.Wait
	// CancelRequested is set when a user cancelled the execution before the claim.
	CancelRequested bool
	rev             int64 // create revision of owners/<id>
	runnableRev     int64 // mod revision of runnable/<id> when claimed
	execRev         int64 // mod revision of executions/<id> when last written by us
	// waited is set once the execution may have had a wait: only then can
	// it have wait, signal-wait and approval keys for its end to delete.
	waited atomic.Bool // set by fan_out items' waits too
	// fresh is set on a claim taken in the execution's create txn: it has no
	// concurrency slot or queue entry to release (those are a bounded
	// trigger's, and bounded starts are not claimed at creation).
	fresh bool

	usageMu  sync.Mutex
	recorded []*sbruntime.Event // events this claim recorded, for its usage (usage.go)
	stored   []*sbruntime.Event // every event stored for it when claimed (all attempts'), for its final usage
}

var _ sbruntime.Journal = (*Claim)(nil)

// Claim takes ownership of a runnable, unowned execution for node under lease
// and loads its record, history and waits in the same transaction. It returns
// ErrNotClaimable if another node owns it or it is not runnable.
func (s *Store) Claim(ctx context.Context, id, node string, lease clientv3.LeaseID) (*Claim, error) {
	ok, rk := s.k.owner(id), s.k.runnable(id)
	res, err := s.batch.do(ctx, &txnReq{
		cmps: []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(ok), "=", 0),
			clientv3.Compare(clientv3.CreateRevision(rk), ">", 0)},
		ops: []clientv3.Op{clientv3.OpPut(ok, node, clientv3.WithLease(lease)),
			clientv3.OpGet(s.k.execution(id)),
			clientv3.OpGet(rk),
			clientv3.OpGet(s.k.history(id), clientv3.WithPrefix()),
			clientv3.OpGet(s.k.waits(id), clientv3.WithPrefix()),
			clientv3.OpGet(s.k.cancel(id), clientv3.WithKeysOnly())},
		reads: []clientv3.Op{clientv3.OpGet(ok, clientv3.WithKeysOnly()), clientv3.OpGet(rk, clientv3.WithKeysOnly())},
		check: func(r []*etcdserverpb.ResponseOp) error {
			if len(r[0].GetResponseRange().Kvs) > 0 || len(r[1].GetResponseRange().Kvs) == 0 {
				return ErrNotClaimable
			}
			return nil
		},
		contested: true, // nodes race for every runnable execution
	})
	if errors.Is(err, ErrNotClaimable) {
		return nil, ErrNotClaimable
	}
	if err != nil {
		return nil, fmt.Errorf("claim %s: %w", id, err)
	}
	c := &Claim{s: s, rev: res.rev, Execution: &sbruntime.Execution{ID: id},
		History: map[string]*sbruntime.Event{}, Waits: map[string]*sbruntime.Wait{}}
	r := res.resps
	execKvs := r[1].GetResponseRange().Kvs
	if len(execKvs) == 0 {
		// A runnable key without a record: drop both and move on.
		_ = c.release(ctx, nil, clientv3.OpDelete(rk))
		return nil, ErrNotClaimable
	}
	c.execRev = execKvs[0].ModRevision
	if c.Execution, err = s.k.decodeExecution(execKvs[0]); err != nil {
		_ = c.release(ctx, nil)
		return nil, err
	}
	c.runnableRev = r[2].GetResponseRange().Kvs[0].ModRevision
	redriven := len(c.Execution.Redrives) > 0
	var events []*sbruntime.Event // all attempts', when redriven
	history, err := historyOf(execKvs[0].Value, r[3].GetResponseRange().Kvs)
	if err != nil {
		_ = c.release(ctx, nil)
		return nil, fmt.Errorf("claim %s: %w", id, err)
	}
	c.stored = history
	for _, ev := range history {
		if redriven {
			events = append(events, ev)
		} else {
			c.History[ev.Position] = ev
		}
		switch ev.Kind {
		case sbruntime.KindSleep, sbruntime.KindSignal, sbruntime.KindApproval:
			c.waited.Store(true)
		}
	}
	if redriven {
		c.History = sbruntime.Effective(events, c.Execution.Attempt())
	}
	for _, kv := range r[4].GetResponseRange().Kvs {
		w, err := s.k.decodeWait(kv)
		if err != nil {
			_ = c.release(ctx, nil)
			return nil, fmt.Errorf("claim %s: %w", id, err)
		}
		c.Waits[w.Position] = w
		c.waited.Store(true)
	}
	c.CancelRequested = len(r[5].GetResponseRange().Kvs) > 0
	return c, nil
}

func (c *Claim) owned() clientv3.Cmp {
	return clientv3.Compare(clientv3.CreateRevision(c.s.k.owner(c.Execution.ID)), "=", c.rev)
}

// ownedPB is owned built as protobuf (see pbops.go).
func (c *Claim) ownedPB() *etcdserverpb.Compare {
	return createRevision([]byte(c.s.k.owner(c.Execution.ID)), c.rev)
}

// Append records ev at its position if the position is empty and the claim
// still holds: one round trip, no read before the write. Appends of executions
// ready at the same moment share a txn (group commit), each with its own fence.
func (c *Claim) Append(ctx context.Context, ev *sbruntime.Event) error {
	data, err := ev.EncodeJSON()
	if err != nil {
		return fmt.Errorf("encode event %s: %w", ev.Position, err)
	}
	if err := c.s.batch.append(ctx, &appendReq{
		owner: c.s.k.owner(c.Execution.ID), ownerRev: c.rev,
		key: c.s.k.eventAt(c.Execution.ID, ev.Position, ev.Attempt), value: data}); err != nil {
		return err
	}
	c.noteEvent(ev)
	return nil
}

// Wait registers a pending wait and its timer, fenced on the claim.
func (c *Claim) Wait(ctx context.Context, w *sbruntime.Wait) (*sbruntime.Event, error) {
	c.waited.Store(true)
	data, err := encodeWait(w)
	if err != nil {
		return nil, err
	}
	ops := []clientv3.Op{clientv3.OpPut(c.s.k.wait(w.Execution, w.Position), string(data))}
	if w.Deadline != nil {
		ops = append(ops, clientv3.OpPut(c.s.k.timer(*w.Deadline, w.Execution, w.Position), ""))
	}
	if w.Kind == sbruntime.KindSignal {
		return c.waitSignal(ctx, w, ops)
	}
	return nil, c.fenced(ctx, "register wait "+w.Position, ops...)
}

// waitSignal registers a signal wait unless the signal was sent before the
// script reached it: then it consumes the oldest kept signal into the history
// at the wait's position, in one fenced txn, and returns that event. Store.Signal
// finds the wait by reading the execution's waits, and keeps a signal only if
// none of them changed since its read: a signal is either kept before the
// wait is registered (and consumed here) or finds the wait. Signals an
// earlier release kept as one list (signalList) go first.
func (c *Claim) waitSignal(ctx context.Context, w *sbruntime.Wait, ops []clientv3.Op) (*sbruntime.Event, error) {
	id := c.Execution.ID
	sk, kp := c.s.k.signalList(id, w.Name), c.s.k.keptSignals(id, w.Name)
	for {
		resp, err := c.s.cli.Txn(ctx).
			If(c.owned(), clientv3.Compare(clientv3.CreateRevision(sk), "=", 0),
				clientv3.Compare(clientv3.CreateRevision(kp), "=", 0).WithPrefix()).
			Then(ops...).
			Else(clientv3.OpGet(sk), clientv3.OpGet(c.s.k.owner(id), clientv3.WithKeysOnly()),
				clientv3.OpGet(kp, clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend), clientv3.WithLimit(1))).
			Commit()
		if err != nil {
			return nil, fmt.Errorf("register signal wait %s/%s: %w", id, w.Position, err)
		}
		if resp.Succeeded {
			return nil, nil
		}
		if kvs := resp.Responses[1].GetResponseRange().Kvs; len(kvs) == 0 || kvs[0].CreateRevision != c.rev {
			return nil, fmt.Errorf("register signal wait %s/%s: %w", id, w.Position, sbruntime.ErrNotOwner)
		}
		var result json.RawMessage
		var key string
		var rev int64
		var rest clientv3.Op // what is left of the kept signals once this one is taken
		if list := resp.Responses[0].GetResponseRange().Kvs; len(list) > 0 {
			var queue []json.RawMessage
			if err := json.Unmarshal(list[0].Value, &queue); err != nil || len(queue) == 0 {
				return nil, fmt.Errorf("decode kept signals %s: %v", sk, err)
			}
			result, key, rev, rest = queue[0], sk, list[0].ModRevision, clientv3.OpDelete(sk)
			if len(queue) > 1 {
				b, _ := json.Marshal(queue[1:])
				rest = clientv3.OpPut(sk, string(b))
			}
		} else if one := resp.Responses[2].GetResponseRange().Kvs; len(one) > 0 {
			result, key, rev = one[0].Value, string(one[0].Key), one[0].ModRevision
			rest = clientv3.OpDelete(key)
		} else {
			continue // consumed or deleted meanwhile; look again
		}
		now := c.s.now().UTC()
		ev := &sbruntime.Event{Position: w.Position, Kind: w.Kind, Name: w.Name, ArgsHash: w.ArgsHash,
			Result: result, Error: childFailure(w.Name, result), StartedAt: now, EndedAt: now, Attempt: w.Attempt}
		evData, _ := json.Marshal(ev)
		ek := c.s.k.eventAt(id, w.Position, w.Attempt)
		tx, err := c.s.cli.Txn(ctx).
			If(c.owned(), clientv3.Compare(clientv3.ModRevision(key), "=", rev),
				clientv3.Compare(clientv3.CreateRevision(ek), "=", 0)).
			Then(clientv3.OpPut(ek, string(evData)), rest).
			Commit()
		if err != nil {
			return nil, fmt.Errorf("consume signal %s/%s: %w", id, w.Name, err)
		}
		if tx.Succeeded {
			c.noteEvent(ev)
			return ev, nil
		}
	}
}

// SetStatus records a non-terminal status.
func (c *Claim) SetStatus(ctx context.Context, st sbruntime.Status) error {
	e := *c.Execution
	e.Status, e.UpdatedAt = st, c.s.now().UTC()
	data, err := json.Marshal(&e)
	if err != nil {
		return err
	}
	if err := c.fenced(ctx, "set status "+string(st), clientv3.OpPut(c.s.k.execution(e.ID), string(data))); err != nil {
		return err
	}
	c.Execution = &e
	return nil
}

func (c *Claim) fenced(ctx context.Context, what string, ops ...clientv3.Op) error {
	if _, err := c.s.batch.do(ctx, c.fencedReq(nil, ops, nil)); err != nil {
		return fmt.Errorf("%s %s: %w", what, c.Execution.ID, err)
	}
	return nil
}

// errWaitResolved reports a parking run whose execution was made runnable again.
var errWaitResolved = errors.New("a wait was resolved while the run parked")

// fencedReq is a batched write (pbOps, then ops) fenced on the claim, and on
// the runnable key's mod revision when runnableRev is not nil.
func (c *Claim) fencedReq(pbOps []*etcdserverpb.RequestOp, ops []clientv3.Op, runnableRev *int64) *txnReq {
	id := c.Execution.ID
	cmps := append(make([]*etcdserverpb.Compare, 0, 3), c.ownedPB()) // room for uncancelled or a checkpoint's
	if runnableRev != nil {
		cmps = append(cmps, modRevision([]byte(c.s.k.runnable(id)), *runnableRev))
	}
	return &txnReq{pbCmps: cmps, pbOps: pbOps, ops: ops, nreads: 2,
		diagnostics: func() ([]clientv3.Op, func([]*etcdserverpb.ResponseOp) error) {
			reads := []clientv3.Op{clientv3.OpGet(c.s.k.owner(id), clientv3.WithKeysOnly()), clientv3.OpGet(c.s.k.runnable(id), clientv3.WithKeysOnly())}
			return reads, func(r []*etcdserverpb.ResponseOp) error {
				if kvs := r[0].GetResponseRange().Kvs; len(kvs) == 0 || kvs[0].CreateRevision != c.rev {
					return sbruntime.ErrNotOwner
				}
				if runnableRev != nil {
					if kvs := r[1].GetResponseRange().Kvs; len(kvs) == 0 || kvs[0].ModRevision != *runnableRev {
						return errWaitResolved
					}
				}
				return nil
			}
		}}
}

// Finish records a run's outcome and gives up the claim. A terminal outcome
// ends the execution. A waiting one parks it, unless a wait was resolved while
// it ran (the runnable key changed): then the claim is released so the
// Revision is the revision of the claim (its owner key's creation): a
// change at a later revision happened while this claim held the execution.
func (c *Claim) Revision() int64 { return c.rev }

// execution runs again at once. It returns the execution as stored.
func (c *Claim) Finish(ctx context.Context, o sbruntime.Outcome) (*sbruntime.Execution, error) {
	e, err := c.finish(ctx, o)
	if errors.Is(err, sbruntime.ErrPositionTaken) {
		// Only this claim writes its positions: an earlier write of the
		// checkpoint landed though its caller saw it fail. It is recorded.
		c.noteEvent(o.Checkpoint)
		o.Checkpoint = nil
		e, err = c.finish(ctx, o)
	}
	return e, err
}

func (c *Claim) finish(ctx context.Context, o sbruntime.Outcome) (*sbruntime.Execution, error) {
	id := c.Execution.ID
	var checkpoint *checkpointWrite
	if o.Checkpoint != nil {
		data, err := o.Checkpoint.EncodeJSON()
		if err != nil {
			return nil, fmt.Errorf("encode event %s: %w", o.Checkpoint.Position, err)
		}
		checkpoint = &checkpointWrite{key: c.s.k.eventAt(id, o.Checkpoint.Position, o.Checkpoint.Attempt), value: data}
	}
	if o.Status == "" {
		return c.Execution, c.release(ctx, checkpoint)
	}
	e := *c.Execution
	now := c.s.now().UTC()
	e.Status, e.Result, e.Error, e.UpdatedAt, e.Node = o.Status, o.Result, o.Error, now, ""
	if o.Status.Terminal() {
		e.EndedAt = &now
	}
	data, err := e.EncodeJSON()
	if err != nil {
		return nil, err
	}
	if len(data) > maxRecordBytes {
		e.Result, e.Status = nil, sbruntime.StatusFailed
		e.Error = fmt.Sprintf("result is %d bytes, over the %d-byte limit (max_result_bytes)", len(data), maxRecordBytes)
		data, _ = json.Marshal(&e)
	}
	var foldDeletes []*etcdserverpb.RequestOp
	if o.Status.Terminal() {
		record, deletes, folded := c.foldEnd(&e, data, o.Checkpoint)
		if !folded {
			record = data
		}
		if stored := compressRecord(record); len(stored) <= maxRecordBytes {
			data = stored
			if folded {
				foldDeletes = deletes
				checkpoint.folded()
			}
		}
	}
	pbOps := append(make([]*etcdserverpb.RequestOp, 0, 6+len(foldDeletes)), // room for the usual end and its checkpoint
		putOp([]byte(c.s.k.execution(id)), data),
		deleteOp([]byte(c.s.k.runnable(id))),
		deleteOp([]byte(c.s.k.owner(id))))
	pbOps = append(pbOps, c.usageOps(&e, o.Checkpoint, now, o.Status.Terminal())...)
	var ops []clientv3.Op // the rarer ones
	var runnableRev *int64
	if o.Status.Terminal() {
		pbOps = append(pbOps, deleteOp([]byte(c.s.k.cancel(id))),
			deletePrefixOp(c.s.k.signals(id))) // kept signals: sent any time
		pbOps = append(pbOps, c.s.k.indexMovePB(&e, classLive)...)
		pbOps = append(pbOps, foldDeletes...)
		pbOps = append(pbOps, c.s.k.rollupEndPB(&e)...) // its SLO end (rollups.go)
		if c.waited.Load() {
			ops = append(ops, clientv3.OpDelete(c.s.k.waits(id), clientv3.WithPrefix()),
				clientv3.OpDelete(c.s.k.legacySignalWaits(id), clientv3.WithPrefix()),
				clientv3.OpDelete(c.s.k.executionApprovals(id), clientv3.WithPrefix()))
		}
		ops = append(ops, c.s.k.deadLetterOps(&e)...) // none for a completed run
		if !c.fresh {
			ops = append(ops, c.s.k.endOps(&e)...)
		} else {
			if c.s.maxActive > 0 { // its create wrote active/ (see activeOps)
				ops = append(ops, clientv3.OpDelete(c.s.k.active(e.Runbook, id)))
			}
			ops = append(ops, c.s.k.groupEndOps(&e)...) // no slot or queue entry, but maybe a group
			ops = append(ops, c.s.k.childEndOps(&e)...) // a child's end, for its parent
			if key := c.s.k.alertRunOf(&e); key != "" {
				ops = append(ops, clientv3.OpDelete(key))
			}
		}
		for _, w := range c.Waits {
			if w.Deadline != nil {
				ops = append(ops, clientv3.OpDelete(c.s.k.timer(*w.Deadline, id, w.Position)))
			}
		}
	} else {
		runnableRev = &c.runnableRev
	}
	req := c.fencedReq(pbOps, ops, runnableRev)
	if !o.Status.Terminal() {
		req = c.uncancelled(req)
	}
	_, err = c.s.batch.do(ctx, checkpoint.fence(req))
	switch {
	case errors.Is(err, errCancelRequested):
		// A user cancelled the execution while it ran and the run parked
		// without hearing it (the request came after the script stopped):
		// nobody runs a parked execution to find the request, so it ends
		// cancelled here.
		return c.finish(ctx, sbruntime.Outcome{Status: sbruntime.StatusCancelled, Error: "cancelled", Checkpoint: o.Checkpoint})
	case errors.Is(err, sbruntime.ErrNotOwner):
		return c.Execution, fmt.Errorf("finish %s: %w", id, sbruntime.ErrNotOwner)
	case errors.Is(err, sbruntime.ErrPositionTaken):
		return c.Execution, fmt.Errorf("finish %s: %w", id, err)
	case errors.Is(err, errWaitResolved):
		// A wait was resolved while the run parked: release, keeping the
		// runnable key, so the execution is claimed and replayed at once.
		return c.Execution, c.release(ctx, checkpoint)
	case err != nil:
		return nil, fmt.Errorf("finish %s: %w", id, err)
	}
	c.Execution = &e
	if e.Status.Terminal() {
		c.s.ends.ended(&e)
	}
	return &e, nil
}

// errCancelRequested reports a parking run whose execution has a cancel
// request.
var errCancelRequested = errors.New("a cancel was requested while the run parked")

// uncancelled fences r on the execution having no cancel request. A request
// is put only while the execution is owned (Store.requestCancel), so a park
// either finds it here or comes before it.
func (c *Claim) uncancelled(r *txnReq) *txnReq {
	return r.absent(c.s.k.cancel(c.Execution.ID), func() error { return errCancelRequested })
}

// absent adds to r the compare that key does not exist: a request that
// fails only on it (its other checks passed) fails with failed(). Its
// diagnostic read is built with r's others, if ever.
func (r *txnReq) absent(key string, failed func() error) *txnReq {
	r.pbCmps = append(r.pbCmps, createRevision([]byte(key), 0))
	_, _, n := r.counts()
	build := r.diagnostics
	if build == nil {
		reads, check := r.reads, r.check
		build = func() ([]clientv3.Op, func([]*etcdserverpb.ResponseOp) error) { return reads, check }
	}
	r.reads, r.check, r.nreads = nil, nil, n+1
	r.diagnostics = func() ([]clientv3.Op, func([]*etcdserverpb.ResponseOp) error) {
		reads, check := build()
		reads = append(slices.Clip(reads), clientv3.OpGet(key, clientv3.WithKeysOnly()))
		return reads, func(rs []*etcdserverpb.ResponseOp) error {
			if err := check(rs[:n]); err != nil {
				return err
			}
			if len(rs[n].GetResponseRange().Kvs) > 0 {
				return failed()
			}
			return nil
		}
	}
	return r
}

// release gives up the claim, keeping the execution runnable, and records
// checkpoint if it is not nil.
func (c *Claim) release(ctx context.Context, checkpoint *checkpointWrite, extra ...clientv3.Op) error {
	pbOps := append(make([]*etcdserverpb.RequestOp, 0, 2), deleteOp([]byte(c.s.k.owner(c.Execution.ID))))
	if _, err := c.s.batch.do(ctx, checkpoint.fence(c.fencedReq(pbOps, extra, nil))); err != nil && !errors.Is(err, sbruntime.ErrNotOwner) {
		return fmt.Errorf("release %s: %w", c.Execution.ID, err)
	}
	return nil
}

// checkpointWrite is a step's event recorded with a run's outcome
// (Outcome.Checkpoint).
type checkpointWrite struct {
	key   string
	value []byte
	// inRecord is set when the event is folded into the record it ends
	// (fold.go): its key must still be empty, and is not written.
	inRecord bool
}

// folded marks the checkpoint as folded into the end's record; a nil
// checkpoint stays nil.
func (w *checkpointWrite) folded() {
	if w != nil {
		w.inRecord = true
	}
}

// fence adds the event's write to r, if its position is empty: a request
// whose event position is taken fails with ErrPositionTaken. A nil
// checkpoint leaves r as it is.
func (w *checkpointWrite) fence(r *txnReq) *txnReq {
	if w == nil {
		return r
	}
	if !w.inRecord {
		r.pbOps = append(r.pbOps, putOp([]byte(w.key), w.value))
	}
	return r.absent(w.key, func() error { return fmt.Errorf("record %s: %w", w.key, sbruntime.ErrPositionTaken) })
}
