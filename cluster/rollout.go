package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/starbook/starbook"
	sbruntime "github.com/starbook/starbook/runtime"
)

// Canary rollouts. A runbook's latest rollout is one key, rollouts/<name>.
// While it is active, runbooks/<name>/current stays the stable version (a
// runbook never lacks a current version) and a share of new starts run the
// canary version instead (StartCurrent, Triggers.Start). Every transition is
// one txn that compares the rollout key's mod revision (and, to promote, the
// current pointer) and writes the rollout, the pointer when it moves, and
// the transition's audit record: of concurrent applies, promotions and
// aborts exactly one wins, the others fail with sbruntime.ErrConflict.

func decodeRollout(data []byte) (*starbook.Rollout, error) {
	var r starbook.Rollout
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("decode rollout: %w", err)
	}
	return &r, nil
}

// StoredRollout is a rollout and the mod revision of its key when read.
type StoredRollout struct {
	Rollout *starbook.Rollout
	Rev     int64
}

// Rollout returns runbook's latest rollout; sbruntime.ErrNotFound when it
// never had one.
func (s *Store) Rollout(ctx context.Context, runbook string) (StoredRollout, error) {
	resp, err := s.cli.Get(ctx, s.k.rollout(runbook))
	if err != nil {
		return StoredRollout{}, fmt.Errorf("read rollout %s: %w", runbook, err)
	}
	if len(resp.Kvs) == 0 {
		return StoredRollout{}, fmt.Errorf("runbook %q has no rollout: %w", runbook, sbruntime.ErrNotFound)
	}
	r, err := decodeRollout(resp.Kvs[0].Value)
	if err != nil {
		return StoredRollout{}, err
	}
	return StoredRollout{Rollout: r, Rev: resp.Kvs[0].ModRevision}, nil
}

// ActiveRollouts returns every active rollout.
func (s *Store) ActiveRollouts(ctx context.Context) ([]StoredRollout, error) {
	resp, err := s.cli.Get(ctx, s.k.Rollouts(), clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("list rollouts: %w", err)
	}
	var out []StoredRollout
	for _, kv := range resp.Kvs {
		r, err := decodeRollout(kv.Value)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", kv.Key, err)
		}
		if r.Active() {
			out = append(out, StoredRollout{Rollout: r, Rev: kv.ModRevision})
		}
	}
	return out, nil
}

// RolloutCounts counts the runs of r's canary version created since r
// started, from their stored records (so a new leader counts what the old
// one did).
func (s *Store) RolloutCounts(ctx context.Context, r *starbook.Rollout) (starbook.RolloutCounts, error) {
	var c starbook.RolloutCounts
	var zero [10]byte
	from := s.k.execution(ulid.MustNew(ulid.Timestamp(r.StartedAt), bytesReader(zero[:])).String())
	end := clientv3.GetPrefixRangeEnd(s.k.executions())
	for {
		resp, err := s.cli.Get(ctx, from, clientv3.WithRange(end), clientv3.WithLimit(listChunk))
		if err != nil {
			return c, fmt.Errorf("count canary runs of %s: %w", r.Runbook, err)
		}
		for _, kv := range resp.Kvs {
			e, err := s.k.decodeExecution(kv)
			if err != nil {
				return c, err
			}
			if e.Runbook != r.Runbook || e.Version != r.Canary {
				continue
			}
			c.Started++
			switch e.Status {
			case sbruntime.StatusCompleted:
				c.Ended++
			case sbruntime.StatusFailed, sbruntime.StatusStuck: // failed includes compensation_failed
				c.Ended++
				c.Failed++
			case sbruntime.StatusCancelled:
			default:
				c.InFlight++
			}
		}
		if !resp.More || len(resp.Kvs) == 0 {
			return c, nil
		}
		from = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
}

// EndRollout ends runbook's active rollout with transition (promoted,
// rolled_back or aborted) by by for reason. With rev > 0 it ends only the
// rollout read at that revision. To promote, the canary becomes the current
// version in the same txn. It fails with sbruntime.ErrConflict when the
// rollout is not active or changed meanwhile.
func (s *Store) EndRollout(ctx context.Context, runbook, transition, by, reason string, rev int64) (*starbook.Rollout, error) {
	state := map[string]string{starbook.TransitionPromoted: starbook.RolloutPromoted,
		starbook.TransitionRolledBack: starbook.RolloutRolledBack, starbook.TransitionAborted: starbook.RolloutAborted}[transition]
	if state == "" {
		return nil, fmt.Errorf("end rollout %s: unknown transition %q", runbook, transition)
	}
	cur, err := s.Rollout(ctx, runbook)
	if err != nil {
		return nil, err
	}
	r := cur.Rollout
	if !r.Active() {
		return nil, sbruntime.Conflictf("runbook %s: no active rollout (the latest was %s)", runbook, r.State)
	}
	if rev > 0 && cur.Rev != rev {
		return nil, sbruntime.Conflictf("runbook %s: the rollout changed meanwhile", runbook)
	}
	now := s.now().UTC()
	r.State, r.EndedAt, r.EndedBy, r.Reason = state, &now, by, reason
	data, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	rk, ck := s.k.rollout(runbook), s.k.runbookCurrent(runbook)
	cmps := []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(rk), "=", cur.Rev),
		clientv3.Compare(clientv3.Value(ck), "=", r.Stable)}
	ops := []clientv3.Op{clientv3.OpPut(rk, string(data))}
	if transition == starbook.TransitionPromoted {
		ops = append(ops, clientv3.OpPut(ck, r.Canary))
	}
	detail := fmt.Sprintf("stable %s canary %s: %s", r.Stable, r.Canary, reason)
	audit, err := s.rolloutAuditOp(now, by, "rollout."+transition, runbook, detail)
	if err != nil {
		return nil, err
	}
	tx, err := s.cli.Txn(ctx).If(cmps...).Then(append(ops, audit)...).Commit()
	if err != nil {
		return nil, fmt.Errorf("end rollout %s: %w", runbook, err)
	}
	if !tx.Succeeded {
		return nil, sbruntime.Conflictf("runbook %s: the rollout or the current version changed meanwhile", runbook)
	}
	s.rolloutFeed.transitioned(r, transition)
	return r, nil
}

