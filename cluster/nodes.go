package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/starbook/starbook"
)

// NodeRecord is a node's registration: nodes/<id>, bound to the lease of the
// node's session, so it vanishes with the node.
type NodeRecord struct {
	ID      string    `json:"id"`
	Lease   int64     `json:"lease"`
	Started time.Time `json:"started"`
	Workers int       `json:"workers"`
	TTL     int       `json:"ttl_seconds"`
}

// RegisterNode stores rec under its lease; durable on return.
func (s *Store) RegisterNode(ctx context.Context, rec NodeRecord) error {
	data, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	if _, err := s.cli.Put(ctx, s.k.node(rec.ID), string(data), clientv3.WithLease(clientv3.LeaseID(rec.Lease))); err != nil {
		return fmt.Errorf("register node %s: %w", rec.ID, err)
	}
	return nil
}

// Node returns node id's registration, or nil when it has none (or one that
// does not decode).
func (s *Store) Node(ctx context.Context, id string) (*NodeRecord, error) {
	resp, err := s.cli.Get(ctx, s.k.node(id))
	if err != nil {
		return nil, fmt.Errorf("read node %s: %w", id, err)
	}
	if len(resp.Kvs) == 0 {
		return nil, nil
	}
	var rec NodeRecord
	if json.Unmarshal(resp.Kvs[0].Value, &rec) != nil {
		return nil, nil
	}
	return &rec, nil
}

// DeregisterNode deletes node id's registration.
func (s *Store) DeregisterNode(ctx context.Context, id string) error {
	if _, err := s.cli.Delete(ctx, s.k.node(id)); err != nil {
		return fmt.Errorf("deregister node %s: %w", id, err)
	}
	return nil
}

// IsLeader reports whether node id currently leads.
func (s *Store) IsLeader(ctx context.Context, id string) bool {
	resp, err := s.cli.Get(ctx, s.k.Election(), clientv3.WithFirstCreate()...)
	return err == nil && len(resp.Kvs) > 0 && string(resp.Kvs[0].Value) == id
}

// ClusterStatus reports the registered nodes, the leader, every node's
// claims (at most 100 ids each) and the store's format.
func (s *Store) ClusterStatus(ctx context.Context) (*starbook.ClusterStatus, error) {
	k := s.k
	resp, err := s.cli.Txn(ctx).Then(
		clientv3.OpGet(k.nodes(), clientv3.WithPrefix()),
		clientv3.OpGet(k.Owners(), clientv3.WithPrefix()),
		clientv3.OpGet(k.Election(), clientv3.WithFirstCreate()...),
		clientv3.OpGet(k.format()),
	).Commit()
	if err != nil {
		return nil, fmt.Errorf("read cluster: %w", err)
	}
	st := &starbook.ClusterStatus{Format: formatBeforeMarker} // a cluster's store has data: its nodes
	if kvs := resp.Responses[3].GetResponseRange().Kvs; len(kvs) > 0 {
		var f Format
		if err := json.Unmarshal(kvs[0].Value, &f); err == nil {
			st.Format, st.FormatWrittenBy = f.Format, f.WrittenBy
		}
	}
	if kvs := resp.Responses[2].GetResponseRange().Kvs; len(kvs) > 0 {
		st.Leader = string(kvs[0].Value)
	}
	claims := map[string][]string{}
	for _, kv := range resp.Responses[1].GetResponseRange().Kvs {
		node := string(kv.Value)
		claims[node] = append(claims[node], k.IDUnder(string(kv.Key), k.Owners()))
	}
	for _, kv := range resp.Responses[0].GetResponseRange().Kvs {
		var rec NodeRecord
		if err := json.Unmarshal(kv.Value, &rec); err != nil {
			continue
		}
		ns := starbook.NodeStatus{ID: rec.ID, Started: rec.Started, Workers: rec.Workers, TTLSeconds: rec.TTL,
			Leader: rec.ID == st.Leader, Claims: len(claims[rec.ID])}
		if ttl, err := s.cli.TimeToLive(ctx, clientv3.LeaseID(rec.Lease)); err == nil {
			ns.LeaseRemaining = float64(ttl.TTL)
		}
		ids := claims[rec.ID]
		sort.Strings(ids)
		if len(ids) > 100 {
			ids = ids[:100]
		}
		ns.Claimed = ids
		st.Nodes = append(st.Nodes, ns)
	}
	return st, nil
}

// Health returns nil when etcd answers within 2 seconds.
func (s *Store) Health(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if _, err := s.cli.Get(ctx, s.k.probe("health"), clientv3.WithCountOnly()); err != nil {
		return fmt.Errorf("etcd: %w", err)
	}
	return nil
}
