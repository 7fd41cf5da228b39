package node

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/starbook/starbook/cluster"
	"github.com/starbook/starbook/triggers"
)

// runTriggers is the leader's trigger work: it fires cron schedules and
// starts queued runs as their runbook's policy admits them, until ctx is done
// (leadership ended).
func (n *Node) runTriggers(ctx context.Context) {
	tr := cluster.NewTriggers(n.store, n.clock().Now, n.log)
	var wg sync.WaitGroup
	wg.Go(func() { n.runCron(ctx, tr) })
	wg.Go(func() { n.runQueues(ctx, tr) })
	wg.Go(func() { n.runPauses(ctx) })
	wg.Wait()
}

func (n *Node) clock() triggers.Clock {
	if n.cfg.Clock != nil {
		return n.cfg.Clock
	}
	return nowClock{n.cfg.Now}
}

// nowClock is real timers on a node's Now.
type nowClock struct{ now func() time.Time }

func (c nowClock) Now() time.Time                          { return c.now() }
func (c nowClock) NewTimer(d time.Duration) triggers.Timer { return triggers.RealClock{}.NewTimer(d) }

// runCron runs the cron scheduler, reloading runbooks when any is applied,
// paused or resumed; a paused runbook's ticks are kept as dead letters.
func (n *Node) runCron(ctx context.Context, tr *cluster.Triggers) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	changed := n.watchChanged(ctx, &wg, n.store.Keys().Runbooks(), n.store.Keys().Pauses())
	sched := &triggers.Scheduler{Clock: n.clock(), Store: n.cronStore(tr), Index: tr.Index(), Logger: n.log.With("duty", "cron"),
		Changed: changed, DeadLetters: tr}
	_ = sched.Run(ctx)
}

// queueSweep is how often the leader looks at every queue, in case an event
// was missed; ends of runs and new queue entries are watched.
const queueSweep = 30 * time.Second

// runQueues promotes queued runs: when a slot is released, when a run is
// queued, when a rate window opens, and on a periodic sweep.
func (n *Node) runQueues(ctx context.Context, tr *cluster.Triggers) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	k := n.store.Keys()
	var mu sync.Mutex
	todo := map[string]bool{} // runbooks to look at
	sweep := true
	wake := make(chan struct{}, 1)
	poke := func() {
		select {
		case wake <- struct{}{}:
		default:
		}
	}
	wg.Go(func() {
		n.watchKeys(ctx, []string{k.Slots(), k.AllQueued()}, func(evs []*clientv3.Event) {
			mu.Lock()
			if evs == nil {
				sweep = true // (re)started: events may have been missed
			}
			for _, ev := range evs {
				key := string(ev.Kv.Key)
				switch {
				case ev.Type == clientv3.EventTypeDelete && strings.HasPrefix(key, k.Slots()):
					todo[cluster.RunbookOf(key, k.Slots())] = true
				case ev.Type == clientv3.EventTypePut && strings.HasPrefix(key, k.AllQueued()):
					todo[cluster.RunbookOf(key, k.AllQueued())] = true
				}
			}
			mu.Unlock()
			poke()
		})
	})
	clock := n.clock()
	next := map[string]time.Time{} // rate-limited runbooks: when to look again
	lastSweep := time.Time{}
	for ctx.Err() == nil {
		now := clock.Now()
		mu.Lock()
		if sweep || now.Sub(lastSweep) >= queueSweep {
			sweep = false
			mu.Unlock()
			resp, err := n.store.Client().Get(ctx, k.AllQueued(), clientv3.WithPrefix(), clientv3.WithKeysOnly())
			mu.Lock()
			if err != nil {
				if ctx.Err() == nil {
					n.log.Warn("list queued runs", "err", err)
				}
			} else {
				lastSweep = now
				for _, kv := range resp.Kvs {
					todo[cluster.RunbookOf(string(kv.Key), k.AllQueued())] = true
				}
			}
		}
		for rb, at := range next {
			if !at.After(now) {
				todo[rb] = true
				delete(next, rb)
			}
		}
		work := todo
		todo = map[string]bool{}
		mu.Unlock()
		for rb := range work {
			at, err := tr.Promote(ctx, rb)
			if err != nil {
				if ctx.Err() == nil {
					n.log.Warn("promote queued runs", "runbook", rb, "err", err)
					next[rb] = now.Add(time.Second)
				}
				continue
			}
			if !at.IsZero() {
				next[rb] = at
			}
		}
		wait := queueSweep - clock.Now().Sub(lastSweep)
		for _, at := range next {
			wait = min(wait, at.Sub(clock.Now()))
		}
		t := clock.NewTimer(max(wait, 0))
		select {
		case <-ctx.Done():
		case <-wake:
		case <-t.C():
		}
		t.Stop()
	}
}

