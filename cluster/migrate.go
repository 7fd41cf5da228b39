package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/starbook/starbook"
	sbruntime "github.com/starbook/starbook/runtime"
)

// Migrating an in-flight execution to another version of its runbook (apply
// --migrate) reads it in one txn (ReadMigration), replays what it read
// offline, and re-pins it with one txn fenced on everything that read saw
// (Repin): the record's mod revision, no owner, the runnable key's mod
// revision and no history key written since. A node that holds the
// execution runs the old program in memory and rewrites the record from its
// claim's copy, so an owned execution is never re-pinned; the next claim
// reads the new version in its claim txn.

// Why a re-pin did not commit.
var (
	// ErrOwned: a node owns the execution (it runs).
	ErrOwned = errors.New("a node runs the execution")
	// ErrMoved: the execution changed since it was read (a step, a
	// resolved wait, a claim that came and went, a cancel).
	ErrMoved = errors.New("the execution moved on since it was read")
)

// MigrationState is an execution that has not ended, as a migration reads it.
type MigrationState struct {
	// Record is the execution record as stored; Status is the live one
	// (running when owned, pending when runnable).
	Record  *sbruntime.Execution
	Status  sbruntime.Status
	History []*sbruntime.Event // every attempt's, in position order
	Waits   []*sbruntime.Wait  // pending, in position order
	Owner   string             // the node that owns it, if any

	rev         int64 // mod revision of the record
	runnableRev int64 // mod revision of runnable/<id>, 0 when not runnable
	readRev     int64 // the store revision the read saw
}

// InFlight returns the ids of runbook's executions that have not ended and
// are not pinned to version, oldest first. It reads the live index (the
// work in flight, not the history kept) and the runbook's records.
func (s *Store) InFlight(ctx context.Context, runbook, version string) ([]string, error) {
	stream := []*indexStream{s.k.classStream(classLive, runbook)}
	var ids []string
	seen := map[string]bool{}
	for {
		page, err := s.newestIDs(ctx, stream, "", listChunk, seen)
		if err != nil {
			return nil, fmt.Errorf("list executions of %s: %w", runbook, err)
		}
		recs, err := s.records(ctx, page)
		if err != nil {
			return nil, fmt.Errorf("list executions of %s: %w", runbook, err)
		}
		for _, e := range recs {
			if e.Runbook == runbook && e.Version != version && !e.Status.Terminal() {
				ids = append(ids, e.ID)
			}
		}
		if len(page) < listChunk {
			slices.Reverse(ids)
			return ids, nil
		}
	}
}

// ReadMigration reads execution id's record, owner, runnable key, history
// and pending waits in one txn.
func (s *Store) ReadMigration(ctx context.Context, id string) (*MigrationState, error) {
	resp, err := s.cli.Txn(ctx).Then(
		clientv3.OpGet(s.k.execution(id)),
		clientv3.OpGet(s.k.owner(id)),
		clientv3.OpGet(s.k.runnable(id), clientv3.WithKeysOnly()),
		clientv3.OpGet(s.k.history(id), clientv3.WithPrefix()),
		clientv3.OpGet(s.k.waits(id), clientv3.WithPrefix()),
	).Commit()
	if err != nil {
		return nil, fmt.Errorf("read execution %s: %w", id, err)
	}
	r := resp.Responses
	kvs := r[0].GetResponseRange().Kvs
	if len(kvs) == 0 {
		return nil, fmt.Errorf("execution %q: %w", id, sbruntime.ErrNotFound)
	}
	rec, err := s.k.decodeExecution(kvs[0])
	if err != nil {
		return nil, err
	}
	st := &MigrationState{Record: rec, rev: kvs[0].ModRevision, readRev: resp.Header.Revision}
	if o := r[1].GetResponseRange().Kvs; len(o) > 0 {
		st.Owner = string(o[0].Value)
	}
	if rk := r[2].GetResponseRange().Kvs; len(rk) > 0 {
		st.runnableRev = rk[0].ModRevision
	}
	live := *rec
	deriveStatus(&live, st.Owner, st.runnableRev != 0)
	st.Status = live.Status
	if st.History, err = decodeHistory(r[3].GetResponseRange().Kvs); err != nil {
		return nil, err
	}
	for _, kv := range r[4].GetResponseRange().Kvs {
		w, err := s.k.decodeWait(kv)
		if err != nil {
			return nil, fmt.Errorf("read execution %s: %w", id, err)
		}
		st.Waits = append(st.Waits, w)
	}
	slices.SortFunc(st.Waits, func(a, b *sbruntime.Wait) int { return sbruntime.ComparePositions(a.Position, b.Position) })
	return st, nil
}

// Repin stores next, st's record pinned to another version, and audit with
// it, in one txn that commits only if the execution is still as st read it:
// the same record, no owner, the same runnable key and no history key
// written since the read. Otherwise it stores nothing and returns an error
// wrapping ErrOwned (a node claimed it) or ErrMoved. Durable on return.
func (s *Store) Repin(ctx context.Context, st *MigrationState, next *sbruntime.Execution, audit *starbook.AuditRecord) error {
	id := st.Record.ID
	if next.ID != id {
		return fmt.Errorf("re-pin %s: the new record is %s's", id, next.ID)
	}
	data, err := json.Marshal(next)
	if err != nil {
		return fmt.Errorf("encode execution %s: %w", id, err)
	}
	ops := []clientv3.Op{clientv3.OpPut(s.k.execution(id), string(data))}
	if audit != nil {
		op, err := s.auditOp(audit)
		if err != nil {
			return err
		}
		ops = append(ops, op)
	}
	tx, err := s.cli.Txn(ctx).If(
		clientv3.Compare(clientv3.ModRevision(s.k.execution(id)), "=", st.rev),
		clientv3.Compare(clientv3.CreateRevision(s.k.owner(id)), "=", 0),
		clientv3.Compare(clientv3.ModRevision(s.k.runnable(id)), "=", st.runnableRev),
		// Every key of the history, the attempts' included, is as old as
		// the read: an append since then fails the whole compare.
		clientv3.Compare(clientv3.ModRevision(s.k.history(id)), "<", st.readRev+1).WithPrefix(),
	).Then(ops...).Else(clientv3.OpGet(s.k.owner(id), clientv3.WithKeysOnly())).Commit()
	if err != nil {
		return fmt.Errorf("re-pin %s: %w", id, err)
	}
	if tx.Succeeded {
		return nil
	}
	if len(tx.Responses[0].GetResponseRange().Kvs) > 0 {
		return fmt.Errorf("re-pin %s: %w", id, ErrOwned)
	}
	return fmt.Errorf("re-pin %s: %w", id, ErrMoved)
}
