package cluster

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/starbook/starbook"
	sbruntime "github.com/starbook/starbook/runtime"
)

// Starting an execution costs one txn and no read: the runbook's current
// version and its rollout come from a cache that the create txn checks (a
// compare on runbooks/<name>/current and on the mod revision of
// rollouts/<name>), and a node with a free worker claims the new execution
// in the same txn and runs it at once, without waiting for its watch to see
// the runnable key. A stale cache costs a failed txn and a retry, never a
// run of the wrong version.

// startPin is what a start of a runbook was decided on: its current version
// and its rollout key (rev 0: none), as last read or last confirmed by a
// create.
type startPin struct {
	current    string
	rolloutRev int64
	rollout    *starbook.Rollout // nil without a rollout key
	// The mod revisions of the runbook's pause key and of every runbook's
	// (0: none), which the create txn compares, and the pauses they hold:
	// a start checks them on the pin, so a pause costs a start no read,
	// and one set since the pin was read fails the create txn.
	pauseRev, allPauseRev int64
	pauses                []starbook.PauseState
}

// version returns the version a new execution id runs: the canary's or
// the current one during an active rollout (by id), else the current one.
func (p startPin) version(id string) string {
	if p.rollout.Active() && p.rollout.Stable == p.current {
		return p.rollout.Pick(id)
	}
	return p.current
}

// versionCache remembers each runbook's start pin.
type versionCache struct {
	mu sync.Mutex
	v  map[string]startPin
}

func (c *versionCache) get(name string) (startPin, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.v[name]
	return v, ok
}

func (c *versionCache) set(name string, p startPin) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.v == nil {
		c.v = map[string]startPin{}
	}
	c.v[name] = p
}

// versionChanged is the error of a create whose runbook was applied again,
// or whose rollout or pause changed, since its pin was read: the caller
// starts it again on the new pin.
type versionChanged struct{ pin startPin }

func (e *versionChanged) Error() string { return "runbook version changed to " + e.pin.current }

// cachedPin returns the runbook's start pin, from the cache unless fresh is
// set.
func (s *Store) cachedPin(ctx context.Context, name string, fresh bool) (startPin, error) {
	if p, ok := s.current.get(name); ok && !fresh {
		return p, nil
	}
	resp, err := s.cli.Txn(ctx).Then(clientv3.OpGet(s.k.runbookCurrent(name)), clientv3.OpGet(s.k.rollout(name)),
		clientv3.OpGet(s.k.pause(name)), clientv3.OpGet(s.k.pause(starbook.AllRunbooks))).Commit()
	if err != nil {
		return startPin{}, fmt.Errorf("read runbook %s: %w", name, err)
	}
	p, err := s.k.decodePin(name, resp.Responses[0].GetResponseRange().Kvs, resp.Responses[1].GetResponseRange().Kvs,
		resp.Responses[2].GetResponseRange().Kvs, resp.Responses[3].GetResponseRange().Kvs)
	if err != nil {
		return startPin{}, err
	}
	s.current.set(name, p)
	return p, nil
}

// decodePin builds a start pin from reads of a runbook's current, rollout
// and pause keys and of the pause of every runbook.
func (k Keys) decodePin(name string, current, rollout, pause, allPause []*mvccpb.KeyValue) (startPin, error) {
	if len(current) == 0 {
		return startPin{}, fmt.Errorf("runbook %q: %w (apply it first)", name, sbruntime.ErrNotFound)
	}
	p := startPin{current: string(current[0].Value)}
	if len(rollout) > 0 {
		r, err := decodeRollout(rollout[0].Value)
		if err != nil {
			return startPin{}, err
		}
		p.rollout, p.rolloutRev = r, rollout[0].ModRevision
	}
	for _, kvs := range [][]*mvccpb.KeyValue{pause, allPause} {
		for _, kv := range kvs {
			ps, err := decodePause(kv)
			if err != nil {
				return startPin{}, err
			}
			p.pauses = append(p.pauses, *ps)
		}
	}
	if len(pause) > 0 {
		p.pauseRev = pause[0].ModRevision
	}
	if len(allPause) > 0 {
		p.allPauseRev = allPause[0].ModRevision
	}
	return p, nil
}

// paused returns the pause that refuses a start of runbook on p at now, or
// nil when none does.
func (p startPin) paused(runbook string, now time.Time) *starbook.PausedError {
	if st := EffectivePause(runbook, p.pauses, now); st.Paused {
		return &starbook.PausedError{State: *st}
	}
	return nil
}

