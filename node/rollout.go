package node

import (
	"context"
	"errors"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	sbruntime "github.com/starbook/starbook/runtime"
)

// runRollouts decides the active canary rollouts while this node leads:
// it promotes one whose canary ran enough runs within its failure bound and
// rolls back one whose failures exceed it. It counts from the stored
// execution records, so a new leader picks up where the last one stopped.
// It looks when a run ends through this node, when a rollout key changes,
// and every RolloutTick (for runs that end on other nodes).
func (n *Node) runRollouts(ctx context.Context) {
	wake := make(chan struct{}, 1)
	poke := func() {
		select {
		case wake <- struct{}{}:
		default:
		}
	}
	stop := n.store.OnEnd(func(*sbruntime.Execution) { poke() })
	defer stop()
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	watch := n.store.Client().Watch(wctx, n.store.Keys().Rollouts(), clientv3.WithPrefix())
	tick := time.NewTicker(n.cfg.RolloutTick)
	defer tick.Stop()
	for {
		if err := n.decideRollouts(ctx); err != nil && ctx.Err() == nil {
			n.log.Warn("rollouts", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-wake:
		case <-tick.C:
			if watch == nil { // closed (etcd lost its leader): watch again
				watch = n.store.Client().Watch(wctx, n.store.Keys().Rollouts(), clientv3.WithPrefix())
			}
		case _, ok := <-watch:
			if !ok {
				watch = nil
			}
		}
	}
}

// decideRollouts counts the canary runs of every active rollout and ends
// those their counts decide. A rollout that changed since it was read (a
// person promoted or aborted it) is left alone.
func (n *Node) decideRollouts(ctx context.Context) error {
	active, err := n.store.ActiveRollouts(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, sr := range active {
		r := sr.Rollout
		counts, err := n.store.RolloutCounts(ctx, r)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		transition, reason := r.Decide(counts)
		if transition == "" {
			continue
		}
		_, err = n.store.EndRollout(ctx, r.Runbook, transition, "leader", reason, sr.Rev)
		switch {
		case errors.Is(err, sbruntime.ErrConflict):
			n.log.Info("rollout changed before the leader ended it", "runbook", r.Runbook, "transition", transition)
		case err != nil:
			errs = append(errs, err)
		default:
			n.log.Info("rollout "+transition, "runbook", r.Runbook, "canary", r.Canary, "stable", r.Stable, "reason", reason)
		}
	}
	return errors.Join(errs...)
}
