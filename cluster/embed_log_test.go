package cluster

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// The storage version monitor's failure for a missing term is not logged;
// the same message for another error is, and so is every other entry.
func TestEmbeddedLoggerDropsMissingTerm(t *testing.T) {
	termless := fmt.Errorf("cannot detect storage schema version: %w", errors.New(missingTerm))
	tests := []struct {
		name   string
		msg    string
		fields []zap.Field
		logged bool
	}{
		{"missing term", storageVersionFailed, []zap.Field{zap.String("cluster-version", "3.7.0"), zap.Error(termless)}, false},
		{"another error", storageVersionFailed, []zap.Field{zap.Error(errors.New("disk full"))}, true},
		{"no error", storageVersionFailed, nil, true},
		{"missing term, not as an error", storageVersionFailed, []zap.Field{zap.String("note", missingTerm)}, true},
		{"another message", "failed to apply request", []zap.Field{zap.Error(termless)}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inner, logs := observer.New(zap.ErrorLevel)
			lg := zap.New(closingCore{Core: inner, closing: &atomic.Bool{}}).With(zap.String("member", "starbook"))
			lg.Error(tt.msg, tt.fields...)
			lg.Warn(tt.msg, tt.fields...) // below the level: never logged
			if got := logs.Len(); got != map[bool]int{false: 0, true: 1}[tt.logged] {
				t.Fatalf("logged %d entries: %v", got, logs.All())
			}
			for _, e := range logs.All() {
				if e.Message != tt.msg || e.ContextMap()["member"] != "starbook" || len(e.Context) != len(tt.fields)+1 {
					t.Errorf("logged %q with %v", e.Message, e.ContextMap())
				}
			}
		})
	}
}

// A fresh member's first start logs no storage version failure; what else
// etcd logs at error level still gets through. Whether etcd tries to store
// the version before the first term is stored depends on timing (about 9
// starts in 10 here): a regression fails this test most of the time and
// TestEmbeddedLoggerDropsMissingTerm always.
func TestEmbeddedFreshStartQuiet(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, logs := observer.New(zapcore.ErrorLevel)
	e, err := StartEmbedded(ctx, EmbeddedConfig{Dir: t.TempDir(), Fast: true, NoFsync: true, logTo: out})
	if err != nil {
		t.Fatal(err)
	}
	// etcd's monitor tries to store the version as the cluster version is
	// set, which may be after the member is ready; Close waits for it.
	for e.Etcd.Server.ClusterVersion() == nil {
		select {
		case <-ctx.Done():
			e.Close()
			t.Fatal("no cluster version")
		case <-time.After(time.Millisecond):
		}
	}
	e.Etcd.GetLogger().Error(storageVersionFailed, zap.Error(errors.New("disk full")))
	e.Etcd.GetLogger().Error("failed to apply request")
	e.Close()
	var got []string
	for _, l := range logs.All() {
		if l.Message == storageVersionFailed && l.ContextMap()["error"] != "disk full" {
			t.Errorf("logged %q: %v", l.Message, l.ContextMap())
		}
		got = append(got, l.Message)
	}
	if logs.FilterMessage(storageVersionFailed).Len() != 1 || logs.FilterMessage("failed to apply request").Len() != 1 {
		t.Fatalf("logged %q, want the two entries logged by the test among them", got)
	}
}

// A member that cannot start logs nothing of etcd's at error level (the
// bootstrap failure and the listeners stopped by its close, each with a
// stack trace): the error StartEmbedded returns says it, with what each
// peer said.
func TestMemberFailureQuiet(t *testing.T) {
	peer, err := freeAddr("127.0.0.1") // nobody listens there
	if err != nil {
		t.Fatal(err)
	}
	own, err := freeAddr("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	members := []Member{{Name: "a", PeerURL: "http://" + own}, {Name: "b", PeerURL: "http://" + peer}}
	tests := []struct {
		name  string
		state string
		want  string
	}{
		{"joining, no peer answers", StateExisting, "could not retrieve cluster information"},
		{"new, no quorum", StateNew, "no quorum"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			out, logs := observer.New(zapcore.ErrorLevel)
			_, err := StartEmbedded(ctx, EmbeddedConfig{Dir: t.TempDir(), Fast: true, NoFsync: true, logTo: out,
				Member: &MemberConfig{Name: "a", InitialCluster: members, PeerListen: own, State: tt.state, ReadyTimeout: time.Second}})
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "peer b") {
				t.Fatalf("start: %v, want an error with %q naming peer b", err, tt.want)
			}
			for _, l := range logs.All() {
				t.Errorf("logged %q: %v", l.Message, l.ContextMap())
			}
		})
	}
}
