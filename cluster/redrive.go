package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

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
	for try := 0; ; try++ {
		usageCmps, usageOps, err := s.redriveUsage(ctx, st)
		if err != nil {
			return err
		}
		tx, err := s.cli.Txn(ctx).If(append(s.redriveCmps(st), usageCmps...)...).Then(append(ops, usageOps...)...).
			Else(clientv3.OpGet(s.k.execution(next.ID), clientv3.WithKeysOnly())).Commit()
		if err != nil {
			return fmt.Errorf("redrive %s: %w", next.ID, err)
		}
		if tx.Succeeded {
			return nil
		}
		// A fold of its usage (the leader's, at most a few per end) can
		// race it: read them again, unless the record itself changed.
		if kvs := tx.Responses[0].GetResponseRange().Kvs; try == 3 || len(kvs) == 0 || kvs[0].ModRevision != st.Rev {
			return redriveConflict(next.ID)
		}
	}
}

// redriveUsage returns the compares and writes that let st's execution,
// ended, be rewritten by its redriven run while its usage rollups stay
// exact: the fold drops the usagefolded/ key of an ended execution's final
// usage (rollups.go), and the redriven run's writes are folded as
// differences from it. For each day of its final usage, recomputed from
// the history read (finalUsagePuts: the values its end wrote): a final key
// not yet folded is marked final no more; one folded and dropped gets its
// usagefolded/ key back with the value folded; one folded before its
// execution ended (or before final keys) is as it should be already.
func (s *Store) redriveUsage(ctx context.Context, st *RedriveState) ([]clientv3.Cmp, []clientv3.Op, error) {
	puts := s.k.finalUsagePuts(st.Execution, st.History)
	if len(puts) == 0 {
		return nil, nil, nil
	}
	reads := make([]clientv3.Op, 0, 2*len(puts))
	folded := make([]string, len(puts))
	for i, p := range puts {
		day, rest, _ := strings.Cut(strings.TrimPrefix(p.key, s.k.usage()), "/")
		rb, id, _ := strings.Cut(rest, "/")
		folded[i] = s.k.usageFoldedKey(day, rb, id)
		reads = append(reads, clientv3.OpGet(p.key), clientv3.OpGet(folded[i]))
	}
	resp, err := s.cli.Txn(ctx).Then(reads...).Commit()
	if err != nil {
		return nil, nil, fmt.Errorf("read usage of %s: %w", st.Execution.ID, err)
	}
	var cmps []clientv3.Cmp
	var ops []clientv3.Op
	for i, p := range puts {
		var urev, frev int64
		u := resp.Responses[2*i].GetResponseRange().Kvs
		f := resp.Responses[2*i+1].GetResponseRange().Kvs
		if len(u) > 0 {
			urev = u[0].ModRevision
		}
		if len(f) > 0 {
			frev = f[0].ModRevision
		}
		cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(p.key), "=", urev),
			clientv3.Compare(clientv3.ModRevision(folded[i]), "=", frev))
		switch {
		case len(u) > 0 && isFinalUsage(u[0].Value):
			ops = append(ops, clientv3.OpPut(p.key, string(unfinal(u[0].Value))))
		case len(u) == 0 && len(f) == 0:
			ops = append(ops, clientv3.OpPut(folded[i], string(unfinal(p.value))))
		}
	}
	return cmps, ops, nil
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