// rolloutAuditOp is the put of an audit record of a rollout transition,
// written in the transition's txn.
func (s *Store) rolloutAuditOp(at time.Time, by, action, runbook, detail string) (clientv3.Op, error) {
	return s.auditOp(&starbook.AuditRecord{Time: at, Actor: by, Action: action, Runbook: runbook, Detail: detail, Outcome: starbook.AuditOK})
}

// CanaryResult is what PutCanary did with one bundle.
type CanaryResult struct {
	Unchanged bool              // the version was current already, or already its active canary
	Rollout   *starbook.Rollout // the rollout started; nil when the runbook was new and simply applied
}

// PutCanary stores each bundle's version and starts a rollout of it
// against its runbook's current version, all in one txn: current stays the
// stable version. A runbook without a current version is simply applied (it
// has nothing to be a canary of). A runbook with an active rollout of
// another version fails the whole apply with sbruntime.ErrConflict; nothing
// is stored on any error.
func (s *Store) PutCanary(ctx context.Context, bundles []*sbruntime.Bundle, spec starbook.CanarySpec, by string) ([]CanaryResult, time.Time, error) {
	if err := spec.Validate(); err != nil {
		return nil, time.Time{}, err
	}
	for attempt := 0; ; attempt++ {
		out, created, ok, err := s.putCanary(ctx, bundles, spec, by)
		if err != nil || ok {
			return out, created, err
		}
		if attempt == 4 {
			return nil, created, sbruntime.Conflictf("apply --canary: runbooks changed meanwhile, five times; try again")
		}
	}
}

