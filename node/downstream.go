package node

import (
	"context"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// syncGuards brings the node's downstream guards up to date with the store:
// live nodes (each takes its share of every host's limits), the limits the
// current runbook versions declare, and the shared circuits.
func (n *Node) syncGuards(ctx context.Context) error {
	if err := n.countNodes(ctx); err != nil {
		return err
	}
	if err := n.loadHTTPLimits(ctx); err != nil {
		return err
	}
	return n.loadCircuits(ctx)
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

func (n *Node) loadHTTPLimits(ctx context.Context) error {
	limits, err := n.store.HTTPLimits(ctx)
	if err != nil {
		return err
	}
	n.cfg.Guards.SetDeclared(limits)
	return nil
}

// watchGuards keeps the guards up to date until ctx is done: node
// registrations, current runbook versions and circuit records.
func (n *Node) watchGuards(ctx context.Context) {
	k := n.store.Keys()
	n.watchKeys(ctx, []string{k.Nodes(), k.Runbooks(), k.Circuits()}, func(events []*clientv3.Event) {
		if events == nil {
			if err := n.syncGuards(ctx); err != nil && ctx.Err() == nil {
				n.log.Warn("downstream guards", "err", err)
			}
			return
		}
		var nodes, limits bool
		for _, ev := range events {
			key := string(ev.Kv.Key)
			switch {
			case strings.HasPrefix(key, k.Nodes()):
				nodes = true
			case strings.HasPrefix(key, k.Runbooks()) && strings.HasSuffix(key, "/current"):
				limits = true
			default:
				if c, ok := k.DecodeCircuit(ev.Kv, ev.Type == clientv3.EventTypeDelete); ok {
					n.cfg.Guards.Observe(c.Host, c.Circuit, c.Revision)
				}
			}
		}
		var err error
		if nodes {
			err = n.countNodes(ctx)
		}
		if limits && err == nil {
			err = n.loadHTTPLimits(ctx)
			if err == nil { // a newly limited host may have a circuit open already
				err = n.loadCircuits(ctx)
			}
		}
		if err != nil && ctx.Err() == nil {
			n.log.Warn("downstream guards", "err", err)
		}
	})
}
