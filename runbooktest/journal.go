package runbooktest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	sbruntime "github.com/starbook/starbook/runtime"
)

// journal is an execution's history in memory. It keeps the rules of the
// etcd store that matter to a script (one event per position, a signal sent
// before its wait is returned at once) and nothing else: an offline run
// owns its execution alone.
type journal struct {
	mu       sync.Mutex
	now      func() time.Time
	history  map[string]*sbruntime.Event
	waits    map[string]*sbruntime.Wait
	logs     []*sbruntime.LogLine
	logKeys  map[string]bool
	statuses []sbruntime.Status
	// signal takes a signal sent before the script waits for it.
	signal func(name string) (json.RawMessage, bool)
	// frozen refuses every new event and wait (a replay): the first one
	// refused is kept in beyond.
	frozen bool
	beyond *sbruntime.Event
}

// errBeyondHistory is a frozen journal's refusal: the script wants to do
// something the history does not hold.
var errBeyondHistory = errors.New("beyond the recorded history")

// refuse keeps the first event a frozen journal refused; mu is held.
func (j *journal) refuse(ev *sbruntime.Event) error {
	if j.beyond == nil {
		c := *ev
		j.beyond = &c
	}
	return fmt.Errorf("position %s: %w", ev.Position, errBeyondHistory)
}

var (
	_ sbruntime.Journal   = (*journal)(nil)
	_ sbruntime.LogWriter = (*journal)(nil)
)

func newJournal(now func() time.Time, signal func(string) (json.RawMessage, bool)) *journal {
	return &journal{now: now, history: map[string]*sbruntime.Event{}, waits: map[string]*sbruntime.Wait{},
		logKeys: map[string]bool{}, signal: signal}
}

// Append implements runtime.Journal.
func (j *journal) Append(_ context.Context, ev *sbruntime.Event) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.frozen {
		return j.refuse(ev)
	}
	if _, taken := j.history[ev.Position]; taken {
		return fmt.Errorf("append %s: %w", ev.Position, sbruntime.ErrPositionTaken)
	}
	c := *ev
	j.history[ev.Position] = &c
	return nil
}

// Wait implements runtime.Journal.
func (j *journal) Wait(_ context.Context, w *sbruntime.Wait) (*sbruntime.Event, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.frozen {
		return nil, j.refuse(&sbruntime.Event{Position: w.Position, Kind: w.Kind, Name: w.Name, ArgsHash: w.ArgsHash, Where: w.Where})
	}
	if w.Kind == sbruntime.KindSignal && j.signal != nil {
		if data, ok := j.signal(w.Name); ok {
			at := j.now()
			ev := &sbruntime.Event{Position: w.Position, Kind: w.Kind, Name: w.Name, ArgsHash: w.ArgsHash,
				Result: data, StartedAt: at, EndedAt: at, Where: w.Where}
			j.history[w.Position] = ev
			c := *ev
			return &c, nil
		}
	}
	c := *w
	j.waits[w.Position] = &c
	return nil, nil
}

// SetStatus implements runtime.Journal.
func (j *journal) SetStatus(_ context.Context, s sbruntime.Status) error {
	j.mu.Lock()
	j.statuses = append(j.statuses, s)
	j.mu.Unlock()
	return nil
}

// WriteLog implements runtime.LogWriter.
func (j *journal) WriteLog(_ context.Context, l *sbruntime.LogLine) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.logKeys[l.Key()] {
		return nil
	}
	j.logKeys[l.Key()] = true
	c := *l
	c.Seq = int64(len(j.logs) + 1)
	j.logs = append(j.logs, &c)
	return nil
}

// resolve records ev at a pending wait's position.
func (j *journal) resolve(ev *sbruntime.Event) {
	j.mu.Lock()
	defer j.mu.Unlock()
	delete(j.waits, ev.Position)
	j.history[ev.Position] = ev
}

// snapshot returns copies of the history and pending waits for a new run.
func (j *journal) snapshot() (map[string]*sbruntime.Event, map[string]*sbruntime.Wait) {
	j.mu.Lock()
	defer j.mu.Unlock()
	h := make(map[string]*sbruntime.Event, len(j.history))
	for p, ev := range j.history {
		c := *ev
		h[p] = &c
	}
	w := make(map[string]*sbruntime.Wait, len(j.waits))
	for p, x := range j.waits {
		c := *x
		w[p] = &c
	}
	return h, w
}

// events returns the history in position order.
func (j *journal) events() []*sbruntime.Event {
	j.mu.Lock()
	defer j.mu.Unlock()
	out := slices.Collect(maps.Values(j.history))
	slices.SortFunc(out, func(a, b *sbruntime.Event) int { return sbruntime.ComparePositions(a.Position, b.Position) })
	return out
}

// pending returns the pending waits in position order.
func (j *journal) pending() []*sbruntime.Wait {
	j.mu.Lock()
	defer j.mu.Unlock()
	out := slices.Collect(maps.Values(j.waits))
	slices.SortFunc(out, func(a, b *sbruntime.Wait) int { return sbruntime.ComparePositions(a.Position, b.Position) })
	return out
}
