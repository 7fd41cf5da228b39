package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/starbook/starbook/downstream"
)

// putCircuitRaw stores value as host's circuit record and returns its mod
// revision.
func putCircuitRaw(t *testing.T, s *Store, host, value string) int64 {
	t.Helper()
	resp, err := s.cli.Put(context.Background(), s.k.circuit(host), value)
	if err != nil {
		t.Fatal(err)
	}
	return resp.Header.Revision
}

func circuitJSON(t *testing.T, c downstream.Circuit) string {
	t.Helper()
	data, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// TestReapCircuits: one pass over a store holding every kind of record
// deletes the stale ones (open or half-open, Until past by more than the
// grace) and those that do not decode, and keeps the recent ones and the one
// a node rewrote between the reaper's read and its delete: its compare on
// the mod revision fails alone, in the same txn as the deletes that commit.
func TestReapCircuits(t *testing.T) {
	s := NewStore(startSuiteEtcd(t).Client, "/reap/")
	defer s.Close()
	ctx := context.Background()
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	olderThan := now.Add(-DefaultCircuitGrace)
	cases := []struct {
		name, host string
		value      string // the record stored
		rewrite    bool   // a node rewrites it after the reaper read it
		reaped     bool
	}{
		{name: "stale open", host: "open.example.com", reaped: true,
			value: circuitJSON(t, downstream.Circuit{State: "open", Until: now.Add(-2 * time.Hour), By: "n1", Failures: 5})},
		{name: "stale half-open", host: "probe.example.com", reaped: true,
			value: circuitJSON(t, downstream.Circuit{State: "half-open", Until: olderThan.Add(-time.Second), By: "n2"})},
		{name: "within the grace", host: "recent.example.com",
			value: circuitJSON(t, downstream.Circuit{State: "open", Until: olderThan.Add(time.Second), By: "n1"})},
		{name: "until the grace's very start", host: "edge.example.com",
			value: circuitJSON(t, downstream.Circuit{State: "open", Until: olderThan, By: "n1"})},
		{name: "still open", host: "fresh.example.com",
			value: circuitJSON(t, downstream.Circuit{State: "open", Until: now.Add(30 * time.Second), By: "n1"})},
		{name: "rewritten between read and delete", host: "busy.example.com", rewrite: true,
			value: circuitJSON(t, downstream.Circuit{State: "open", Until: now.Add(-3 * time.Hour), By: "n1"})},
		{name: "malformed", host: "garbage.example.com", reaped: true, value: `{"state": "open", "until": `},
	}
	revs := map[string]int64{}
	for _, c := range cases {
		revs[c.host] = putCircuitRaw(t, s, c.host, c.value)
	}

	stale, err := s.staleCircuits(ctx, olderThan)
	if err != nil {
		t.Fatal(err)
	}
	rewritten := downstream.Circuit{State: "half-open", Until: now.Add(30 * time.Second), By: "n3"}
	for _, c := range cases {
		if c.rewrite { // as a node claiming the probe does
			ok, _, err := s.SetCircuit(ctx, c.host, revs[c.host], &rewritten)
			if err != nil || !ok {
				t.Fatalf("rewrite %s: %v, %v", c.host, ok, err)
			}
		}
	}
	reaped, err := s.deleteCircuits(ctx, stale)
	if err != nil {
		t.Fatal(err)
	}

	byHost := map[string]ReapedCircuit{}
	for _, rc := range reaped {
		byHost[rc.Host] = rc
	}
	if len(byHost) != len(reaped) {
		t.Errorf("reaped %+v: a host twice", reaped)
	}
	left, _, err := s.Circuits(ctx)
	if err != nil {
		t.Fatal(err)
	}
	stored := map[string]*downstream.Circuit{}
	for _, ev := range left {
		stored[ev.Host] = ev.Circuit
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rc, gone := byHost[c.host]
			resp, err := s.cli.Get(ctx, s.k.circuit(c.host))
			if err != nil {
				t.Fatal(err)
			}
			present := len(resp.Kvs) == 1
			switch {
			case c.reaped && (!gone || present):
				t.Fatalf("reaped %v, record present %v; want it reaped", gone, present)
			case !c.reaped && (gone || !present):
				t.Fatalf("reaped %v, record present %v; want it kept", gone, present)
			case !c.reaped:
				return
			}
			if rc.Revision != revs[c.host] {
				t.Errorf("reaped revision %d, want %d", rc.Revision, revs[c.host])
			}
			if c.name == "malformed" {
				if rc.Circuit != nil {
					t.Errorf("malformed record reaped as %+v, want a nil Circuit", rc.Circuit)
				}
				return
			}
			if rc.Circuit == nil || circuitJSON(t, *rc.Circuit) != c.value {
				t.Errorf("reaped %+v, want the record %s", rc.Circuit, c.value)
			}
		})
	}
	if got := stored["busy.example.com"]; got == nil || *got != rewritten {
		t.Errorf("rewritten record reads %+v, want the rewrite %+v", got, rewritten)
	}
}

