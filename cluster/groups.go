package cluster

import (
	"context"
	"errors"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"
	"golang.org/x/sync/errgroup"

	sbruntime "github.com/starbook/starbook/runtime"
	"github.com/starbook/starbook/triggers"
)

// coalesce stores the starts of coalescing alert triggers (Start.Group):
// per group, in order, each is delivered to the group's live run as its
// signal, or, while the group has no run, the first firing one starts it
// with the group key (created if absent, so that two nodes never both
// start one) and the rest are delivered to that run. Groups are handled in
// parallel; a group's deliveries share txns.
func (t *Triggers) coalesce(ctx context.Context, items []*item) error {
	type group struct {
		key   string
		items []*item
	}
	var groups []*group
	of := map[string]*group{}
	firstOf := map[string]*item{}
	for _, it := range items {
		it.out = triggers.Started{Runbook: it.s.Runbook}
		if it.dedupKey != "" {
			if first, ok := firstOf[it.dedupKey]; ok {
				// The same key twice in one request: the first one wins.
				it.out.Status, it.out.Reason = triggers.StatusDuplicate, "same key earlier in this request"
				defer func() { it.out.ID = first.out.ID }()
				continue
			}
			firstOf[it.dedupKey] = it
		}
		gk := t.s.k.group(it.s.Runbook, it.s.Group.Key)
		g := of[gk]
		if g == nil {
			g = &group{key: gk}
			of[gk] = g
			groups = append(groups, g)
		}
		g.items = append(g.items, it)
	}
	eg, ectx := errgroup.WithContext(ctx)
	eg.SetLimit(8)
	for _, g := range groups {
		eg.Go(func() error { return t.coalesceGroup(ectx, g.key, g.items) })
	}
	return eg.Wait()
}

// groupRun is an alert group's live run as a node last read its key.
type groupRun struct {
	id  string
	rev int64 // the group key's mod revision
}

// coalesceGroup stores the starts of one group, in order; see coalesce.
func (t *Triggers) coalesceGroup(ctx context.Context, gk string, pending []*item) error {
	for attempts := 0; len(pending) > 0; attempts++ {
		if attempts > 100 {
			return fmt.Errorf("coalesce alerts of group %s: too much contention on its key", gk)
		}
		// The group's run as this node last read it: every delivery is
		// fenced on the key's revision, so a stale one fails (errFenced)
		// and is read again. In a storm this saves a read per group and
		// payload.
		var id string
		var rev int64
		if g, ok := t.groupRuns.Load(gk); ok {
			id, rev = g.(groupRun).id, g.(groupRun).rev
		} else {
			resp, err := t.s.cli.Get(ctx, gk)
			if err != nil {
				return fmt.Errorf("read alert group %s: %w", gk, err)
			}
			if len(resp.Kvs) > 0 {
				id, rev = string(resp.Kvs[0].Value), resp.Kvs[0].ModRevision
				t.groupRuns.Store(gk, groupRun{id: id, rev: rev})
			}
		}
		if id == "" {
			// No live run: resolved alerts reach nobody; the first firing
			// one starts the group's run.
			for len(pending) > 0 && pending[0].s.Group.DeliverOnly {
				pending[0].out.Status = triggers.StatusNoRun
				pending = pending[1:]
			}
			if len(pending) == 0 {
				return nil
			}
			first := pending[0]
			first.groupKey, first.groupTaken = gk, false
			if err := t.start(ctx, []*item{first}); err != nil {
				return err
			}
			if !first.groupTaken {
				pending = pending[1:] // started, queued, dropped or a duplicate
			}
			continue
		}
		outs := make([]*outgoing, len(pending))
		var err error
		for i, it := range pending {
			o := &outgoing{name: it.s.Group.Signal,
				result: sbruntime.SignalResult(it.s.Group.Signal, it.s.Group.Data, "alertmanager", t.now())}
			if it.dedupKey != "" {
				if o.lease, err = t.lease(ctx, it.dedupTTL); err != nil {
					return err
				}
				o.dedup = it.dedupKey
			}
			outs[i] = o
		}
		err = t.s.deliver(ctx, id, outs, triggers.MaxCoalescedSignals,
			[]clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(gk), "=", rev)})
		var ended *endedError
		switch {
		case err == nil:
		case errors.Is(err, errFenced):
			t.groupRuns.Delete(gk) // the group moved on: read it again
		case errors.As(err, &ended), errors.Is(err, sbruntime.ErrNotFound):
			t.groupRuns.Delete(gk)
			// The run ended without releasing its group (its end txn
			// deletes the key: this is defensive): release it here, and
			// the next alert starts a new run.
			if _, err := t.s.cli.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(gk), "=", rev)).
				Then(clientv3.OpDelete(gk)).Commit(); err != nil {
				return fmt.Errorf("release alert group %s of ended run %s: %w", gk, id, err)
			}
			t.log.Warn("alert group held by an ended run: released", "group", gk, "execution", id)
		default:
			t.forgetLeases()
			return fmt.Errorf("deliver alerts to run %s of group %s: %w", id, gk, err)
		}
		left := pending[:0:0]
		for i, it := range pending {
			o := outs[i]
			switch {
			case !o.done:
				left = append(left, it)
			case o.dup:
				it.out = triggers.Started{Runbook: it.s.Runbook, ID: id, Status: triggers.StatusDuplicate}
			case o.overflow:
				it.out = triggers.Started{Runbook: it.s.Runbook, ID: id, Status: triggers.StatusOverflow,
					Reason: fmt.Sprintf("run %s holds %d unconsumed %s signals", id, triggers.MaxCoalescedSignals, o.name)}
			default:
				it.out = triggers.Started{Runbook: it.s.Runbook, ID: id, Status: triggers.StatusCoalesced}
			}
		}
		pending = left
	}
	return nil
}
