package node

import (
	"container/heap"
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/starbook/starbook/cluster"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"golang.org/x/sync/errgroup"
)

// leaderLoop campaigns for leadership and, while leader, does the work only
// one node may do. Leadership starts in lead and ends when lead returns.
func (n *Node) leaderLoop(ctx context.Context) {
	for ctx.Err() == nil {
		election := concurrency.NewElection(n.sess(), n.store.Keys().Election())
		if err := election.Campaign(ctx, n.cfg.ID); err != nil {
			if ctx.Err() == nil {
				n.log.Warn("campaign for leader", "err", err)
				select {
				case <-ctx.Done():
				case <-time.After(time.Second):
				}
			}
			continue
		}
		n.log.Info("became leader")
		n.lead(ctx)
		resignCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		_ = election.Resign(resignCtx)
		cancel()
		n.log.Info("leadership ended")
	}
}

// IsLeader reports whether this node currently leads.
func (n *Node) IsLeader(ctx context.Context) bool {
	return n.store.IsLeader(ctx, n.cfg.ID)
}

// lead runs the leader's duties until ctx is done or the session ends.
func (n *Node) lead(ctx context.Context) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-n.sess().Done():
			cancel()
		case <-ctx.Done():
		}
	}()
	var tasks sync.WaitGroup
	defer func() { cancel(); tasks.Wait() }()
	for _, task := range n.cfg.LeaderTasks {
		tasks.Go(func() { task(ctx) })
	}
	tasks.Go(func() { n.runTriggers(ctx) })
	tasks.Go(func() { n.runRollouts(ctx) })
	for ctx.Err() == nil {
		if err := n.fireTimers(ctx); err != nil && ctx.Err() == nil {
			n.log.Warn("timers", "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(500 * time.Millisecond):
			}
		}
	}
}

// timerHeap orders timer keys by due time.
type timerHeap []timerEntry

type timerEntry struct {
	due time.Time
	key string
}

func (h timerHeap) Len() int { return len(h) }
func (h timerHeap) Less(i, j int) bool {
	if !h[i].due.Equal(h[j].due) {
		return h[i].due.Before(h[j].due)
	}
	return h[i].key < h[j].key
}
func (h timerHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *timerHeap) Push(x any)   { *h = append(*h, x.(timerEntry)) }
func (h *timerHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}

// fireTimers loads the durable timers, watches for new ones and fires each
// when due. A timer's key holds no data: firing resolves the wait it points at.
func (n *Node) fireTimers(ctx context.Context) error {
	k := n.store.Keys()
	resp, err := n.store.Client().Get(ctx, k.Timers(), clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return fmt.Errorf("list timers: %w", err)
	}
	live := map[string]bool{}
	h := &timerHeap{}
	add := func(key string) {
		due, _, _, err := k.ParseTimer(key)
		if err != nil {
			n.log.Warn("skip timer", "err", err)
			return
		}
		if !live[key] {
			live[key] = true
			heap.Push(h, timerEntry{due: due, key: key})
		}
	}
	for _, kv := range resp.Kvs {
		add(string(kv.Key))
	}
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	watch := n.store.Client().Watch(wctx, k.Timers(), clientv3.WithPrefix(), clientv3.WithRev(resp.Header.Revision+1))
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		for h.Len() > 0 && !live[(*h)[0].key] {
			heap.Pop(h) // deleted meanwhile
		}
		var due []string
		now := n.cfg.Now()
		for h.Len() > 0 && !(*h)[0].due.After(now) {
			e := heap.Pop(h).(timerEntry)
			if live[e.key] {
				due = append(due, e.key)
				delete(live, e.key)
			}
		}
		if len(due) > 0 {
			n.fire(ctx, due)
			continue
		}
		wait := time.Hour
		if h.Len() > 0 {
			wait = (*h)[0].due.Sub(now)
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return nil
		case wr, ok := <-watch:
			if !ok || wr.Err() != nil {
				return cluster.WatchErr(wr, ok)
			}
			for _, ev := range wr.Events {
				key := string(ev.Kv.Key)
				if ev.Type == clientv3.EventTypePut {
					add(key)
				} else {
					delete(live, key)
				}
			}
		case <-timer.C:
		}
	}
}

// fire resolves the waits of due timers, a few at a time.
func (n *Node) fire(ctx context.Context, keys []string) {
	var g errgroup.Group
	g.SetLimit(16)
	var mu sync.Mutex
	for _, key := range keys {
		g.Go(func() error {
			if err := n.store.FireTimer(ctx, key); err != nil && ctx.Err() == nil {
				mu.Lock()
				n.log.Warn("fire timer", "timer", key, "err", err)
				mu.Unlock()
			}
			return nil
		})
	}
	_ = g.Wait()
}
