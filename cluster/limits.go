package cluster

import (
	"context"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"

	sbruntime "github.com/starbook/starbook/runtime"
)

// SetActiveLimit makes CreateExecution (manual and API starts) refuse a run
// of a runbook that has n active executions already (n <= 0: no limit). The
// check reads the count before the create, so starts racing each other may
// exceed it by how many are in flight at once. Call it before the store
// serves starts.
//
// The index the limit counts is written only while a limit is set (a key per
// execution costs etcd memory for as long as it runs): executions created
// while no limit was set, by this node or another, are not counted.
func (s *Store) SetActiveLimit(n int) { s.maxActive = n }

// activeOps are the writes that index a new execution as active: none when
// no active limit is set.
func (s *Store) activeOps(e *sbruntime.Execution) []clientv3.Op {
	if s.maxActive <= 0 {
		return nil
	}
	return []clientv3.Op{clientv3.OpPut(s.k.active(e.Runbook, e.ID), "")}
}

// ActiveExecutions counts the executions of runbook that have not ended.
// Executions created while no active limit was set (see SetActiveLimit) are
// not counted.
func (s *Store) ActiveExecutions(ctx context.Context, runbook string) (int, error) {
	resp, err := s.cli.Get(ctx, s.k.activeOf(runbook), clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return 0, fmt.Errorf("count active executions of %s: %w", runbook, err)
	}
	return int(resp.Count), nil
}

// checkActive refuses one more execution of runbook over the active limit.
func (s *Store) checkActive(ctx context.Context, runbook string) error {
	if s.maxActive <= 0 {
		return nil
	}
	n, err := s.ActiveExecutions(ctx, runbook)
	if err != nil {
		return err
	}
	if n >= s.maxActive {
		return &sbruntime.LimitError{Limit: "max_active_executions", Msg: fmt.Sprintf(
			"runbook %s has %d active executions, the most it may have (serve --max-active-executions %d): wait for some to end, or cancel some",
			runbook, n, s.maxActive)}
	}
	return nil
}
