package downstream

import (
	"context"
	"errors"
	"log/slog"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// OtherHost is the metric label of every host without a limit, so that the
// hosts scripts call cannot multiply series.
const OtherHost = "other"

// Hooks receive what the guards see, for metrics; nil fields are skipped.
type Hooks struct {
	// Request counts a response (code "200", "503", ...) or a transport
	// error (code "error") from host, OtherHost for a host without a limit.
	Request func(host, code string)
	// Circuit is told each state a host's circuit enters.
	Circuit func(host string, s State)
	// Throttled counts a request held back: reason "circuit_open",
	// "retry_budget" or "rate".
	Throttled func(host, reason string)
	// Command counts an SSH command run on host (OtherHost for a host
	// without a limit) by its exit status ("0", "1", ...), or "error" when
	// it could not run (connection, handshake, host key, authentication).
	Command func(host, exit string)
}

// Config configures a node's Guards.
type Config struct {
	Node     string           // this node's id, recorded with the circuits it opens
	Now      func() time.Time // the breaker's and the retry budget's clock; time.Now when nil
	Circuits Circuits         // shared circuit state; nil keeps breakers local
	Hooks    Hooks
	// Window is the retry budget's sliding window (default 10s).
	Window time.Duration
	Logger *slog.Logger
}

// Guards holds one node's per-host protection. Its methods are safe for
// concurrent use; a nil *Guards guards nothing.
type Guards struct {
	cfg   Config
	hosts atomic.Pointer[map[string]*Host]

	mu       sync.Mutex // serialises reconfiguration
	static   []Limit    // node-wide
	declared []Limit    // from runbooks
	nodes    int
}

// New returns guards with no limits, for a cluster of one node until told
// otherwise.
func New(cfg Config) *Guards {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Window <= 0 {
		cfg.Window = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	g := &Guards{cfg: cfg, nodes: 1}
	g.hosts.Store(&map[string]*Host{})
	return g
}

// Host returns host's guard, nil when no limit covers host: one map lookup.
func (g *Guards) Host(host string) *Host {
	if g == nil {
		return nil
	}
	return (*g.hosts.Load())[host]
}

// Hosts returns the guarded hosts, sorted.
func (g *Guards) Hosts() []string {
	if g == nil {
		return nil
	}
	m := *g.hosts.Load()
	out := make([]string, 0, len(m))
	for h := range m {
		out = append(out, h)
	}
	sort.Strings(out)
	return out
}

// SetStatic sets the node-wide limits (serve --http-limit).
func (g *Guards) SetStatic(limits []Limit) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.static = limits
	g.rebuild()
}

// SetDeclared sets the limits the current runbook versions declare.
func (g *Guards) SetDeclared(limits []Limit) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.declared = limits
	g.rebuild()
}

// SetNodes sets how many nodes are live: each takes 1/n of every rate and
// concurrency limit.
func (g *Guards) SetNodes(n int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.nodes = max(n, 1)
	g.rebuild()
}

// Requested counts a response with status code (0 with a transport error)
// from host, h's guard or nil for a host without a limit.
func (g *Guards) Requested(h *Host, code int) {
	if g == nil || g.cfg.Hooks.Request == nil {
		return
	}
	label := OtherHost
	if h != nil {
		label = h.name
	}
	c := "error"
	if code > 0 {
		c = strconv.Itoa(code)
	}
	g.cfg.Hooks.Request(label, c)
}

// Commanded counts an SSH command (see Hooks.Command); h is nil for a host
// without a limit.
func (g *Guards) Commanded(h *Host, exit string) {
	if g == nil || g.cfg.Hooks.Command == nil {
		return
	}
	label := OtherHost
	if h != nil {
		label = h.name
	}
	g.cfg.Hooks.Command(label, exit)
}

// rebuild merges the limits by host and reconfigures the guards, keeping
// the state (breaker, budget, tokens) of hosts that stay; g.mu is held.
func (g *Guards) rebuild() {
	merged := map[string]Limit{}
	for _, l := range append(append([]Limit(nil), g.static...), g.declared...) {
		if prev, ok := merged[l.Host]; ok {
			l = Merge(prev, l)
		}
		merged[l.Host] = l
	}
	old := *g.hosts.Load()
	next := make(map[string]*Host, len(merged))
	for name, l := range merged {
		h := old[name]
		if h == nil {
			h = &Host{name: name, g: g, budget: newRetryBudget(g.cfg.Window)}
			g.circuitHook(name, Closed)
		}
		h.configure(l, g.nodes)
		next[name] = h
	}
	for name := range old {
		if next[name] == nil { // no longer limited: its gauge shows no open circuit
			g.circuitHook(name, Closed)
		}
	}
	g.hosts.Store(&next)
}

