package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/starbook/starbook/downstream"
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

// NodeCount returns how many nodes are registered (live).
func (s *Store) NodeCount(ctx context.Context) (int, error) {
	resp, err := s.cli.Get(ctx, s.k.nodes(), clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return 0, fmt.Errorf("count nodes: %w", err)
	}
	return int(resp.Count), nil
}

// HTTPLimits returns the http_limit() declarations of every runbook's
// current version, sorted by host then runbook: several may name one host
// (downstream.Merge combines them).
func (s *Store) HTTPLimits(ctx context.Context) ([]downstream.Limit, error) {
	current, err := s.CurrentVersions(ctx)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(current))
	for name := range current {
		names = append(names, name)
	}
	sort.Strings(names)
	var out []downstream.Limit
	for _, name := range names {
		b, _, err := s.Bundle(ctx, name, current[name])
		if err != nil {
			return nil, fmt.Errorf("http limits of %s: %w", name, err)
		}
		if len(b.Triggers) == 0 || !strings.Contains(string(b.Triggers), `"http_limits"`) {
			continue
		}
		set, err := triggers.DecodeSet(b.Triggers)
		if err != nil {
			return nil, fmt.Errorf("http limits of %s: %w", name, err)
		}
		for _, l := range set.HTTPLimits {
			out = append(out, *l)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Host < out[j].Host })
	return out, nil
}
