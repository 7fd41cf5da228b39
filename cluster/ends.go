package cluster

import (
	"context"
	"errors"
	"sync"
	"time"

	sbruntime "github.com/starbook/starbook/runtime"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// endFeed tells this process of the executions that end through its store,
// as soon as the end is committed: a caller waiting on the node that ran the
// execution hears of its end without waiting for a watch to deliver it
// (about 1 ms under load, 4% of the throughput of 5-step runs). Ends
// written elsewhere (another node) still reach waiters through their watch.
type endFeed struct {
	mu        sync.Mutex
	waiters   map[string][]chan *sbruntime.Execution
	listeners map[*func(*sbruntime.Execution)]struct{}
}

// await returns a channel that receives id's stored record when it ends
// through this store, and a func that stops waiting.
func (f *endFeed) await(id string) (<-chan *sbruntime.Execution, func()) {
	ch := make(chan *sbruntime.Execution, 1)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.waiters == nil {
		f.waiters = map[string][]chan *sbruntime.Execution{}
	}
	f.waiters[id] = append(f.waiters[id], ch)
	return ch, func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		chans := f.waiters[id]
		for i, c := range chans {
			if c == ch {
				chans = append(chans[:i], chans[i+1:]...)
				break
			}
		}
		if len(chans) == 0 {
			delete(f.waiters, id)
		} else {
			f.waiters[id] = chans
		}
	}
}

// listen calls fn with every execution that ends through this store, in the
// goroutine that committed the end: fn must not block. The returned func
// stops the calls.
func (f *endFeed) listen(fn func(*sbruntime.Execution)) func() {
	key := &fn
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.listeners == nil {
		f.listeners = map[*func(*sbruntime.Execution)]struct{}{}
	}
	f.listeners[key] = struct{}{}
	return func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		delete(f.listeners, key)
	}
}

// ended reports e, whose terminal record was just committed, to its waiters
// and to the listeners.
func (f *endFeed) ended(e *sbruntime.Execution) {
	f.mu.Lock()
	for _, ch := range f.waiters[e.ID] {
		select {
		case ch <- e:
		default: // told already
		}
	}
	var listeners []func(*sbruntime.Execution)
	for fn := range f.listeners {
		listeners = append(listeners, *fn)
	}
	f.mu.Unlock()
	for _, fn := range listeners { // unlocked: a listener may stop itself
		fn(e)
	}
}

// OnEnd calls fn with the stored record of every execution that ends through
// this store (a run's outcome, a cancel, a dropped trigger), right after the
// end is committed and in the goroutine that committed it: fn must be quick
// and must not block. Ends committed by other nodes are not reported; watch
// the records for those. The returned func stops the calls.
func (s *Store) OnEnd(fn func(*sbruntime.Execution)) (stop func()) { return s.ends.listen(fn) }

// AwaitEnd blocks until execution id is terminal or ctx is done, and returns
// it as it is then. A done ctx is not an error. An end committed through this
// store (the execution ran here) is seen at once; one committed elsewhere
// through a watch of the record.
func (s *Store) AwaitEnd(ctx context.Context, id string) (*sbruntime.Execution, error) {
	local, stop := s.ends.await(id) // before the reads: no end after them is missed
	defer stop()
	for {
		e, _, err := s.Execution(ctx, id)
		if err != nil {
			if ctx.Err() != nil && !errors.Is(err, sbruntime.ErrNotFound) {
				return s.lastKnown(id)
			}
			return nil, err
		}
		if e.Status.Terminal() {
			return e, nil
		}
		resp, err := s.cli.Get(ctx, s.k.execution(id))
		if err != nil {
			return e, nil
		}
		if len(resp.Kvs) > 0 {
			if x, err := s.k.decodeExecution(resp.Kvs[0]); err == nil && x.Status.Terminal() {
				return x, nil
			}
		}
		if end := s.watchEnd(ctx, id, resp.Header.Revision+1, local); end != nil {
			return end, nil
		}
		if ctx.Err() != nil {
			return s.lastKnown(id)
		}
	}
}

// watchEnd returns id's terminal record once local delivers it or a watch of
// the record from rev sees it; nil if ctx is done or the watch fails first.
func (s *Store) watchEnd(ctx context.Context, id string, rev int64, local <-chan *sbruntime.Execution) *sbruntime.Execution {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch := s.cli.Watch(wctx, s.k.execution(id), clientv3.WithRev(rev))
	for {
		select {
		case e := <-local:
			return e
		case <-ctx.Done():
			return nil
		case wr, ok := <-ch:
			if !ok || wr.Err() != nil {
				return nil
			}
			for _, ev := range wr.Events {
				if ev.Type != clientv3.EventTypePut {
					continue
				}
				if x, err := s.k.decodeExecution(ev.Kv); err == nil && x.Status.Terminal() {
					return x
				}
			}
		}
	}
}

func (s *Store) lastKnown(id string) (*sbruntime.Execution, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	e, _, err := s.Execution(ctx, id)
	return e, err
}