// Runner is the worker pool of the node in this process, as storage sees
// it: a new execution is claimed in its create txn, and run at once, when
// the runner has a worker free for it. Package node implements it.
type Runner interface {
	// Reserve takes a worker for the new execution id, to be created
	// through s; nil when the runner does not run s's executions, is not
	// claiming or has no worker free.
	Reserve(s *Store, id string) Reservation
}

// Reservation is a worker reserved for one new execution.
type Reservation interface {
	// Owner is whom the create txn claims the execution for: the node's id
	// and its session's lease.
	Owner() (node string, lease clientv3.LeaseID)
	// Start runs the execution claimed in its create txn; it returns at once.
	Start(claim *Claim)
	// Release gives the worker back unused.
	Release()
}

// createReq is the txn that stores e (encoded as data) and makes it runnable.
// With a pin (not nil), it also checks that the runbook's current version
// and rollout key are still the pin's; with a reservation (not nil), its
// node claims e in the same txn; with a childKey (not ""), it writes the
// key, naming e, only if no other execution did (children.go).
func (s *Store) createReq(e *sbruntime.Execution, data []byte, pin *startPin, r Reservation, childKey string) *txnReq {
	ek, ck, rk := s.k.execution(e.ID), s.k.runbookCurrent(e.Runbook), s.k.rollout(e.Runbook)
	pk, ak := s.k.pause(e.Runbook), s.k.pause(starbook.AllRunbooks)
	cmps := append(make([]*etcdserverpb.Compare, 0, 6), createRevision([]byte(ek), 0))
	if pin != nil {
		cmps = append(cmps, valueIs([]byte(ck), pin.current), modRevision([]byte(rk), pin.rolloutRev),
			modRevision([]byte(pk), pin.pauseRev), modRevision([]byte(ak), pin.allPauseRev))
	}
	pbOps := append([]*etcdserverpb.RequestOp{putOp([]byte(ek), data), putOp([]byte(s.k.runnable(e.ID)), nil)}, s.k.indexPB(e)...)
	if childKey != "" {
		cmps = append(cmps, createRevision([]byte(childKey), 0))
		pbOps = append(pbOps, putOp([]byte(childKey), []byte(e.ID)))
	}
	ops := s.activeOps(e)
	if r != nil {
		ops = append(ops, s.claimOp(e.ID, r))
	}
	return &txnReq{pbCmps: cmps, pbOps: pbOps, ops: ops, nreads: 6, diagnostics: func() ([]clientv3.Op, func([]*etcdserverpb.ResponseOp) error) {
		child := childKey
		if child == "" {
			child = s.k.probe("child") // never written: reads nothing
		}
		reads := []clientv3.Op{clientv3.OpGet(ek, clientv3.WithKeysOnly()), clientv3.OpGet(ck), clientv3.OpGet(rk), clientv3.OpGet(child),
			clientv3.OpGet(pk), clientv3.OpGet(ak)}
		return reads, func(r []*etcdserverpb.ResponseOp) error {
			if len(r[0].GetResponseRange().Kvs) > 0 {
				return errors.New("id already exists")
			}
			if kvs := r[3].GetResponseRange().Kvs; len(kvs) > 0 {
				return &childExists{id: string(kvs[0].Value)}
			}
			if pin == nil {
				return nil
			}
			now, err := s.k.decodePin(e.Runbook, r[1].GetResponseRange().Kvs, r[2].GetResponseRange().Kvs,
				r[4].GetResponseRange().Kvs, r[5].GetResponseRange().Kvs)
			if err != nil {
				return err
			}
			if now.current != pin.current || now.rolloutRev != pin.rolloutRev || now.pauseRev != pin.pauseRev || now.allPauseRev != pin.allPauseRev {
				return &versionChanged{pin: now}
			}
			return nil
		}
	}}
}

// encodeNew encodes a new execution, refusing one over the record limit or
// over its runbook's active limit.
func (s *Store) encodeNew(ctx context.Context, e *sbruntime.Execution) ([]byte, error) {
	data, err := e.EncodeJSON()
	if err != nil {
		return nil, err
	}
	if len(data) > maxRecordBytes {
		return nil, sbruntime.Inputf("execution input is %d bytes, over the %d-byte limit", len(data), maxRecordBytes)
	}
	if err := s.checkActive(ctx, e.Runbook); err != nil {
		return nil, err
	}
	return data, nil
}

// claimOp is the write that claims execution id for r's node in its create txn.
func (s *Store) claimOp(id string, r Reservation) clientv3.Op {
	node, lease := r.Owner()
	return clientv3.OpPut(s.k.owner(id), node, clientv3.WithLease(lease))
}

