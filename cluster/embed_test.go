package cluster

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

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

// TestMemberWithoutQuorumGivesUp: a member whose only peer is down is not
// ready; it gives up at its ReadyTimeout, or when its context ends, within
// seconds (etcd's Close hangs on a member that never became ready unless its
// server stops first), and the error at the timeout names the peer that
// did not answer and why.
func TestMemberWithoutQuorumGivesUp(t *testing.T) {
	tests := []struct {
		name         string
		readyTimeout time.Duration
		ctxTimeout   time.Duration
		want         []string
	}{
		{"ready timeout", time.Second, time.Minute,
			[]string{"member a not ready after 1s: no quorum", "peer b (http://", "connection refused"}},
		{"context ends", time.Minute, time.Second, []string{"not ready: context deadline exceeded"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			own, err := freeAddr("127.0.0.1")
			if err != nil {
				t.Fatal(err)
			}
			absent, err := freeAddr("127.0.0.1")
			if err != nil {
				t.Fatal(err)
			}
			member := &MemberConfig{Name: "a", InitialCluster: []Member{{"a", "http://" + own}, {"b", "http://" + absent}},
				PeerListen: own, ReadyTimeout: tt.readyTimeout}
			ctx, cancel := context.WithTimeout(context.Background(), tt.ctxTimeout)
			defer cancel()
			done := make(chan error, 1)
			go func() {
				e, err := StartEmbedded(ctx, EmbeddedConfig{Dir: t.TempDir(), NoFsync: true, Member: member})
				if err == nil {
					e.Close()
				}
				done <- err
			}()
			select {
			case err = <-done:
			case <-time.After(30 * time.Second):
				t.Fatal("StartEmbedded still running 30s after it should have given up")
			}
			if err == nil {
				t.Fatal("StartEmbedded without a quorum succeeded")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}
