package cluster

import (
	"context"
	"fmt"

	sbruntime "github.com/starbook/starbook/runtime"
)

// FireTimer resolves the wait a timer key points at with the wait's timeout
// outcome, and deletes the timer. A timer whose wait is gone is just deleted.
func (s *Store) FireTimer(ctx context.Context, key string) error {
	_, id, pos, err := s.k.ParseTimer(key)
	if err != nil {
		_, _ = s.cli.Delete(ctx, key)
		return err
	}
	resp, err := s.cli.Get(ctx, s.k.wait(id, pos))
	if err != nil {
		return fmt.Errorf("read wait %s/%s: %w", id, pos, err)
	}
	if len(resp.Kvs) > 0 {
		w, err := s.k.decodeWait(resp.Kvs[0])
		if err != nil {
			return err
		}
		if w.Kind == sbruntime.KindApproval {
			return s.fireApproval(ctx, key, id, pos) // escalation, partial approvals
		}
		if _, err := s.ResolveWait(ctx, id, pos, w.OnTimeout, w.TimeoutError); err != nil {
			return err
		}
	}
	if _, err := s.cli.Delete(ctx, key); err != nil {
		return fmt.Errorf("delete timer %s: %w", key, err)
	}
	return nil
}