// watchChanged watches prefixes on a goroutine of wg (watchKeys) until ctx
// is done, and returns a channel that holds one value whenever anything
// under them changed (or the watch restarted) since it was last read.
func (n *Node) watchChanged(ctx context.Context, wg *sync.WaitGroup, prefixes ...string) <-chan struct{} {
	changed := make(chan struct{}, 1)
	wg.Go(func() {
		n.watchKeys(ctx, prefixes, func([]*clientv3.Event) {
			select {
			case changed <- struct{}{}:
			default:
			}
		})
	})
	return changed
}

// watchKeys calls fn with the events under the prefixes until ctx is done,
// re-listing nothing: after every (re)start of the watch it calls fn(nil),
// meaning "anything may have changed".
func (n *Node) watchKeys(ctx context.Context, prefixes []string, fn func([]*clientv3.Event)) {
	for ctx.Err() == nil {
		resp, err := n.store.Client().Get(ctx, prefixes[0], clientv3.WithCountOnly())
		if err == nil {
			wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
			events := make(chan clientv3.WatchResponse)
			var wg sync.WaitGroup
			for _, p := range prefixes {
				ch := n.store.Client().Watch(wctx, p, clientv3.WithPrefix(), clientv3.WithRev(resp.Header.Revision+1))
				wg.Go(func() {
					for wr := range ch {
						select {
						case events <- wr:
						case <-wctx.Done():
							return
						}
					}
					select { // closed: make the loop start over
					case events <- clientv3.WatchResponse{Canceled: true}:
					case <-wctx.Done():
					}
				})
			}
			fn(nil)
			err = func() error {
				for {
					select {
					case <-ctx.Done():
						return nil
					case wr := <-events:
						if err := wr.Err(); err != nil {
							return err
						}
						if wr.Canceled {
							return errors.New("watch closed")
						}
						if len(wr.Events) > 0 {
							fn(wr.Events)
						}
					}
				}
			}()
			cancel()
			wg.Wait()
		}
		if err != nil && ctx.Err() == nil {
			n.log.Warn("watch", "prefixes", prefixes, "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(500 * time.Millisecond):
			}
		}
	}
}

// runPauses resumes each pause when its until passes: it looks again when
// a pause is set or cleared (watched) and when the earliest until is due,
// on the node's clock, so that the resume happens on whichever node leads.
func (n *Node) runPauses(ctx context.Context) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	changed := n.watchChanged(ctx, &wg, n.store.Keys().Pauses())
	clock := n.clock()
	for ctx.Err() == nil {
		wait := time.Hour
		resumed, next, err := n.store.ResumeDue(ctx, clock.Now())
		switch {
		case err != nil && ctx.Err() == nil:
			n.log.Warn("resume pauses past their until", "err", err)
			wait = time.Second
		case !next.IsZero():
			wait = max(next.Sub(clock.Now()), 0)
		}
		for _, rb := range resumed {
			n.log.Info("runbook resumed: its pause's until passed", "runbook", rb)
		}
		t := clock.NewTimer(wait)
		select {
		case <-ctx.Done():
		case <-t.C():
		case <-changed:
		}
		t.Stop()
	}
}
