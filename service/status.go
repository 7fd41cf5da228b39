package service

import (
	"context"

	"github.com/starbook/starbook"
)

var _ starbook.ClusterReader = (*Service)(nil)

// Cluster reports the registered nodes, the leader and every node's claims.
func (s *Service) Cluster(ctx context.Context) (*starbook.ClusterStatus, error) {
	return s.Store.ClusterStatus(ctx)
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
	return s.Node.Ready()
}
