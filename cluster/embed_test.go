package cluster

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

func TestEmbeddedRestartKeepsData(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	e, err := StartEmbedded(ctx, EmbeddedConfig{Dir: dir, Fast: true, NoFsync: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Client.Put(ctx, "k", "v"); err != nil {
		t.Fatal(err)
	}
	e.Close()
	e, err = StartEmbedded(ctx, EmbeddedConfig{Dir: dir, Fast: true, NoFsync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	resp, err := e.Client.Get(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "v" {
		t.Fatalf("after restart got %v, want k=v", resp.Kvs)
	}
}

// The member's listeners failing as its own Close stops them is not logged;
// the same entry before Close is, and so is every other entry.
func TestEmbeddedLoggerQuietOnlyOnClose(t *testing.T) {
	inner, logs := observer.New(zap.ErrorLevel)
	closing := &atomic.Bool{}
	lg := zap.New(closingCore{Core: inner, closing: closing}).With(zap.String("member", "starbook"))
	closed := errors.New("use of closed network connection")
	lg.Error(servingFailed, zap.Error(closed))
	closing.Store(true)
	lg.Error(servingFailed, zap.Error(closed))
	lg.Error("failed to apply request")
	var got []string
	for _, e := range logs.All() {
		got = append(got, e.Message)
		if e.ContextMap()["member"] != "starbook" {
			t.Errorf("entry %q lost its fields: %v", e.Message, e.ContextMap())
		}
	}
	if len(got) != 2 || got[0] != servingFailed || got[1] != "failed to apply request" {
		t.Fatalf("logged %q", got)
	}
}
