package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/starbook/starbook/downstream"
	sbruntime "github.com/starbook/starbook/runtime"
	"github.com/starbook/starbook/triggers"
)

var _ downstream.Circuits = (*Store)(nil)

// SetCircuit replaces host's circuit record, circuits/<host>, with c (nil
// deletes it: closed) if its mod revision is still rev (0: absent). It
// reports whether it did and the record's new revision; durable on return.
func (s *Store) SetCircuit(ctx context.Context, host string, rev int64, c *downstream.Circuit) (bool, int64, error) {
	key := s.k.circuit(host)
	op := clientv3.OpDelete(key)
	if c != nil {
		data, err := json.Marshal(c)
		if err != nil {
			return false, 0, fmt.Errorf("circuit %s: %w", host, err)
		}
		op = clientv3.OpPut(key, string(data))
	}
	resp, err := s.cli.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(key), "=", rev)).Then(op).Commit()
	if err != nil {
		return false, 0, fmt.Errorf("set circuit %s: %w", host, err)
	}
	return resp.Succeeded, resp.Header.Revision, nil
}

// CircuitEvent is a circuit record as read or watched: Circuit nil when the
// host's circuit is closed (the record was deleted).
type CircuitEvent struct {
	Host     string
	Circuit  *downstream.Circuit
	Revision int64
}

// DecodeCircuit reads a key-value of the circuits/ prefix (deleted: a nil
// Circuit); ok is false for a key elsewhere or a record that does not decode.
func (k Keys) DecodeCircuit(kv *mvccpb.KeyValue, deleted bool) (CircuitEvent, bool) {
	host, ok := strings.CutPrefix(string(kv.Key), k.Circuits())
	if !ok || host == "" {
		return CircuitEvent{}, false
	}
	ev := CircuitEvent{Host: host, Revision: kv.ModRevision}
	if deleted {
		return ev, true
	}
	var c downstream.Circuit
	if err := json.Unmarshal(kv.Value, &c); err != nil {
		return CircuitEvent{}, false
	}
	ev.Circuit = &c
	return ev, true
}

// Circuits returns the open and half-open circuits and the store revision
// they were read at.
func (s *Store) Circuits(ctx context.Context) ([]CircuitEvent, int64, error) {
	resp, err := s.cli.Get(ctx, s.k.Circuits(), clientv3.WithPrefix())
	if err != nil {
		return nil, 0, fmt.Errorf("read circuits: %w", err)
	}
	var out []CircuitEvent
	for _, kv := range resp.Kvs {
		if ev, ok := s.k.DecodeCircuit(kv, false); ok {
			out = append(out, ev)
		}
	}
	return out, resp.Header.Revision, nil
}

// DefaultCircuitGrace is how long past its Until the leader keeps a circuit
// record before reaping it. Past Until an open circuit lets a probe go and a
// half-open one gives its probe up, and the first request to the host then
// rewrites the record: one still untouched an hour later belongs to a host
// nobody calls any more (a runbook removed, a host renamed).
const DefaultCircuitGrace = time.Hour

// circuitReapBatch is how many records one reap txn deletes: each is a
// nested txn (one compare, one delete), one op of the outer txn, well under
// etcd's default limit of 128.
const circuitReapBatch = 64

// ReapedCircuit is a circuit record ReapCircuits deleted.
type ReapedCircuit struct {
	Host string
	// Circuit is the record deleted; nil when it did not decode.
	Circuit *downstream.Circuit
	// Revision is the record's mod revision, the one its delete compared.
	Revision int64
}

// ReapCircuits deletes the circuit records whose Until is before olderThan
// and those that do not decode (no node can ever read them), in one txn per
// batch of circuitReapBatch. Each delete compares the record's mod revision
// with the one read, so a record a node rewrote meanwhile is kept. Every
// node sees a delete through its watch of circuits/ as the host's circuit
// closing. It returns the records deleted, those of the batches committed
// before an error too.
func (s *Store) ReapCircuits(ctx context.Context, olderThan time.Time) ([]ReapedCircuit, error) {
	stale, err := s.staleCircuits(ctx, olderThan)
	if err != nil {
		return nil, err
	}
	return s.deleteCircuits(ctx, stale)
}

// staleCircuits reads the circuit records ReapCircuits deletes: Until before
// olderThan, or not decoding.
func (s *Store) staleCircuits(ctx context.Context, olderThan time.Time) ([]ReapedCircuit, error) {
	resp, err := s.cli.Get(ctx, s.k.Circuits(), clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("read circuits: %w", err)
	}
	var out []ReapedCircuit
	for _, kv := range resp.Kvs {
		rc := ReapedCircuit{Host: strings.TrimPrefix(string(kv.Key), s.k.Circuits()), Revision: kv.ModRevision}
		var c downstream.Circuit
		if err := json.Unmarshal(kv.Value, &c); err == nil {
			if !c.Until.Before(olderThan) {
				continue
			}
			rc.Circuit = &c
		}
		out = append(out, rc)
	}
	return out, nil
}

