package cluster

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	sbruntime "github.com/starbook/starbook/runtime"
)

// Starting an execution costs one txn and no read: the runbook's current
// version comes from a cache that the create txn checks (a compare on
// runbooks/<name>/current), and a node with a free worker claims the new
// execution in the same txn and runs it at once, without waiting for its
// watch to see the runnable key.

// versionCache remembers each runbook's current version as last read or
// last confirmed by a create.
type versionCache struct {
	mu sync.Mutex
	v  map[string]string
}

func (c *versionCache) get(name string) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.v[name]
	return v, ok
}

func (c *versionCache) set(name, version string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.v == nil {
		c.v = map[string]string{}
	}
	c.v[name] = version
}

// versionChanged is the error of a create whose runbook was applied again
// since its version was read: the caller starts it again on current.
type versionChanged struct{ current string }

func (e *versionChanged) Error() string { return "runbook version changed to " + e.current }

// cachedVersion returns the runbook's current version, from the cache unless
// fresh is set.
func (s *Store) cachedVersion(ctx context.Context, name string, fresh bool) (string, error) {
	if v, ok := s.current.get(name); ok && !fresh {
		return v, nil
	}
	v, err := s.CurrentVersion(ctx, name)
	if err != nil {
		return "", err
	}
	s.current.set(name, v)
	return v, nil
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
// When current is set, it also checks that e.Version is still its runbook's
// current version; with a reservation (not nil), its node claims e in the
// same txn.
func (s *Store) createReq(e *sbruntime.Execution, data []byte, current bool, r Reservation) *txnReq {
	ek, ck := s.k.execution(e.ID), s.k.runbookCurrent(e.Runbook)
	cmps := append(make([]*etcdserverpb.Compare, 0, 2), createRevision([]byte(ek), 0))
	if current {
		cmps = append(cmps, valueIs([]byte(ck), e.Version))
	}
	pbOps := []*etcdserverpb.RequestOp{putOp([]byte(ek), data), putOp([]byte(s.k.runnable(e.ID)), nil)}
	ops := s.activeOps(e)
	if r != nil {
		ops = append(ops, s.claimOp(e.ID, r))
	}
	return &txnReq{pbCmps: cmps, pbOps: pbOps, ops: ops, nreads: 2, diagnostics: func() ([]clientv3.Op, func([]*etcdserverpb.ResponseOp) error) {
		return []clientv3.Op{clientv3.OpGet(ek, clientv3.WithKeysOnly()), clientv3.OpGet(ck)}, func(r []*etcdserverpb.ResponseOp) error {
			if len(r[0].GetResponseRange().Kvs) > 0 {
				return errors.New("id already exists")
			}
			if !current {
				return nil
			}
			kvs := r[1].GetResponseRange().Kvs
			if len(kvs) == 0 {
				return fmt.Errorf("runbook %q: %w (apply it first)", e.Runbook, sbruntime.ErrNotFound)
			}
			if v := string(kvs[0].Value); v != e.Version {
				return &versionChanged{current: v}
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
func (s *Store) create(ctx context.Context, e *sbruntime.Execution, current bool, r Reservation) (*Claim, error) {
	data, err := s.encodeNew(ctx, e)
	if err != nil {
		return nil, err
	}
	res, err := s.batch.do(ctx, s.createReq(e, data, current, r))
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
// worker. It starts again on the new version if the runbook was applied
// meanwhile. An input the version's schema refuses is an *InputError naming
// the JSON pointer and the rule, and nothing is stored (nor any budget
// spent). The execution is durable on return.
func (s *Store) StartCurrent(ctx context.Context, runbook string, runner Runner, newExecution func(version string) *sbruntime.Execution) (*sbruntime.Execution, error) {
	fresh := false
	for attempt := 0; ; attempt++ {
		version, err := s.cachedVersion(ctx, runbook, fresh)
		if err != nil {
			return nil, err
		}
		e := newExecution(version)
		// Before the budget: a refused input spends nothing and stores nothing.
		if err := s.ValidateInput(ctx, runbook, version, e.Input); err != nil {
			if errors.Is(err, sbruntime.ErrNotFound) && !fresh {
				fresh = true // a stale cached version: read the current one
				continue
			}
			return nil, err
		}
		if err := s.budgets.AdmitStart(ctx, runbook, version); err != nil {
			return nil, s.refuseStart(ctx, e, err)
		}
		err = s.createOn(ctx, runner, e)
		var changed *versionChanged
		if errors.As(err, &changed) && attempt < 5 {
			s.current.set(runbook, changed.current)
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

// createOn stores e; when runner (which may be nil) has a free worker, it
// claims e in the same txn and runs it at once.
func (s *Store) createOn(ctx context.Context, runner Runner, e *sbruntime.Execution) error {
	var r Reservation
	if runner != nil {
		r = runner.Reserve(s, e.ID)
	}
	claim, err := s.create(ctx, e, true, r)
	if r == nil {
		return err
	}
	if err != nil {
		r.Release()
		if errors.Is(err, rpctypes.ErrLeaseNotFound) {
			// The session expired under us: store it for whoever runs next.
			_, err = s.create(ctx, e, true, nil)
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
