package enginetest

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/starbook/starbook/runtime"
)

// MemBackend keeps executions in maps. Its journals enforce etcd's rules: an
// append fails with runtime.ErrPositionTaken if the position is recorded and
// every write fails with runtime.ErrNotOwner once the claim it was made under
// is gone (expired, finished, or superseded by a newer claim).
type MemBackend struct {
	mu      sync.Mutex
	now     func() time.Time
	execs   map[string]*memExecution
	bundles map[string]*runtime.Bundle // name@version
	seq     int
}

var _ Backend = (*MemBackend)(nil)

type memExecution struct {
	record   runtime.Execution
	history  map[string]*runtime.Event
	writes   map[string]int
	waits    map[string]*runtime.Wait
	signals  map[string][]json.RawMessage // sent before a wait for them, oldest first
	runnable bool
	resolved int // bumped when a wait is resolved, like etcd's runnable mod revision
	gen      int // claim generation; the current claim holds it while owned
	owned    bool
}

// memClaim is one claim's journal, fenced on its generation.
type memClaim struct {
	b        *MemBackend
	id       string
	gen      int
	resolved int // memExecution.resolved at claim time
}

var _ runtime.Journal = (*memClaim)(nil)

// NewMemBackend returns an empty in-memory backend; it has the signature
// RunSuite wants.
func NewMemBackend(t *testing.T) Backend { return NewMem() }

// NewMem returns an empty in-memory backend, for callers without a
// *testing.T (benchmarks).
func NewMem() *MemBackend {
	return &MemBackend{now: time.Now, execs: map[string]*memExecution{}, bundles: map[string]*runtime.Bundle{}}
}

// Create implements Backend.
func (b *MemBackend) Create(_ context.Context, bundle *runtime.Bundle, input json.RawMessage) (string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.bundles[bundle.Name+"@"+bundle.Version] = bundle
	b.seq++
	id := fmt.Sprintf("mem%04d", b.seq)
	now := b.now().UTC()
	b.execs[id] = &memExecution{
		record: runtime.Execution{ID: id, Runbook: bundle.Name, Version: bundle.Version,
			Status: runtime.StatusPending, Trigger: runtime.Trigger{Type: "manual"},
			Input: clone(input), CreatedAt: now, UpdatedAt: now},
		history: map[string]*runtime.Event{}, writes: map[string]int{},
		waits: map[string]*runtime.Wait{}, signals: map[string][]json.RawMessage{}, runnable: true,
	}
	return id, nil
}

// Claim implements Backend.
func (b *MemBackend) Claim(_ context.Context, id string) (*runtime.Run, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	e, ok := b.execs[id]
	if !ok {
		return nil, fmt.Errorf("execution %q: %w", id, runtime.ErrNotFound)
	}
	if e.owned || !e.runnable {
		return nil, fmt.Errorf("claim %s: %w", id, ErrNotClaimable)
	}
	e.gen++
	e.owned = true
	rec := e.record
	r := &runtime.Run{
		Execution: &rec,
		History:   map[string]*runtime.Event{},
		Waits:     map[string]*runtime.Wait{},
		Journal:   &memClaim{b: b, id: id, gen: e.gen, resolved: e.resolved},
	}
	for pos, ev := range e.history {
		c := *ev
		r.History[pos] = &c
	}
	for pos, w := range e.waits {
		c := *w
		r.Waits[pos] = &c
	}
	return r, nil
}

// owns reports whether c is still the execution's claim; b.mu is held.
func (c *memClaim) owns() (*memExecution, bool) {
	e := c.b.execs[c.id]
	return e, e != nil && e.owned && e.gen == c.gen
}

// Append implements runtime.Journal.
func (c *memClaim) Append(ctx context.Context, ev *runtime.Event) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("append %s/%s: %w", c.id, ev.Position, err)
	}
	c.b.mu.Lock()
	defer c.b.mu.Unlock()
	e, ok := c.owns()
	if !ok {
		return fmt.Errorf("append %s/%s: %w", c.id, ev.Position, runtime.ErrNotOwner)
	}
	if _, taken := e.history[ev.Position]; taken {
		return fmt.Errorf("append %s/%s: %w", c.id, ev.Position, runtime.ErrPositionTaken)
	}
	stored := *ev
	stored.Result = clone(ev.Result)
	e.history[ev.Position] = &stored
	e.writes[ev.Position]++
	return nil
}

// Wait implements runtime.Journal.
func (c *memClaim) Wait(ctx context.Context, w *runtime.Wait) (*runtime.Event, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("register wait %s/%s: %w", c.id, w.Position, err)
	}
	c.b.mu.Lock()
	defer c.b.mu.Unlock()
	e, ok := c.owns()
	if !ok {
		return nil, fmt.Errorf("register wait %s/%s: %w", c.id, w.Position, runtime.ErrNotOwner)
	}
	if queue := e.signals[w.Name]; w.Kind == runtime.KindSignal && len(queue) > 0 {
		e.signals[w.Name] = queue[1:]
		now := c.b.now().UTC()
		ev := &runtime.Event{Position: w.Position, Kind: w.Kind, Name: w.Name, ArgsHash: w.ArgsHash,
			Result: clone(queue[0]), StartedAt: now, EndedAt: now}
		e.history[w.Position] = ev
		e.writes[w.Position]++
		out := *ev
		return &out, nil
	}
	stored := *w
	e.waits[w.Position] = &stored
	return nil, nil
}

