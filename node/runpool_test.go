package node

import (
	"sync"
	"testing"
	"time"
)

func TestRunPoolReusesIdleGoroutinesAndLetsThemGo(t *testing.T) {
	// One after another: each run finds the previous one's goroutine idle.
	// It stays idle far longer than the test runs: with a second, a loaded
	// CI machine once missed the idle window and the goroutine had gone.
	p := newRunPool()
	p.idleFor = time.Hour
	for i := range 20 {
		done := make(chan struct{})
		p.run(func() { close(done) })
		<-done
		waitFor(t, func() bool { return p.idle.Load() == 1 })
		if n := p.live.Load(); n != 1 {
			t.Fatalf("run %d: %d goroutines, want the one reused", i, n)
		}
	}
	// At once: one goroutine each, and a short idle time, after which
	// they all go.
	p = newRunPool()
	p.idleFor = 50 * time.Millisecond
	release := make(chan struct{})
	var started sync.WaitGroup
	started.Add(10)
	for range 10 {
		p.run(func() { started.Done(); <-release })
	}
	started.Wait()
	if n := p.live.Load(); n < 10 {
		t.Fatalf("%d goroutines for 10 concurrent runs", n)
	}
	close(release)
	waitFor(t, func() bool { return p.live.Load() == 0 }) // idle for idleFor: gone
}