// deleteCircuits deletes each of records still at its Revision, one txn
// per batch, and returns those it deleted.
func (s *Store) deleteCircuits(ctx context.Context, records []ReapedCircuit) ([]ReapedCircuit, error) {
	var reaped []ReapedCircuit
	for batch := range slices.Chunk(records, circuitReapBatch) {
		ops := make([]clientv3.Op, len(batch))
		for i, rc := range batch {
			key := s.k.circuit(rc.Host)
			ops[i] = clientv3.OpTxn([]clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(key), "=", rc.Revision)},
				[]clientv3.Op{clientv3.OpDelete(key)}, nil)
		}
		resp, err := s.cli.Txn(ctx).Then(ops...).Commit()
		if err != nil {
			return reaped, fmt.Errorf("reap circuits: %w", err)
		}
		for i, r := range resp.Responses {
			if r.GetResponseTxn().GetSucceeded() {
				reaped = append(reaped, batch[i])
			}
		}
	}
	return reaped, nil
}

// CircuitReaping configures the leader's reaping of stale circuit records
// (ReapCircuits). Zero fields take the defaults.
type CircuitReaping struct {
	// Grace is how long past its Until a record is kept (default
	// DefaultCircuitGrace).
	Grace time.Duration
	// Interval between passes; the first runs when leadership starts
	// (default 10m).
	Interval time.Duration
	// Now is the clock Until is judged by; the store's when nil.
	Now func() time.Time
	// Logger gets one line per record reaped: Info with the host, Warn for a
	// record that did not decode; nil discards.
	Logger *slog.Logger
	// OnPass, when set, is told each pass's outcome (tests, metrics).
	OnPass func(reaped []ReapedCircuit, err error)
}

// CircuitReapTask returns a leader task (node.Config.LeaderTasks) that reaps
// the circuit records past their Until by more than r.Grace, every
// r.Interval while the node leads.
func (s *Store) CircuitReapTask(r CircuitReaping) func(ctx context.Context) {
	if r.Grace <= 0 {
		r.Grace = DefaultCircuitGrace
	}
	if r.Interval <= 0 {
		r.Interval = 10 * time.Minute
	}
	if r.Now == nil {
		r.Now = func() time.Time { return s.now() }
	}
	if r.Logger == nil {
		r.Logger = slog.New(slog.DiscardHandler)
	}
	return func(ctx context.Context) {
		t := time.NewTicker(r.Interval)
		defer t.Stop()
		for {
			olderThan := r.Now().Add(-r.Grace)
			reaped, err := s.ReapCircuits(ctx, olderThan)
			if ctx.Err() != nil {
				return
			}
			for _, rc := range reaped {
				if rc.Circuit == nil {
					r.Logger.Warn("circuit reaped: its record did not decode", "host", rc.Host, "revision", rc.Revision)
					continue
				}
				r.Logger.Info("circuit reaped: stale record closed", "host", rc.Host, "state", rc.Circuit.State,
					"until", rc.Circuit.Until, "by", rc.Circuit.By, "grace", r.Grace)
			}
			if err != nil {
				r.Logger.Warn("circuit reaping", "err", err, "reaped", len(reaped))
			}
			if r.OnPass != nil {
				r.OnPass(reaped, err)
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}
}

// NodeCount returns how many nodes are registered (live).
func (s *Store) NodeCount(ctx context.Context) (int, error) {
	resp, err := s.cli.Get(ctx, s.k.nodes(), clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return 0, fmt.Errorf("count nodes: %w", err)
	}
	return int(resp.Count), nil
}

// HTTPLimits returns the http_limit() declarations of every runbook's
// current version, by runbook.
func (s *Store) HTTPLimits(ctx context.Context) (map[string][]downstream.Limit, error) {
	resp, err := s.cli.Get(ctx, s.k.Runbooks(), clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return nil, fmt.Errorf("list runbooks: %w", err)
	}
	out := map[string][]downstream.Limit{}
	for _, kv := range resp.Kvs {
		name, ok := s.k.CurrentOf(string(kv.Key))
		if !ok {
			continue
		}
		limits, err := s.HTTPLimitsOf(ctx, name)
		if err != nil {
			return nil, err
		}
		if len(limits) > 0 {
			out[name] = limits
		}
	}
	return out, nil
}

// HTTPLimitsOf returns the http_limit() declarations of runbook name's
// current version: none when it declares none or has no current version.
func (s *Store) HTTPLimitsOf(ctx context.Context, name string) ([]downstream.Limit, error) {
	b, _, err := s.Bundle(ctx, name, "")
	if errors.Is(err, sbruntime.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("http limits of %s: %w", name, err)
	}
	if !strings.Contains(string(b.Triggers), `"http_limits"`) {
		return nil, nil
	}
	set, err := triggers.DecodeSet(b.Triggers)
	if err != nil {
		return nil, fmt.Errorf("http limits of %s: %w", name, err)
	}
	out := make([]downstream.Limit, 0, len(set.HTTPLimits))
	for _, l := range set.HTTPLimits {
		out = append(out, *l)
	}
	return out, nil
}

// CurrentOf returns the runbook whose current-version key key is
// (runbooks/<name>/current); ok is false for any other key.
func (k Keys) CurrentOf(key string) (name string, ok bool) {
	rest, ok := strings.CutPrefix(key, k.Runbooks())
	if !ok {
		return "", false
	}
	return cutSuffix(rest, "/current")
}