// Signal implements Backend: it resolves the pending wait for the signal, or
// keeps the signal for the wait that will come.
func (b *MemBackend) Signal(_ context.Context, id, name string, data json.RawMessage) error {
	b.mu.Lock()
	result := runtime.SignalResult(name, data, "test", b.now())
	defer b.mu.Unlock()
	e, ok := b.execs[id]
	if !ok {
		return fmt.Errorf("execution %q: %w", id, runtime.ErrNotFound)
	}
	for pos, w := range e.waits {
		if w.Kind == runtime.KindSignal && w.Name == name {
			delete(e.waits, pos)
			e.history[pos] = &runtime.Event{Position: pos, Kind: w.Kind, Name: w.Name, ArgsHash: w.ArgsHash,
				Result: clone(result), StartedAt: w.Since, EndedAt: b.now().UTC()}
			e.writes[pos]++
			e.runnable = true
			e.resolved++
			return nil
		}
	}
	e.signals[name] = append(e.signals[name], clone(result))
	return nil
}

// SetStatus implements runtime.Journal.
func (c *memClaim) SetStatus(ctx context.Context, s runtime.Status) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("set status %s: %w", c.id, err)
	}
	c.b.mu.Lock()
	defer c.b.mu.Unlock()
	e, ok := c.owns()
	if !ok {
		return fmt.Errorf("set status %s %s: %w", s, c.id, runtime.ErrNotOwner)
	}
	e.record.Status, e.record.UpdatedAt = s, c.b.now().UTC()
	return nil
}

// Finish implements Backend. Like etcd's, it records nothing when the claim
// is gone, and parks a waiting execution only if no wait was resolved while it
// ran.
func (b *MemBackend) Finish(_ context.Context, r *runtime.Run, o runtime.Outcome) (*runtime.Execution, error) {
	c, ok := r.Journal.(*memClaim)
	if !ok {
		return nil, fmt.Errorf("finish: run's journal is a %T, not a MemBackend claim", r.Journal)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	e, owns := c.owns()
	if !owns {
		if e == nil {
			return nil, fmt.Errorf("execution %q: %w", c.id, runtime.ErrNotFound)
		}
		rec := e.record
		return &rec, fmt.Errorf("finish %s: %w", c.id, runtime.ErrNotOwner)
	}
	if ev := o.Checkpoint; ev != nil {
		if _, taken := e.history[ev.Position]; !taken {
			stored := *ev
			stored.Result = clone(ev.Result)
			e.history[ev.Position] = &stored
			e.writes[ev.Position]++
		}
	}
	e.owned = false
	if o.Status == "" || (o.Status == runtime.StatusWaiting && e.resolved != c.resolved) {
		rec := e.record
		return &rec, nil // released, still runnable
	}
	now := b.now().UTC()
	e.record.Status, e.record.Result, e.record.Error, e.record.UpdatedAt = o.Status, clone(o.Result), o.Error, now
	if o.Status.Terminal() {
		e.record.EndedAt = &now
		clear(e.waits)
	}
	e.runnable = false
	rec := e.record
	return &rec, nil
}

// Expire implements Backend.
func (b *MemBackend) Expire(_ context.Context, id string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	e, ok := b.execs[id]
	if !ok {
		return fmt.Errorf("execution %q: %w", id, runtime.ErrNotFound)
	}
	e.owned = false
	return nil
}

// FireWaits implements Backend.
func (b *MemBackend) FireWaits(_ context.Context, id string) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	e, ok := b.execs[id]
	if !ok {
		return 0, fmt.Errorf("execution %q: %w", id, runtime.ErrNotFound)
	}
	n := 0
	for pos, w := range e.waits {
		delete(e.waits, pos)
		if _, done := e.history[pos]; done {
			continue
		}
		e.history[pos] = &runtime.Event{Position: pos, Kind: w.Kind, Name: w.Name, ArgsHash: w.ArgsHash,
			Result: clone(w.OnTimeout), Error: w.TimeoutError, StartedAt: w.Since, EndedAt: b.now().UTC()}
		e.writes[pos]++
		n++
	}
	if n > 0 {
		e.runnable = true
		e.resolved++
	}
	return n, nil
}

// History implements Backend.
func (b *MemBackend) History(_ context.Context, id string) (*History, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	e, ok := b.execs[id]
	if !ok {
		return nil, fmt.Errorf("execution %q: %w", id, runtime.ErrNotFound)
	}
	rec := e.record
	// Report the live status as etcd's store derives it.
	if !rec.Status.Terminal() {
		switch {
		case e.owned && rec.Status != runtime.StatusCompensating:
			rec.Status = runtime.StatusRunning
		case !e.owned && e.runnable:
			rec.Status = runtime.StatusPending
		}
	}
	h := &History{Execution: &rec, Writes: maps.Clone(e.writes)}
	for _, ev := range e.history {
		c := *ev
		h.Events = append(h.Events, &c)
	}
	for _, w := range e.waits {
		c := *w
		h.Waits = append(h.Waits, &c)
	}
	slices.SortFunc(h.Events, func(x, y *runtime.Event) int { return runtime.ComparePositions(x.Position, y.Position) })
	slices.SortFunc(h.Waits, func(x, y *runtime.Wait) int { return runtime.ComparePositions(x.Position, y.Position) })
	return h, nil
}

func clone(m json.RawMessage) json.RawMessage {
	if m == nil {
		return nil
	}
	return append(json.RawMessage(nil), m...)
}
