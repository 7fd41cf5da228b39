package downstream

import (
	"context"
	"time"
)

// State is a circuit's state, as starbook_circuit_state reports it.
type State int

// Circuit states.
const (
	Closed   State = 0
	HalfOpen State = 1
	Open     State = 2
)

func (s State) String() string {
	switch s {
	case HalfOpen:
		return "half-open"
	case Open:
		return "open"
	}
	return "closed"
}

// Circuit is a host's shared circuit record: present while the circuit is
// open or half-open; absent means closed. The cluster's leader deletes a
// record left long past its Until (a host nobody calls any more), which
// every node then takes as the circuit closing (Guards.Observe with nil).
type Circuit struct {
	State    string    `json:"state"` // "open" or "half-open"
	Until    time.Time `json:"until"` // open: until a probe may go; half-open: until the probe is given up
	By       string    `json:"by"`    // the node that wrote it
	Failures int       `json:"failures,omitempty"`
}

// Circuits stores the shared circuit records (etcd: circuits/<host>).
type Circuits interface {
	// SetCircuit replaces host's record with c (nil deletes it: closed) if
	// the record is still at revision rev (0: absent). It reports whether
	// it did and the record's new revision.
	SetCircuit(ctx context.Context, host string, rev int64, c *Circuit) (ok bool, newRev int64, err error)
}

// breaker is one host's circuit as this node sees it; Host.mu guards it.
type breaker struct {
	state    State
	until    time.Time
	rev      int64 // revision of the shared record this state reflects
	failures int   // consecutive, while closed
	probing  bool  // this node sends the half-open probe
}

// casTimeout bounds a write of the shared record: a transition is rare and
// must not hold up requests long when etcd is slow.
const casTimeout = 2 * time.Second

// set writes the shared record; h.mu is held. Without Circuits, or when etcd
// fails, the transition is local (ok). It reports whether this node won.
func (h *Host) set(c *Circuit) bool {
	cs := h.g.cfg.Circuits
	if cs == nil {
		return true
	}
	ctx, cancel := context.WithTimeout(context.Background(), casTimeout)
	defer cancel()
	ok, rev, err := cs.SetCircuit(ctx, h.name, h.breaker.rev, c)
	if err != nil {
		h.g.cfg.Logger.Warn("share circuit state", "host", h.name, "err", err)
		return true
	}
	if ok {
		h.breaker.rev = rev
		if c == nil {
			h.breaker.rev = 0 // absent: the next open creates the record
		}
	}
	return ok
}

// allow decides whether a request may go: nil while closed; an *OpenError
// while open; when the cooldown is over, the request becomes the probe if
// this node wins the claim (probe true).
func (h *Host) allow(_ context.Context) (probe bool, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	b := &h.breaker
	if b.state == Closed {
		return false, nil
	}
	now := h.g.cfg.Now()
	if now.Before(b.until) || b.probing {
		return false, &OpenError{Host: h.name, Until: b.until, Probing: b.state == HalfOpen, Wait: b.until.Sub(now)}
	}
	until := now.Add(h.limit.Cooldown)
	if !h.set(&Circuit{State: HalfOpen.String(), Until: until, By: h.g.cfg.Node}) {
		// Another node probes (or changed the record): the watch tells us.
		return false, &OpenError{Host: h.name, Until: until, Probing: true, Wait: until.Sub(now)}
	}
	if b.state != HalfOpen {
		h.g.circuitHook(h.name, HalfOpen)
	}
	b.state, b.until, b.probing = HalfOpen, until, true
	return true, nil
}

// abandon gives up a probe that was not sent: the next request may claim it.
func (h *Host) abandon(probe bool) {
	if !probe {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.breaker.probing = false
	h.breaker.until = h.g.cfg.Now()
}

// outcome records a request's result.
func (h *Host) outcome(probe, failed bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	b := &h.breaker
	if probe {
		b.probing = false
		if failed {
			h.open()
		} else {
			h.close()
		}
		return
	}
	if b.state != Closed {
		return // sent before the circuit opened
	}
	if !failed {
		b.failures = 0
		return
	}
	b.failures++
	if b.failures >= h.limit.Failures {
		h.open()
	}
}

// open opens the circuit for the cooldown, here and (shared) everywhere.
func (h *Host) open() {
	b := &h.breaker
	until := h.g.cfg.Now().Add(h.limit.Cooldown)
	h.set(&Circuit{State: Open.String(), Until: until, By: h.g.cfg.Node, Failures: b.failures})
	// Lost or not, this node saw the failures: it fails fast too (the
	// watch brings the winner's record).
	b.state, b.until, b.failures = Open, until, 0
	h.g.circuitHook(h.name, Open)
}

// close closes the circuit here and everywhere.
func (h *Host) close() {
	h.set(nil)
	h.breaker.state, h.breaker.failures = Closed, 0
	h.g.circuitHook(h.name, Closed)
}

// State is h's circuit state on this node.
func (h *Host) State() State {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.breaker.state
}

// Observe applies a shared circuit record read from the store: c nil when
// host's circuit is closed, rev the record's revision (its deletion's for
// nil). Stale revisions and hosts without a limit are ignored.
func (g *Guards) Observe(host string, c *Circuit, rev int64) {
	h := g.Host(host)
	if h == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	b := &h.breaker
	if rev <= b.rev {
		return
	}
	prev := b.state
	switch {
	case c == nil:
		b.rev = 0              // absent again: the next open creates it
		if b.state != Closed { // a closed circuit keeps counting its failures
			b.state, b.failures, b.probing = Closed, 0, false
		}
	case c.State == Open.String():
		b.rev = rev
		b.state, b.until, b.probing = Open, c.Until, false
	case c.State == HalfOpen.String():
		b.rev = rev
		if c.By != g.cfg.Node {
			b.state, b.until, b.probing = HalfOpen, c.Until, false
		}
	default:
		b.rev = rev
	}
	if b.state != prev {
		g.circuitHook(host, b.state)
	}
}
