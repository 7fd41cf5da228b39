package cluster

import (
	"context"
	"encoding/json"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"

	sbruntime "github.com/starbook/starbook/runtime"
)

// Redriving an ended execution is one txn fenced on the record's mod
// revision as the redrive read it, on no node owning it and on it not being
// runnable: of two redrives of one execution at once exactly one commits,
// and the other gets ErrConflict (409). Nothing is written before that txn.

// RedriveState is an ended execution as a redrive reads it.
type RedriveState struct {
	Execution *sbruntime.Execution
	History   []*sbruntime.Event // every attempt's, in position order
	Rev       int64              // mod revision of the record
	Owner     string             // the node that owns it, if any
	Runnable  bool
	folded    []*sbruntime.Event // the events folded into its record (fold.go)
}

// unfoldOps write the events folded into st's record back as keys: a
// redrive rewrites the record without them.
func (s *Store) unfoldOps(st *RedriveState) ([]clientv3.Op, error) {
	ops := make([]clientv3.Op, 0, len(st.folded))
	for _, ev := range st.folded {
		data, err := ev.EncodeJSON()
		if err != nil {
			return nil, err
		}
		ops = append(ops, clientv3.OpPut(s.k.eventAt(st.Execution.ID, ev.Position, ev.Attempt), string(data)))
	}
	return ops, nil
}

// ReadRedrive reads execution id, its history and whether it is owned or
// runnable, in one txn.
func (s *Store) ReadRedrive(ctx context.Context, id string) (*RedriveState, error) {
	resp, err := s.cli.Txn(ctx).Then(
		clientv3.OpGet(s.k.execution(id)),
		clientv3.OpGet(s.k.owner(id)),
		clientv3.OpGet(s.k.runnable(id), clientv3.WithKeysOnly()),
		clientv3.OpGet(s.k.history(id), clientv3.WithPrefix()),
	).Commit()
	if err != nil {
		return nil, fmt.Errorf("read execution %s: %w", id, err)
	}
	r := resp.Responses
	kvs := r[0].GetResponseRange().Kvs
	if len(kvs) == 0 {
		return nil, fmt.Errorf("execution %q: %w", id, sbruntime.ErrNotFound)
	}
	e, err := s.k.decodeExecution(kvs[0])
	if err != nil {
		return nil, err
	}
	st := &RedriveState{Execution: e, Rev: kvs[0].ModRevision, Runnable: len(r[2].GetResponseRange().Kvs) > 0}
	if o := r[1].GetResponseRange().Kvs; len(o) > 0 {
		st.Owner = string(o[0].Value)
	}
	if st.History, err = historyOf(kvs[0].Value, r[3].GetResponseRange().Kvs); err != nil {
		return nil, fmt.Errorf("execution %s: %w", id, err)
	}
	if st.folded, err = unfold(kvs[0].Value); err != nil {
		return nil, fmt.Errorf("execution %s: %w", id, err)
	}
	return st, nil
}

// redriveCmps fence a redrive on the state it read.
func (s *Store) redriveCmps(st *RedriveState) []clientv3.Cmp {
	id := st.Execution.ID
	return []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(s.k.execution(id)), "=", st.Rev),
		clientv3.Compare(clientv3.CreateRevision(s.k.owner(id)), "=", 0),
		clientv3.Compare(clientv3.CreateRevision(s.k.runnable(id)), "=", 0)}
}

func redriveConflict(id string) error {
	return sbruntime.Conflictf("execution %s changed while it was being redriven (another redrive won?): look at it again", id)
}

// RedriveFailed stores next, the record of st's execution with its attempt
// boundary appended, and makes it runnable, if the execution is still as st
// read it; its dead letter goes. Durable on return.
func (s *Store) RedriveFailed(ctx context.Context, st *RedriveState, next *sbruntime.Execution) error {
	data, err := json.Marshal(next)
	if err != nil {
		return err
	}
	ops := append([]clientv3.Op{clientv3.OpPut(s.k.execution(next.ID), string(data)),
		clientv3.OpPut(s.k.runnable(next.ID), "")}, s.activeOps(next)...)
	ops = append(ops, s.k.deadLetterDeleteOps(st.Execution)...)
	ops = append(ops, s.k.indexMoveOps(next, indexClass(st.Execution.Status))...)
	unfolded, err := s.unfoldOps(st)
	if err != nil {
		return err
	}
	ops = append(ops, unfolded...)
	ops = append(ops, s.k.rollupRetractOps(st.Execution)...) // it ends again: its end counts no more (rollups.go)
	tx, err := s.cli.Txn(ctx).If(s.redriveCmps(st)...).Then(ops...).Commit()
	if err != nil {
		return fmt.Errorf("redrive %s: %w", next.ID, err)
	}
	if !tx.Succeeded {
		return redriveConflict(next.ID)
	}
	return nil
}

// RedriveStart stores fresh, a new execution redriving st's from the start,
// and old, st's record linked to it, if the execution is still as st read
// it; old's dead letter goes. Durable on return.
func (s *Store) RedriveStart(ctx context.Context, st *RedriveState, old, fresh *sbruntime.Execution) error {
	oldData, err := json.Marshal(old)
	if err != nil {
		return err
	}
	data, err := s.encodeNew(ctx, fresh)
	if err != nil {
		return err
	}
	cmps := append(s.redriveCmps(st), clientv3.Compare(clientv3.CreateRevision(s.k.execution(fresh.ID)), "=", 0))
	ops := append([]clientv3.Op{clientv3.OpPut(s.k.execution(old.ID), string(oldData)),
		clientv3.OpPut(s.k.execution(fresh.ID), string(data)),
		clientv3.OpPut(s.k.runnable(fresh.ID), "")}, s.activeOps(fresh)...)
	ops = append(ops, s.k.deadLetterDeleteOps(st.Execution)...)
	ops = append(ops, s.k.indexMoveOps(old, indexClass(st.Execution.Status))...)
	ops = append(ops, s.k.indexOps(fresh)...)
	unfolded, err := s.unfoldOps(st)
	if err != nil {
		return err
	}
	ops = append(ops, unfolded...)
	tx, err := s.cli.Txn(ctx).If(cmps...).Then(ops...).Commit()
	if err != nil {
		return fmt.Errorf("redrive %s: %w", old.ID, err)
	}
	if !tx.Succeeded {
		return redriveConflict(old.ID)
	}
	return nil
}
