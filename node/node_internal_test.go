package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/starbook/starbook/cluster"
	sbruntime "github.com/starbook/starbook/runtime"
)

// A cancel requested while the node had no watch in place (between two
// watches, or while one failed) reaches its run when the node lists again.
func TestNodeListingDeliversMissedCancel(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	emb, err := cluster.StartEmbedded(ctx, cluster.EmbeddedConfig{Dir: t.TempDir(), Fast: true, NoFsync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer emb.Close()
	store := cluster.NewStore(emb.Client, "/t/")
	// The request is in place before the node lists: no watch can see it.
	if _, err := emb.Client.Put(ctx, store.Keys().Cancels()+"e-cancelled", "user"); err != nil {
		t.Fatal(err)
	}
	causes := make(chan error, 2)
	n := &Node{store: store, log: slog.New(slog.DiscardHandler),
		runnable: map[string]bool{}, owned: map[string]bool{}, queued: map[string]bool{}, kick: make(chan struct{}, 1),
		running: map[string]context.CancelCauseFunc{
			"e-cancelled": func(err error) { causes <- err },
			"e-running":   func(err error) { causes <- fmt.Errorf("e-running cancelled: %w", err) },
		}}
	wctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- n.watchOnce(wctx) }()
	select {
	case err := <-causes:
		if !errors.Is(err, sbruntime.ErrCancelled) || strings.Contains(err.Error(), "e-running") {
			t.Fatalf("cancel cause %v, want the cancelled execution's ErrCancelled", err)
		}
	case <-ctx.Done():
		t.Fatal("the listed cancel request did not reach the run")
	}
	stop()
	<-done // stopped: its watches close, as they do when the node stops
	select {
	case err := <-causes:
		t.Fatalf("a second cancel: %v", err)
	default:
	}
}

// waitFor polls cond until it holds, failing t after 20s.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 20s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
