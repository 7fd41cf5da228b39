package cluster

import (
	"sync"

	sbruntime "github.com/starbook/starbook/runtime"
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