// TestReapCircuitsBatches: more stale records than one txn deletes are all
// reaped, a batch at a time, by ReapCircuits' read and delete together.
func TestReapCircuitsBatches(t *testing.T) {
	s := NewStore(startSuiteEtcd(t).Client, "/reapbatch/")
	defer s.Close()
	ctx := context.Background()
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	n := 2*circuitReapBatch + 3
	for i := range n {
		putCircuitRaw(t, s, fmt.Sprintf("h%03d.example.com", i),
			circuitJSON(t, downstream.Circuit{State: "open", Until: now.Add(-2 * time.Hour), By: "n1"}))
	}
	putCircuitRaw(t, s, "kept.example.com", circuitJSON(t, downstream.Circuit{State: "open", Until: now, By: "n1"}))
	before, err := s.cli.Get(ctx, s.k.Circuits(), clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	reaped, err := s.ReapCircuits(ctx, now.Add(-DefaultCircuitGrace))
	if err != nil || len(reaped) != n {
		t.Fatalf("reaped %d, %v; want %d", len(reaped), err, n)
	}
	after, err := s.cli.Get(ctx, s.k.Circuits(), clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	if len(after.Kvs) != 1 || string(after.Kvs[0].Key) != s.k.circuit("kept.example.com") {
		t.Errorf("%d records left of %d, want kept.example.com alone", len(after.Kvs), before.Count)
	}
	// Three batches: three revisions past the last put.
	if got, want := after.Header.Revision, before.Header.Revision+3; got != want {
		t.Errorf("store at revision %d after the reap, want %d: one txn per batch of %d", got, want, circuitReapBatch)
	}
}

// syncBuffer is a bytes.Buffer safe for a logger and a test to share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// TestCircuitReapTask: the leader task's first pass, on the store's clock
// with the default grace, reaps a stale record and a malformed one, keeps a
// recent one, and logs each reaped host: Info for the stale record, Warn for
// the one that did not decode.
func TestCircuitReapTask(t *testing.T) {
	s := NewStore(startSuiteEtcd(t).Client, "/reaptask/")
	defer s.Close()
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	s.SetClock(func() time.Time { return now })
	putCircuitRaw(t, s, "old.example.com", circuitJSON(t, downstream.Circuit{State: "open", Until: now.Add(-61 * time.Minute), By: "n1"}))
	putCircuitRaw(t, s, "new.example.com", circuitJSON(t, downstream.Circuit{State: "open", Until: now.Add(-59 * time.Minute), By: "n1"}))
	putCircuitRaw(t, s, "bad.example.com", "not json")

	var logs syncBuffer
	passes := make(chan []ReapedCircuit, 1)
	task := s.CircuitReapTask(CircuitReaping{Interval: time.Hour,
		Logger: slog.New(slog.NewTextHandler(&logs, nil)),
		OnPass: func(reaped []ReapedCircuit, err error) {
			if err != nil {
				t.Errorf("pass: %v", err)
			}
			passes <- reaped
		}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); task(ctx) }()
	reaped := <-passes
	cancel()
	<-done

	var hosts []string
	for _, rc := range reaped {
		hosts = append(hosts, rc.Host)
	}
	if got := strings.Join(hosts, ","); got != "bad.example.com,old.example.com" {
		t.Errorf("reaped %s, want bad.example.com,old.example.com", got)
	}
	out := logs.String()
	for _, want := range []string{
		`level=INFO msg="circuit reaped: stale record closed" host=old.example.com state=open`,
		`level=WARN msg="circuit reaped: its record did not decode" host=bad.example.com`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "new.example.com") {
		t.Errorf("log names the recent record's host:\n%s", out)
	}
}
