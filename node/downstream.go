package node

import (
	"context"
	"slices"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/starbook/starbook/downstream"
)

// syncGuards brings the node's downstream guards up to date with the store:
// live nodes (each takes its share of every host's limits), the limits the
// current runbook versions declare (returned, by runbook), and the shared
// circuits.
func (n *Node) syncGuards(ctx context.Context) (map[string][]downstream.Limit, error) {
	if err := n.countNodes(ctx); err != nil {
		return nil, err
	}
	byRunbook, err := n.store.HTTPLimits(ctx)
	if err != nil {
		return nil, err
	}
	setDeclared(n.cfg.Guards, byRunbook)
	return byRunbook, n.loadCircuits(ctx)
}

// setDeclared gives g the limits of every runbook, in runbook order.
func setDeclared(g *downstream.Guards, byRunbook map[string][]downstream.Limit) {
	names := make([]string, 0, len(byRunbook))
	for name := range byRunbook {
		names = append(names, name)
	}
	slices.Sort(names)
	var all []downstream.Limit
	for _, name := range names {
		all = append(all, byRunbook[name]...)
	}
	g.SetDeclared(all)
}

// loadCircuits applies the stored circuit records to the guarded hosts,
// and closes the circuits of those without one.
func (n *Node) loadCircuits(ctx context.Context) error {
	g := n.cfg.Guards
	circuits, rev, err := n.store.Circuits(ctx)
	if err != nil {
		return err
	}
	open := map[string]bool{}
	for _, c := range circuits {
		open[c.Host] = true
		g.Observe(c.Host, c.Circuit, c.Revision)
	}
	for _, host := range g.Hosts() { // closed while the watch was down
		if !open[host] {
			g.Observe(host, nil, rev)
		}
	}
	return nil
}

func (n *Node) countNodes(ctx context.Context) error {
	count, err := n.store.NodeCount(ctx)
	if err != nil {
		return err
	}
	n.cfg.Guards.SetNodes(count)
	return nil
}

// watchGuards keeps the guards up to date until ctx is done: node
// registrations, current runbook versions (an apply re-reads that runbook's
// declarations only) and circuit records.
func (n *Node) watchGuards(ctx context.Context) {
	k := n.store.Keys()
	var byRunbook map[string][]downstream.Limit
	warn := func(err error) {
		if err != nil && ctx.Err() == nil {
			n.log.Warn("downstream guards", "err", err)
		}
	}
	n.watchKeys(ctx, []string{k.Nodes(), k.Runbooks(), k.Circuits()}, func(events []*clientv3.Event) {
		if events == nil {
			all, err := n.syncGuards(ctx)
			if err == nil {
				byRunbook = all
			}
			warn(err)
			return
		}
		nodes := false
		var changed []string
		for _, ev := range events {
			key := string(ev.Kv.Key)
			if strings.HasPrefix(key, k.Nodes()) {
				nodes = true
			} else if name, ok := k.CurrentOf(key); ok {
				changed = append(changed, name)
			} else if c, ok := k.DecodeCircuit(ev.Kv, ev.Type == clientv3.EventTypeDelete); ok {
				n.cfg.Guards.Observe(c.Host, c.Circuit, c.Revision)
			}
		}
		if nodes {
			warn(n.countNodes(ctx))
		}
		if len(changed) == 0 || byRunbook == nil {
			return
		}
		for _, name := range changed {
			limits, err := n.store.HTTPLimitsOf(ctx, name)
			if err != nil { // read everything again rather than keep a part
				all, err := n.syncGuards(ctx)
				if err == nil {
					byRunbook = all
				}
				warn(err)
				return
			}
			if len(limits) == 0 {
				delete(byRunbook, name)
			} else {
				byRunbook[name] = limits
			}
		}
		setDeclared(n.cfg.Guards, byRunbook)
		warn(n.loadCircuits(ctx)) // a newly limited host may have a circuit open already
	})
}
