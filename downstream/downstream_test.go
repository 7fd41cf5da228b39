package downstream

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestNewLimit(t *testing.T) {
	tests := []struct {
		name        string
		host, rate  string
		concurrency int
		failures    int
		cooldown    time.Duration
		ratio       float64
		want        string // error substring; "" for valid
		perSecond   float64
	}{
		{"per second", "api.example.com", "10/s", 5, 5, 30 * time.Second, 0.2, "", 10},
		{"per minute", "API.Example.com", "600/m", 0, 1, time.Second, 0, "", 10},
		{"ip", "10.0.0.1", "", 0, 5, time.Minute, 1, "", 0},
		{"scheme", "https://api.example.com", "", 0, 5, time.Minute, 0.2, "without a scheme", 0},
		{"path", "api.example.com/v1", "", 0, 5, time.Minute, 0.2, "without path", 0},
		{"port", "api.example.com:443", "", 0, 5, time.Minute, 0.2, "without a port", 0},
		{"empty host", "", "", 0, 5, time.Minute, 0.2, "host is empty", 0},
		{"bad label", "api..example.com", "", 0, 5, time.Minute, 0.2, "not a valid host name", 0},
		{"rate period", "api.example.com", "10/h", 0, 5, time.Minute, 0.2, "the period must be s or m", 0},
		{"rate count", "api.example.com", "0/s", 0, 5, time.Minute, 0.2, "N a positive integer", 0},
		{"rate text", "api.example.com", "fast", 0, 5, time.Minute, 0.2, "want N/s or N/m", 0},
		{"failures", "api.example.com", "", 0, 0, time.Minute, 0.2, "failures=0: want at least 1", 0},
		{"cooldown", "api.example.com", "", 0, 5, time.Millisecond, 0.2, "cooldown=1ms: want at least 1s", 0},
		{"ratio", "api.example.com", "", 0, 5, time.Minute, 1.5, "retry_ratio=1.5: want between 0 and 1", 0},
		{"concurrency", "api.example.com", "", -1, 5, time.Minute, 0.2, "concurrency=-1: want at least 1", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := NewLimit(tt.host, tt.rate, tt.concurrency, tt.failures, tt.cooldown, tt.ratio)
			if tt.want != "" {
				if err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("error %v, want %q", err, tt.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if l.PerSecond != tt.perSecond || l.Host != strings.ToLower(tt.host) {
				t.Errorf("limit %+v, want %g/s for %s", l, tt.perSecond, strings.ToLower(tt.host))
			}
		})
	}
}

func TestParseFlag(t *testing.T) {
	tests := []struct {
		in, want    string
		perSecond   float64
		concurrency int
	}{
		{"api.example.com=10/s,5", "", 10, 5},
		{"api.example.com=,2", "", 0, 2},
		{"api.example.com=60/m", "", 1, 0},
		{"api.example.com", "want host=rate,concurrency", 0, 0},
		{"api.example.com=10/s,zero", "concurrency \"zero\"", 0, 0},
		{"http://x=10/s", "without a scheme", 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			l, err := ParseFlag(tt.in)
			if tt.want != "" {
				if err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("error %v, want %q", err, tt.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if l.PerSecond != tt.perSecond || l.Concurrency != tt.concurrency || l.Failures != DefaultFailures {
				t.Errorf("limit %+v", l)
			}
		})
	}
}

// TestMergeStrictestWins: two declarations of one host combine field by field.
func TestMergeStrictestWins(t *testing.T) {
	a := Limit{Host: "h", Rate: "10/s", PerSecond: 10, Failures: 5, Cooldown: time.Minute, RetryRatio: 0.2, Where: "a.star:1:11"}
	b := Limit{Host: "h", Concurrency: 3, Failures: 3, Cooldown: 30 * time.Second, RetryRatio: 0.5, Where: "b.star:2:11"}
	got := Merge(a, b)
	want := Limit{Host: "h", Rate: "10/s", PerSecond: 10, Concurrency: 3, Failures: 3, Cooldown: time.Minute, RetryRatio: 0.2,
		Where: "a.star:1:11, b.star:2:11"}
	if got != want {
		t.Errorf("Merge = %+v, want %+v", got, want)
	}
	if got := Merge(b, a); got.PerSecond != 10 || got.Concurrency != 3 || got.Failures != 3 || got.Cooldown != time.Minute {
		t.Errorf("Merge is not symmetric: %+v", got)
	}
}

// clock is a settable clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func TestSharesFollowNodes(t *testing.T) {
	g := New(Config{})
	if g.Host("api.example.com") != nil {
		t.Fatal("a host without a limit has a guard")
	}
	g.SetStatic([]Limit{{Host: "api.example.com", Rate: "10/s", PerSecond: 10, Concurrency: 5, Failures: 5, Cooldown: time.Minute}})
	h := g.Host("api.example.com")
	for _, tt := range []struct {
		nodes, conc int
		rate        float64
	}{{1, 5, 10}, {2, 2, 5}, {4, 1, 2.5}, {10, 1, 1}} {
		g.SetNodes(tt.nodes)
		if g.Host("api.example.com") != h {
			t.Fatal("a reconfigured host lost its state")
		}
		if rate, conc := h.Share(); rate != tt.rate || conc != tt.conc {
			t.Errorf("%d nodes: share %g/s, %d in flight; want %g/s, %d", tt.nodes, rate, conc, tt.rate, tt.conc)
		}
	}
}

// TestRetryBudget: retries stay within the ratio of first requests in the
// window, and the window slides.
func TestRetryBudget(t *testing.T) {
	c := &clock{now: time.Unix(1_000_000, 0)}
	g := New(Config{Now: c.Now, Window: 10 * time.Second})
	g.SetStatic([]Limit{{Host: "h", Failures: 1000, Cooldown: time.Minute, RetryRatio: 0.2}})
	h := g.Host("h")
	if h.TakeRetry() {
		t.Fatal("a retry before any request")
	}
	allowed := 0
	for range 50 {
		p, err := h.Acquire(context.Background(), false)
		if err != nil {
			t.Fatal(err)
		}
		p.Done(503, nil)
		for h.TakeRetry() {
			allowed++
			p, err := h.Acquire(context.Background(), true)
			if err != nil {
				t.Fatal(err)
			}
			p.Done(503, nil)
		}
	}
	if allowed != 10 {
		t.Errorf("%d retries for 50 requests, want 10 (20%%)", allowed)
	}
	c.Add(11 * time.Second)
	if h.TakeRetry() {
		t.Error("a retry once the window's requests slid out of it")
	}
}

// TestBreakerLocal: without shared state the breaker opens after N
// consecutive failures (not 4xx), fails fast until the cooldown ends, lets
// one probe through, and closes on its success.
func TestBreakerLocal(t *testing.T) {
	c := &clock{now: time.Unix(1_000_000, 0)}
	var states []State
	var mu sync.Mutex
	g := New(Config{Now: c.Now, Hooks: Hooks{Circuit: func(_ string, s State) { mu.Lock(); states = append(states, s); mu.Unlock() }}})
	g.SetStatic([]Limit{{Host: "h", Failures: 3, Cooldown: 30 * time.Second, RetryRatio: 0.2}})
	h := g.Host("h")
	send := func(code int, err error) error {
		p, aerr := h.Acquire(context.Background(), false)
		if aerr != nil {
			return aerr
		}
		p.Done(code, err)
		p.Release()
		return nil
	}
	for _, code := range []int{500, 503, 404, 502, 503} { // the 404 resets the count
		if err := send(code, nil); err != nil {
			t.Fatal(err)
		}
	}
	if h.State() != Closed {
		t.Fatalf("state %s after 2 failures since a 404", h.State())
	}
	if err := send(0, errors.New("connection refused")); err != nil {
		t.Fatal(err)
	}
	if h.State() != Open {
		t.Fatalf("state %s after 3 consecutive failures", h.State())
	}
	var open *OpenError
	if err := send(200, nil); !errors.As(err, &open) || !strings.HasPrefix(err.Error(), "circuit open for h until ") || open.RetryAfterHint() != 30*time.Second {
		t.Fatalf("error %v, want circuit open for 30s", err)
	}
	c.Add(30 * time.Second)
	probe, err := h.Acquire(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	probe.Done(0, context.Canceled) // a probe whose step was stopped says nothing: the next request probes
	if h.State() != HalfOpen {
		t.Fatalf("state %s after a cancelled probe", h.State())
	}
	if probe, err = h.Acquire(context.Background(), false); err != nil {
		t.Fatalf("no new probe after a cancelled one: %v", err)
	}
	if _, err := h.Acquire(context.Background(), false); !errors.As(err, &open) || !open.Probing {
		t.Fatalf("a second request during the probe: %v", err)
	}
	probe.Done(503, nil)
	if h.State() != Open {
		t.Fatalf("state %s after a failed probe", h.State())
	}
	c.Add(30 * time.Second)
	if err := send(200, nil); err != nil {
		t.Fatal(err)
	}
	if h.State() != Closed {
		t.Fatalf("state %s after a good probe", h.State())
	}
	mu.Lock()
	defer mu.Unlock()
	want := []State{Closed, Open, HalfOpen, Open, HalfOpen, Closed}
	if len(states) != len(want) {
		t.Fatalf("states %v, want %v", states, want)
	}
	for i := range want {
		if states[i] != want[i] {
			t.Fatalf("states %v, want %v", states, want)
		}
	}
}

// TestStaticAndDeclaredCombine: a node-wide limit and runbooks' declarations
// of one host combine, the strictest winning; dropping one restores the other.
func TestStaticAndDeclaredCombine(t *testing.T) {
	g := New(Config{})
	static, err := ParseFlag("api.example.com=10/s,8")
	if err != nil {
		t.Fatal(err)
	}
	g.SetStatic([]Limit{*static})
	declared, err := NewLimit("api.example.com", "600/m", 0, 2, time.Minute, 0.5)
	if err != nil {
		t.Fatal(err)
	}
	g.SetDeclared([]Limit{*declared})
	got := g.Host("api.example.com").Limit()
	if got.PerSecond != 10 || got.Concurrency != 8 || got.Failures != 2 || got.Cooldown != time.Minute || got.RetryRatio != 0.2 {
		t.Errorf("combined %+v", got)
	}
	g.SetStatic(nil)
	if got := g.Host("api.example.com").Limit(); got.Concurrency != 0 || got.RetryRatio != 0.5 {
		t.Errorf("declared alone %+v", got)
	}
	g.SetDeclared(nil)
	if g.Host("api.example.com") != nil {
		t.Error("a host no limit names is still guarded")
	}
}
