package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/starbook/starbook"
)

// Cluster reports the registered nodes, the leader and every node's claims.
func (s *Service) Cluster(ctx context.Context) (*starbook.ClusterStatus, error) {
	k := s.Store.k
	resp, err := s.Store.cli.Txn(ctx).Then(
		clientv3.OpGet(k.nodes(), clientv3.WithPrefix()),
		clientv3.OpGet(k.Owners(), clientv3.WithPrefix()),
		clientv3.OpGet(k.Election(), clientv3.WithFirstCreate()...),
	).Commit()
	if err != nil {
		return nil, fmt.Errorf("read cluster: %w", err)
	}
	st := &starbook.ClusterStatus{}
	if kvs := resp.Responses[2].GetResponseRange().Kvs; len(kvs) > 0 {
		st.Leader = string(kvs[0].Value)
	}
	claims := map[string][]string{}
	for _, kv := range resp.Responses[1].GetResponseRange().Kvs {
		node := string(kv.Value)
		claims[node] = append(claims[node], k.IDFrom(string(kv.Key), "owners/"))
	}
	for _, kv := range resp.Responses[0].GetResponseRange().Kvs {
		var info nodeInfo
		if err := json.Unmarshal(kv.Value, &info); err != nil {
			continue
		}
		ns := starbook.NodeStatus{ID: info.ID, Started: info.Started, Workers: info.Workers, TTLSeconds: info.TTL,
			Leader: info.ID == st.Leader, Claims: len(claims[info.ID])}
		if ttl, err := s.Store.cli.TimeToLive(ctx, clientv3.LeaseID(info.Lease)); err == nil {
			ns.LeaseRemaining = float64(ttl.TTL)
		}
		ids := claims[info.ID]
		sort.Strings(ids)
		if len(ids) > 100 {
			ids = ids[:100]
		}
		ns.Claimed = ids
		st.Nodes = append(st.Nodes, ns)
	}
	return st, nil
}

// Ready reports whether this node can take work: etcd answers and the node
// holds a live session.
func (s *Service) Ready(ctx context.Context) error {
	if err := s.Health(ctx); err != nil {
		return err
	}
	if s.Node == nil {
		return nil
	}
	sess := s.Node.sess()
	select {
	case <-sess.Done():
		return errors.New("session expired; rejoining")
	default:
		return nil
	}
}
