package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

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
