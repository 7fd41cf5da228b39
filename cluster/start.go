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

// createReq is the txn that stores e (encoded as data) and makes it runnable.
// When current is set, it also checks that e.Version is still its runbook's
// current version; with a slot (not nil), its node claims e in the same txn.
func (s *Store) createReq(e *sbruntime.Execution, data []byte, current bool, sl *slot) *txnReq {
	ek, ck := s.k.execution(e.ID), s.k.runbookCurrent(e.Runbook)
	cmps := append(make([]*etcdserverpb.Compare, 0, 2), createRevision([]byte(ek), 0))
	if current {
		cmps = append(cmps, valueIs([]byte(ck), e.Version))
	}
	pbOps := []*etcdserverpb.RequestOp{putOp([]byte(ek), data), putOp([]byte(s.k.runnable(e.ID)), nil)}
	ops := s.activeOps(e)
	if sl != nil {
		ops = append(ops, sl.claimOp(s.k))
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

// create stores e as createReq does and, when claimed in sl, returns the
// claim: the execution has no history and no waits yet.
func (s *Store) create(ctx context.Context, e *sbruntime.Execution, current bool, sl *slot) (*Claim, error) {
	data, err := s.encodeNew(ctx, e)
	if err != nil {
		return nil, err
	}
	res, err := s.batch.do(ctx, s.createReq(e, data, current, sl))
	if err != nil {
		return nil, fmt.Errorf("create execution %s: %w", e.ID, err)
	}
	if sl == nil {
		return nil, nil
	}
	return s.newClaim(e, res.rev), nil
}

// startCurrent creates an execution of runbook's current version, built by
// newExecution, and claims it for n when n has a free worker. It starts
// again on the new version if the runbook was applied meanwhile.
func (s *Store) startCurrent(ctx context.Context, runbook string, n *Node, newExecution func(version string) *sbruntime.Execution) (*sbruntime.Execution, error) {
	fresh := false
	for attempt := 0; ; attempt++ {
		version, err := s.cachedVersion(ctx, runbook, fresh)
		if err != nil {
			return nil, err
		}
		e := newExecution(version)
		err = n.create(ctx, s, e)
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

// create stores e; when n (which may be nil) runs and has a free worker, it
// claims e in the same txn and runs it at once.
func (n *Node) create(ctx context.Context, s *Store, e *sbruntime.Execution) error {
	sl := n.reserve(s, e.ID)
	claim, err := s.create(ctx, e, true, sl)
	if sl == nil {
		return err
	}
	if err != nil {
		sl.release()
		if errors.Is(err, rpctypes.ErrLeaseNotFound) {
			// The session expired under us: store it for whoever runs next.
			_, err = s.create(ctx, e, true, nil)
		}
		return err
	}
	n.runs.run(func() { sl.run(claim) })
	return nil
}

// newClaim is the claim of a new execution claimed in its create txn at rev.
func (s *Store) newClaim(e *sbruntime.Execution, rev int64) *Claim {
	return &Claim{s: s, Execution: e, History: map[string]*sbruntime.Event{}, Waits: map[string]*sbruntime.Wait{},
		rev: rev, runnableRev: rev, execRev: rev, fresh: true}
}