func (g *Guards) circuitHook(host string, s State) {
	if f := g.cfg.Hooks.Circuit; f != nil {
		f(host, s)
	}
}

func (g *Guards) throttled(host, reason string) {
	if f := g.cfg.Hooks.Throttled; f != nil {
		f(host, reason)
	}
}

// Host guards the requests to one host on this node.
type Host struct {
	name   string
	g      *Guards
	budget *retryBudget

	mu          sync.Mutex
	limit       Limit
	limiter     *rate.Limiter // nil: no rate limit
	sem         chan struct{} // nil: no concurrency limit
	perSecond   float64
	concurrency int
	breaker     breaker
}

// Name is the host guarded.
func (h *Host) Name() string { return h.name }

// Limit is the merged limit h enforces.
func (h *Host) Limit() Limit {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.limit
}

// Share is this node's share of the host's limits: requests per second and
// requests in flight (0: no limit).
func (h *Host) Share() (perSecond float64, concurrency int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.perSecond, h.concurrency
}

func (h *Host) configure(l Limit, nodes int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.limit = l
	h.perSecond = 0
	if l.PerSecond > 0 {
		h.perSecond = l.PerSecond / float64(nodes)
		burst := max(1, int(h.perSecond))
		if h.limiter == nil {
			h.limiter = rate.NewLimiter(rate.Limit(h.perSecond), burst)
		} else {
			h.limiter.SetLimit(rate.Limit(h.perSecond))
			h.limiter.SetBurst(burst)
		}
	} else {
		h.limiter = nil
	}
	conc := 0
	if l.Concurrency > 0 {
		conc = max(1, l.Concurrency/nodes)
	}
	if conc != h.concurrency {
		h.concurrency = conc
		h.sem = nil
		if conc > 0 { // requests in flight release into the channel they took
			h.sem = make(chan struct{}, conc)
		}
	}
}

// Pass is one request let through: Done reports its outcome once its
// response (or error) came, Release frees its concurrency slot once it is
// over (its body read); each is called once.
type Pass struct {
	h       *Host
	sem     chan struct{}
	probe   bool
	release sync.Once
}

// Acquire lets one request to h through, or returns why not: an *OpenError
// while the circuit is open (nothing is sent), a *ThrottleError when the
// rate limit's wait would outlast ctx, or ctx's error. It waits for a
// concurrency slot and a rate token. retry says the request repeats an
// earlier one (its retry budget was taken with TakeRetry).
func (h *Host) Acquire(ctx context.Context, retry bool) (*Pass, error) {
	probe, err := h.allow(ctx)
	if err != nil {
		h.g.throttled(h.name, "circuit_open")
		return nil, err
	}
	p := &Pass{h: h, probe: probe}
	h.mu.Lock()
	sem, limiter := h.sem, h.limiter
	h.mu.Unlock()
	if sem != nil {
		select {
		case sem <- struct{}{}:
			p.sem = sem
		case <-ctx.Done():
			h.abandon(probe)
			return nil, ctx.Err()
		}
	}
	if limiter != nil {
		if err := limiter.Wait(ctx); err != nil {
			p.Release()
			h.abandon(probe)
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			h.g.throttled(h.name, "rate")
			return nil, &ThrottleError{Host: h.name, Rate: h.Limit().Rate, Err: err}
		}
	}
	if !retry {
		h.budget.first(h.g.cfg.Now())
	}
	return p, nil
}

// TakeRetry reports whether a retry of a request to h may be sent, and if
// so counts it: retries stay within RetryRatio of the first requests in the
// window.
func (h *Host) TakeRetry() bool {
	if h.budget.take(h.g.cfg.Now(), h.Limit().RetryRatio) {
		return true
	}
	h.g.throttled(h.name, "retry_budget")
	return false
}

// RetryBudgetError is the error of a call()-level retry its host's retry budget refused.
func (h *Host) RetryBudgetError() *RetryBudgetError {
	return &RetryBudgetError{Host: h.name, Ratio: h.Limit().RetryRatio}
}

// Done ends the request: code is its status, 0 with a transport error err.
// A 5xx or a transport error (not a cancellation) counts as a failure of the
// host; anything else, a 4xx included, as a success.
func (p *Pass) Done(code int, err error) {
	if code == 0 && err != nil && isCanceled(err) {
		p.h.abandon(p.probe) // the step was stopped: says nothing of the host
		return
	}
	p.h.outcome(p.probe, code >= 500 || code == 0 && err != nil)
}

// Release frees the request's concurrency slot; later calls do nothing.
func (p *Pass) Release() {
	p.release.Do(func() {
		if p.sem != nil {
			<-p.sem
		}
	})
}

func isCanceled(err error) bool { return errors.Is(err, context.Canceled) }