// putCanary is one attempt of PutCanary; ok is false when a compare failed.
func (s *Store) putCanary(ctx context.Context, bundles []*sbruntime.Bundle, spec starbook.CanarySpec, by string) (out []CanaryResult, created time.Time, ok bool, err error) {
	created = s.now().UTC()
	out = make([]CanaryResult, len(bundles))
	var cmps []clientv3.Cmp
	var ops []clientv3.Op
	var started []*starbook.Rollout
	size := 0
	for i, b := range bundles {
		ck, rk := s.k.runbookCurrent(b.Name), s.k.rollout(b.Name)
		resp, err := s.cli.Txn(ctx).Then(clientv3.OpGet(ck), clientv3.OpGet(rk)).Commit()
		if err != nil {
			return nil, created, false, fmt.Errorf("read runbook %s: %w", b.Name, err)
		}
		curKvs, rKvs := resp.Responses[0].GetResponseRange().Kvs, resp.Responses[1].GetResponseRange().Kvs
		var prev *starbook.Rollout
		var prevRev int64
		if len(rKvs) > 0 {
			if prev, err = decodeRollout(rKvs[0].Value); err != nil {
				return nil, created, false, err
			}
			prevRev = rKvs[0].ModRevision
		}
		switch {
		case len(curKvs) > 0 && string(curKvs[0].Value) == b.Version:
			out[i].Unchanged = true
			continue
		case prev.Active() && prev.Canary == b.Version:
			out[i] = CanaryResult{Unchanged: true, Rollout: prev}
			continue
		case prev.Active():
			return nil, created, false, sbruntime.Conflictf("runbook %s: rollout of %s (%v%%) is active; promote or abort it first",
				b.Name, prev.Canary, prev.Percent)
		}
		data, err := json.Marshal(storedBundle{Bundle: *b, CreatedAt: created})
		if err != nil {
			return nil, created, false, err
		}
		if size += len(data); size > maxRecordBytes {
			return nil, created, false, sbruntime.Inputf("runbooks total %d bytes, over the %d-byte limit of one apply", size, maxRecordBytes)
		}
		vk := s.k.runbookVersion(b.Name, b.Version)
		ops = append(ops, clientv3.OpTxn([]clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(vk), "=", 0)},
			[]clientv3.Op{clientv3.OpPut(vk, string(data))}, nil))
		cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(rk), "=", prevRev))
		if len(curKvs) == 0 {
			cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(ck), "=", 0))
			ops = append(ops, clientv3.OpPut(ck, b.Version))
			continue
		}
		cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(ck), "=", curKvs[0].ModRevision))
		r := &starbook.Rollout{Runbook: b.Name, Stable: string(curKvs[0].Value), Canary: b.Version, Percent: spec.Percent,
			CanaryRuns: spec.Runs, MaxFailureRate: spec.MaxFailureRate, State: starbook.RolloutActive, StartedAt: created, By: by}
		rdata, err := json.Marshal(r)
		if err != nil {
			return nil, created, false, err
		}
		audit, err := s.rolloutAuditOp(created, by, "rollout."+starbook.TransitionStarted, b.Name,
			fmt.Sprintf("stable %s canary %s: %v%% of new runs, promote after %d runs with failure rate <= %v",
				r.Stable, r.Canary, r.Percent, r.CanaryRuns, r.MaxFailureRate))
		if err != nil {
			return nil, created, false, err
		}
		ops = append(ops, clientv3.OpPut(rk, string(rdata)), audit)
		out[i].Rollout = r
		started = append(started, r)
	}
	if len(ops) == 0 {
		return out, created, true, nil
	}
	tx, err := s.cli.Txn(ctx).If(cmps...).Then(ops...).Commit()
	if err != nil {
		return nil, created, false, fmt.Errorf("store runbooks: %w", err)
	}
	if !tx.Succeeded {
		return nil, created, false, nil
	}
	for _, r := range started {
		s.rolloutFeed.transitioned(r, starbook.TransitionStarted)
	}
	return out, created, true, nil
}

// rolloutFeed tells this process's listeners of the rollout transitions
// committed through its store (metrics count them).
type rolloutFeed struct {
	mu        sync.Mutex
	listeners map[*func(*starbook.Rollout, string)]struct{}
}

func (f *rolloutFeed) transitioned(r *starbook.Rollout, transition string) {
	f.mu.Lock()
	var fns []func(*starbook.Rollout, string)
	for fn := range f.listeners {
		fns = append(fns, *fn)
	}
	f.mu.Unlock()
	for _, fn := range fns {
		fn(r, transition)
	}
}

// OnRollout calls fn with every rollout transition committed through this
// store (started, promoted, rolled_back, aborted), right after its txn, in
// the goroutine that committed it: fn must be quick. Transitions other nodes
// commit are not reported. The returned func stops the calls.
func (s *Store) OnRollout(fn func(r *starbook.Rollout, transition string)) (stop func()) {
	key := &fn
	s.rolloutFeed.mu.Lock()
	defer s.rolloutFeed.mu.Unlock()
	if s.rolloutFeed.listeners == nil {
		s.rolloutFeed.listeners = map[*func(*starbook.Rollout, string)]struct{}{}
	}
	s.rolloutFeed.listeners[key] = struct{}{}
	return func() {
		s.rolloutFeed.mu.Lock()
		defer s.rolloutFeed.mu.Unlock()
		delete(s.rolloutFeed.listeners, key)
	}
}