// create stores e as createReq does and, when claimed for r, returns the
// claim: the execution has no history and no waits yet.
func (s *Store) create(ctx context.Context, e *sbruntime.Execution, pin *startPin, r Reservation, childKey string) (*Claim, error) {
	data, err := s.encodeNew(ctx, e)
	if err != nil {
		return nil, err
	}
	res, err := s.batch.do(ctx, s.createReq(e, data, pin, r, childKey))
	if err != nil {
		return nil, fmt.Errorf("create execution %s: %w", e.ID, err)
	}
	if r == nil {
		return nil, nil
	}
	return s.newClaim(e, res.rev), nil
}

// StartCurrent creates an execution of runbook's current version, built by
// newExecution, and claims it for runner (nil for none) when it has a free
// worker. During an active rollout the execution runs the canary version
// instead when its id falls in the canary's share (starbook.InCanary). It
// starts again on the new version if the runbook was applied, or its
// rollout changed, meanwhile. An input the version's schema refuses is an
// *InputError naming the JSON pointer and the rule, and nothing is stored
// (nor any budget spent). The execution is durable on return.
func (s *Store) StartCurrent(ctx context.Context, runbook string, runner Runner, newExecution func(version string) *sbruntime.Execution) (*sbruntime.Execution, error) {
	return s.startCurrent(ctx, runbook, runner, "", newExecution)
}

// startCurrent is StartCurrent, the create txn also writing childKey (not
// "") only if it is absent (a *childExists error otherwise).
func (s *Store) startCurrent(ctx context.Context, runbook string, runner Runner, childKey string, newExecution func(version string) *sbruntime.Execution) (*sbruntime.Execution, error) {
	fresh := false
	for attempt := 0; ; attempt++ {
		pin, err := s.cachedPin(ctx, runbook, fresh)
		if err != nil {
			return nil, err
		}
		e := newExecution(pin.current)
		e.Version = pin.version(e.ID)
		// A paused runbook starts nothing by hand unless forced; the child
		// of a run in flight goes on, as that run does.
		// A pin read before a resume would still refuse: a refusal is made
		// on a fresh one.
		if _, forced := e.Trigger.Attrs[starbook.AttrForced]; !forced && childKey == "" {
			if err := pin.paused(runbook, s.now()); err != nil {
				if !fresh {
					fresh = true
					continue
				}
				return nil, err
			}
		}
		// Before the budget: a refused input spends nothing and stores nothing.
		if err := s.ValidateInput(ctx, runbook, e.Version, e.Input); err != nil {
			if errors.Is(err, sbruntime.ErrNotFound) && !fresh {
				fresh = true // a stale cached version: read the current one
				continue
			}
			return nil, err
		}
		if err := s.budgets.AdmitStart(ctx, runbook, e.Version); err != nil {
			return nil, s.refuseStart(ctx, e, err)
		}
		err = s.createOn(ctx, runner, e, &pin, childKey)
		var changed *versionChanged
		if errors.As(err, &changed) && attempt < 5 {
			s.current.set(runbook, changed.pin)
			continue
		}
		if errors.Is(err, sbruntime.ErrNotFound) && !fresh {
			fresh = true // deleted, or never cached: read it to be sure
			continue
		}
		if err != nil {
			return nil, err
		}
		return e, nil
	}
}

// createOn stores e, checking pin; when runner (which may be nil) has a
// free worker, it claims e in the same txn and runs it at once.
func (s *Store) createOn(ctx context.Context, runner Runner, e *sbruntime.Execution, pin *startPin, childKey string) error {
	var r Reservation
	if runner != nil {
		r = runner.Reserve(s, e.ID)
	}
	claim, err := s.create(ctx, e, pin, r, childKey)
	if r == nil {
		return err
	}
	if err != nil {
		r.Release()
		if errors.Is(err, rpctypes.ErrLeaseNotFound) {
			// The session expired under us: store it for whoever runs next.
			_, err = s.create(ctx, e, pin, nil, childKey)
		}
		return err
	}
	r.Start(claim)
	return nil
}

// newClaim is the claim of a new execution claimed in its create txn at rev.
func (s *Store) newClaim(e *sbruntime.Execution, rev int64) *Claim {
	return &Claim{s: s, Execution: e, History: map[string]*sbruntime.Event{}, Waits: map[string]*sbruntime.Wait{},
		rev: rev, runnableRev: rev, execRev: rev, fresh: true}
}
