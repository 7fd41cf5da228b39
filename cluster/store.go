package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/starbook/starbook"
	sbruntime "github.com/starbook/starbook/runtime"
)

// Store keeps runbooks, executions and their histories in etcd. Every write an
// owner makes goes through a Claim and is fenced on its ownership key.
type Store struct {
	cli   *clientv3.Client
	k     Keys
	now   func() time.Time
	batch *committer
	dir   starbook.ChatDirectory // resolves Slack approvers; see SetDirectory
	// maxActive bounds a runbook's active executions at CreateExecution; see
	// SetActiveLimit.
	maxActive   int
	current     versionCache // runbooks' current versions, checked by every start
	ends        endFeed      // executions that end through this store; see OnEnd
	budgets     *Budgets     // this node's shares of the day budgets; see budget.go
	schemas     schemaCache  // compiled input schemas of runbook versions; see schema.go
	rolloutFeed rolloutFeed  // rollout transitions committed here; see OnRollout
	kept        keptCounts   // kept signals as last counted; see keptcount.go
	reads       *readBatcher // fenced reads of signal deliveries; see readbatch.go
}

// StoreOption configures a Store.
type StoreOption func(*Store)

// WithMaxTxnOps sets the most compares, ops or else-ops one batched txn may
// carry: etcd's --max-txn-ops (128 by default; the embedded etcd allows 1024).
func WithMaxTxnOps(n int) StoreOption {
	return func(s *Store) { s.batch, s.reads = newCommitter(s.cli, n), &readBatcher{cli: s.cli, maxOps: n} }
}

// NewStore returns a store under prefix (default "/starbook/").
func NewStore(cli *clientv3.Client, prefix string, opts ...StoreOption) *Store {
	if prefix == "" {
		prefix = "/starbook/"
	}
	s := &Store{cli: cli, k: Keys{prefix: prefix}, now: time.Now, batch: newCommitter(cli, defaultMaxTxnOps),
		reads: &readBatcher{cli: cli, maxOps: defaultMaxTxnOps}}
	s.budgets = newBudgets(s)
	for _, o := range opts {
		o(s)
	}
	return s
}

// Close stops the store's background committers, waiting for them.
func (s *Store) Close() { s.batch.close() }

// Client returns the etcd client.
func (s *Store) Client() *clientv3.Client { return s.cli }

// SetClock makes now the store's clock (time.Now by default): the time that
// records, audit entries and retention see. Call it before the store serves.
func (s *Store) SetClock(now func() time.Time) { s.now = now }

// Keys returns the builder of the store's keys.
func (s *Store) Keys() Keys { return s.k }

type storedBundle struct {
	sbruntime.Bundle
	CreatedAt time.Time `json:"created_at"`
}

// PutBundles makes each bundle its runbook's current version, storing the
// version if it is new, all in one transaction. It reports which bundles were
// already current. A runbook whose rollout is active cannot get a new current
// version this way: the apply fails with sbruntime.ErrConflict, storing
// nothing (promote or abort the rollout first).
func (s *Store) PutBundles(ctx context.Context, bundles []*sbruntime.Bundle) (unchanged []bool, created time.Time, err error) {
	for attempt := 0; ; attempt++ {
		unchanged, created, ok, err := s.putBundles(ctx, bundles)
		if err != nil || ok {
			return unchanged, created, err
		}
		if attempt == 4 {
			return nil, created, sbruntime.Conflictf("apply: a rollout changed meanwhile, five times; try again")
		}
	}
}

// putBundles is one attempt of PutBundles; ok is false when a rollout key
// changed between its read and the txn.
func (s *Store) putBundles(ctx context.Context, bundles []*sbruntime.Bundle) (unchanged []bool, created time.Time, ok bool, err error) {
	created = s.now().UTC()
	unchanged = make([]bool, len(bundles))
	var cmps []clientv3.Cmp
	var ops []clientv3.Op
	size := 0
	for i, b := range bundles {
		rk := s.k.rollout(b.Name)
		resp, err := s.cli.Txn(ctx).Then(clientv3.OpGet(s.k.runbookCurrent(b.Name)), clientv3.OpGet(rk)).Commit()
		if err != nil {
			return nil, created, false, fmt.Errorf("read runbook %s: %w", b.Name, err)
		}
		cur, rkvs := resp.Responses[0].GetResponseRange().Kvs, resp.Responses[1].GetResponseRange().Kvs
		if len(cur) == 1 && string(cur[0].Value) == b.Version {
			unchanged[i] = true
			continue
		}
		var rolloutRev int64
		if len(rkvs) > 0 {
			r, err := decodeRollout(rkvs[0].Value)
			if err != nil {
				return nil, created, false, err
			}
			if r.Active() {
				return nil, created, false, sbruntime.Conflictf("runbook %s: rollout of %s (%v%%) is active; promote or abort it first (starbook rollout promote|abort %s)",
					b.Name, r.Canary, r.Percent, b.Name)
			}
			rolloutRev = rkvs[0].ModRevision
		}
		data, err := json.Marshal(storedBundle{Bundle: *b, CreatedAt: created})
		if err != nil {
			return nil, created, false, err
		}
		if size += len(data); size > maxRecordBytes {
			return nil, created, false, sbruntime.Inputf("runbooks total %d bytes, over the %d-byte limit of one apply", size, maxRecordBytes)
		}
		vk := s.k.runbookVersion(b.Name, b.Version)
		cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(rk), "=", rolloutRev))
		ops = append(ops,
			clientv3.OpTxn([]clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(vk), "=", 0)},
				[]clientv3.Op{clientv3.OpPut(vk, string(data))}, nil),
			clientv3.OpPut(s.k.runbookCurrent(b.Name), b.Version))
	}
	if len(ops) == 0 {
		return unchanged, created, true, nil
	}
	tx, err := s.cli.Txn(ctx).If(cmps...).Then(ops...).Commit()
	if err != nil {
		return nil, created, false, fmt.Errorf("store runbooks: %w", err)
	}
	return unchanged, created, tx.Succeeded, nil
}

// CurrentVersion returns the version new runs of runbook name use.
func (s *Store) CurrentVersion(ctx context.Context, name string) (string, error) {
	resp, err := s.cli.Get(ctx, s.k.runbookCurrent(name))
	if err != nil {
		return "", fmt.Errorf("read runbook %s: %w", name, err)
	}
	if len(resp.Kvs) == 0 {
		return "", fmt.Errorf("runbook %q: %w (apply it first)", name, sbruntime.ErrNotFound)
	}
	return string(resp.Kvs[0].Value), nil
}

// Bundle returns a stored runbook version; version "" means the current one.
func (s *Store) Bundle(ctx context.Context, name, version string) (*sbruntime.Bundle, time.Time, error) {
	if version == "" {
		v, err := s.CurrentVersion(ctx, name)
		if err != nil {
			return nil, time.Time{}, err
		}
		version = v
	}
	resp, err := s.cli.Get(ctx, s.k.runbookVersion(name, version))
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("read runbook %s@%s: %w", name, version, err)
	}
	if len(resp.Kvs) == 0 {
		return nil, time.Time{}, fmt.Errorf("runbook %s version %s: %w", name, version, sbruntime.ErrNotFound)
	}
	var sb storedBundle
	if err := json.Unmarshal(resp.Kvs[0].Value, &sb); err != nil {
		return nil, time.Time{}, fmt.Errorf("decode runbook %s@%s: %w", name, version, err)
	}
	return &sb.Bundle, sb.CreatedAt, nil
}

// CurrentVersions returns every runbook's current version.
func (s *Store) CurrentVersions(ctx context.Context) (map[string]string, error) {
	resp, err := s.cli.Get(ctx, s.k.Runbooks(), clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("list runbooks: %w", err)
	}
	out := map[string]string{}
	for _, kv := range resp.Kvs {
		rest := s.k.IDUnder(string(kv.Key), s.k.Runbooks())
		if name, ok := cutSuffix(rest, "/current"); ok {
			out[name] = string(kv.Value)
		}
	}
	return out, nil
}

func cutSuffix(s, suffix string) (string, bool) {
	if len(s) > len(suffix) && s[len(s)-len(suffix):] == suffix {
		return s[:len(s)-len(suffix)], true
	}
	return "", false
}

// CreateExecution stores a new execution (of any version) and makes it
// runnable; durable on return.
func (s *Store) CreateExecution(ctx context.Context, e *sbruntime.Execution) error {
	_, err := s.create(ctx, e, nil, nil, "")
	return err
}

// maxRecordBytes keeps every value well under etcd's 1.5 MiB request limit.
const maxRecordBytes = 1 << 20

// Execution returns an execution with its status as nodes see it now, and its
// history in position order.
func (s *Store) Execution(ctx context.Context, id string) (*sbruntime.Execution, []*sbruntime.Event, error) {
	resp, err := s.cli.Txn(ctx).Then(
		clientv3.OpGet(s.k.execution(id)),
		clientv3.OpGet(s.k.owner(id)),
		clientv3.OpGet(s.k.runnable(id)),
		clientv3.OpGet(s.k.history(id), clientv3.WithPrefix()),
	).Commit()
	if err != nil {
		return nil, nil, fmt.Errorf("read execution %s: %w", id, err)
	}
	r := resp.Responses
	if len(r[0].GetResponseRange().Kvs) == 0 {
		return nil, nil, fmt.Errorf("execution %q: %w", id, sbruntime.ErrNotFound)
	}
	e, err := s.k.decodeExecution(r[0].GetResponseRange().Kvs[0])
	if err != nil {
		return nil, nil, err
	}
	owner := ""
	if kvs := r[1].GetResponseRange().Kvs; len(kvs) > 0 {
		owner = string(kvs[0].Value)
	}
	deriveStatus(e, owner, len(r[2].GetResponseRange().Kvs) > 0)
	history, err := historyOf(r[0].GetResponseRange().Kvs[0].Value, r[3].GetResponseRange().Kvs)
	if err != nil {
		return nil, nil, fmt.Errorf("execution %s: %w", id, err)
	}
	return e, history, nil
}

// decodeHistory decodes the history events read under history/<id>/ (every
// attempt's), in position order (stable: an attempt's events follow the
// earlier ones at the same position, as their keys sort).
func decodeHistory(kvs []*mvccpb.KeyValue) ([]*sbruntime.Event, error) {
	events := make([]*sbruntime.Event, 0, len(kvs))
	for _, kv := range kvs {
		var ev sbruntime.Event
		if err := json.Unmarshal(kv.Value, &ev); err != nil {
			return nil, fmt.Errorf("decode %s: %w", kv.Key, err)
		}
		events = append(events, &ev)
	}
	sortEvents(events)
	return events, nil
}

// historyOf is an execution's whole history: the events folded into its
// record (fold.go) and those under history/<id>/ (kvs), in position order.
func historyOf(record []byte, kvs []*mvccpb.KeyValue) ([]*sbruntime.Event, error) {
	folded, err := unfold(record)
	if err != nil {
		return nil, err
	}
	events, err := decodeHistory(kvs)
	if err != nil || len(folded) == 0 {
		return events, err
	}
	events = append(folded, events...)
	sortEvents(events)
	return events, nil
}

// sortEvents sorts events by position, stably: an attempt's events follow
// the earlier ones at the same position, as their keys sort.
func sortEvents(events []*sbruntime.Event) {
	slices.SortStableFunc(events, func(a, b *sbruntime.Event) int { return sbruntime.ComparePositions(a.Position, b.Position) })
}

// deriveStatus turns the stored status into the live one: an execution a node
// owns is running; one that is runnable and unowned is pending.
func deriveStatus(e *sbruntime.Execution, owner string, runnable bool) {
	if e.Status.Terminal() {
		return
	}
	switch {
	case owner != "":
		e.Node = owner
		if e.Status != sbruntime.StatusCompensating {
			e.Status = sbruntime.StatusRunning
		}
	case runnable:
		e.Status = sbruntime.StatusPending
	}
}

// decodeExecution decodes the execution record stored at kv, a key under
// executions/. Its id is taken from the key, which names it, whatever the
// value says: every read of an execution record goes through here.
func (k Keys) decodeExecution(kv *mvccpb.KeyValue) (*sbruntime.Execution, error) {
	id, ok := strings.CutPrefix(string(kv.Key), k.executions())
	if !ok || id == "" || strings.Contains(id, "/") {
		return nil, fmt.Errorf("decode execution: %q is not an execution key", kv.Key)
	}
	record, err := recordJSON(kv.Value)
	if err != nil {
		return nil, fmt.Errorf("decode execution %s: %w", id, err)
	}
	var e sbruntime.Execution
	if err := json.Unmarshal(record, &e); err != nil {
		return nil, fmt.Errorf("decode execution %s: %w", id, err)
	}
	e.ID = id
	return &e, nil
}

// ListFilter selects executions.
type ListFilter struct {
	Status  sbruntime.Status
	Runbook string
	Limit   int
	// After, when set, lists only the executions older than this id (ids
	// sort by creation time): it is a cursor, the last id of the previous
	// page. It need not name a stored execution, so paging survives
	// retention deleting the one it names.
	After string
}

// listChunk is the most index keys one read of a listing fetches.
const listChunk = 500

// Executions lists executions newest first: up to f.Limit of those matching
// the filter, starting after f.After. It reads O(f.Limit) keys whatever is
// stored (see index.go): the index keys of the page, then its records.
func (s *Store) Executions(ctx context.Context, f ListFilter) ([]*sbruntime.Execution, error) {
	if f.Limit <= 0 {
		f.Limit = 100
	}
	streams := s.k.listStreams(f)
	seen := map[string]bool{}
	var out []*sbruntime.Execution
	// A live class's status is derived from claims: a filter on one of
	// its statuses reads the live ones and keeps the matches, so a page
	// may take several rounds.
	for len(out) < f.Limit {
		ids, err := s.newestIDs(ctx, streams, f.After, f.Limit-len(out), seen)
		if err != nil {
			return nil, fmt.Errorf("list executions: %w", err)
		}
		if len(ids) == 0 {
			return out, nil
		}
		recs, err := s.records(ctx, ids)
		if err != nil {
			return nil, fmt.Errorf("list executions: %w", err)
		}
		for _, e := range recs {
			if (f.Status == "" || e.Status == f.Status) && (f.Runbook == "" || e.Runbook == f.Runbook) {
				out = append(out, e)
			}
		}
	}
	return out, nil
}

// ResolveWait records the outcome of the pending wait at (id, pos) and makes
// the execution runnable. The first resolution wins: it returns false, and
// records nothing, when the wait is no longer pending.
func (s *Store) ResolveWait(ctx context.Context, id, pos string, result json.RawMessage, errMsg string) (bool, error) {
	return s.resolveWait(ctx, id, pos, result, errMsg, nil, nil)
}

// resolveWait is ResolveWait that also requires cmps and writes extra in its txn.
func (s *Store) resolveWait(ctx context.Context, id, pos string, result json.RawMessage, errMsg string, cmps []clientv3.Cmp, extra []clientv3.Op) (bool, error) {
	wk := s.k.wait(id, pos)
	resp, err := s.cli.Get(ctx, wk)
	if err != nil {
		return false, fmt.Errorf("read wait %s/%s: %w", id, pos, err)
	}
	if len(resp.Kvs) == 0 {
		return false, nil
	}
	w, err := s.k.decodeWait(resp.Kvs[0])
	if err != nil {
		return false, err
	}
	now := s.now().UTC()
	ev := sbruntime.Event{Position: pos, Kind: w.Kind, Name: w.Name, ArgsHash: w.ArgsHash,
		Result: result, Error: errMsg, StartedAt: w.Since, EndedAt: now, Where: w.Where, Attempt: w.Attempt}
	data, err := json.Marshal(ev)
	if err != nil {
		return false, err
	}
	ek := s.k.eventAt(id, pos, w.Attempt)
	ops := []clientv3.Op{
		clientv3.OpPut(ek, string(data)),
		clientv3.OpDelete(wk),
		clientv3.OpPut(s.k.runnable(id), ""),
	}
	if w.Deadline != nil {
		ops = append(ops, clientv3.OpDelete(s.k.timer(*w.Deadline, id, pos)))
	}
	cmps = append([]clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(wk), "=", resp.Kvs[0].ModRevision),
		clientv3.Compare(clientv3.CreateRevision(ek), "=", 0)}, cmps...)
	tx, err := s.cli.Txn(ctx).If(cmps...).Then(append(ops, extra...)...).Commit()
	if err != nil {
		return false, fmt.Errorf("resolve wait %s/%s: %w", id, pos, err)
	}
	return tx.Succeeded, nil
}

// Cancel cancels an execution that has not ended. An unowned one is cancelled
// at once; an owned one is asked to stop and its owner records the outcome.
func (s *Store) Cancel(ctx context.Context, id string) (*sbruntime.Execution, error) {
	for {
		read, err := s.cli.Txn(ctx).Then(
			clientv3.OpGet(s.k.execution(id)),
			clientv3.OpGet(s.k.history(id), clientv3.WithPrefix()),
		).Commit()
		if err != nil {
			return nil, fmt.Errorf("read execution %s: %w", id, err)
		}
		rec := read.Responses[0].GetResponseRange().Kvs
		if len(rec) == 0 {
			return nil, fmt.Errorf("execution %q: %w", id, sbruntime.ErrNotFound)
		}
		e, err := s.k.decodeExecution(rec[0])
		if err != nil {
			return nil, err
		}
		if e.Status.Terminal() {
			return e, nil
		}
		events, err := decodeHistory(read.Responses[1].GetResponseRange().Kvs)
		if err != nil {
			return nil, err
		}
		now := s.now().UTC()
		e.Status, e.Error, e.UpdatedAt, e.EndedAt = sbruntime.StatusCancelled, "cancelled", now, &now
		data, _ := json.Marshal(e)
		ops := append([]clientv3.Op{clientv3.OpPut(s.k.execution(id), string(data)),
			clientv3.OpDelete(s.k.runnable(id)),
			clientv3.OpDelete(s.k.waits(id), clientv3.WithPrefix()),
			clientv3.OpDelete(s.k.signals(id), clientv3.WithPrefix()),
			clientv3.OpDelete(s.k.legacySignalWaits(id), clientv3.WithPrefix()),
			clientv3.OpDelete(s.k.executionApprovals(id), clientv3.WithPrefix())}, s.k.endOps(e)...)
		ops = append(ops, s.k.indexMoveOps(e, classLive)...)
		ops = append(ops, s.k.rollupEndOps(e)...) // its SLO end (rollups.go)
		// Its usage, with its wall time on the day it ended: no claim is
		// there to write its outcome.
		for _, p := range s.k.finalUsagePuts(e, events) {
			ops = append(ops, clientv3.OpPut(p.key, string(p.value)))
		}
		tx, err := s.cli.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(s.k.execution(id)), "=", rec[0].ModRevision),
				clientv3.Compare(clientv3.CreateRevision(s.k.owner(id)), "=", 0)).
			Then(ops...).
			Else(clientv3.OpGet(s.k.owner(id))).
			Commit()
		if err != nil {
			return nil, fmt.Errorf("cancel %s: %w", id, err)
		}
		if tx.Succeeded {
			s.ends.ended(e)
			return e, nil
		}
		owner := tx.Responses[0].GetResponseRange().Kvs
		if len(owner) == 0 {
			continue // the record changed under us; look again
		}
		// Owned: ask the owner to stop; it records the cancellation.
		asked, err := s.requestCancel(ctx, id, owner[0].CreateRevision, now)
		if err != nil {
			return nil, err
		}
		if !asked {
			continue // the owner let go meanwhile; look again
		}
		e.Status, e.Error, e.EndedAt = sbruntime.StatusRunning, "", nil
		return e, nil
	}
}

// requestCancel asks the owner whose claim has create revision ownerRev to
// stop the execution, if that claim still holds; it reports whether it
// asked. An owner that let go (a parked run) would never hear the request,
// and nobody runs a parked execution to find it. The owner that hears it
// ends the run cancelled; one that parks without hearing it finds it in its
// park's txn (Claim.finish); one that lets go otherwise leaves the execution
// runnable, and its next claim finds it (Claim.CancelRequested).
func (s *Store) requestCancel(ctx context.Context, id string, ownerRev int64, at time.Time) (bool, error) {
	tx, err := s.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(s.k.owner(id)), "=", ownerRev)).
		Then(clientv3.OpPut(s.k.cancel(id), at.Format(time.RFC3339Nano))).
		Commit()
	if err != nil {
		return false, fmt.Errorf("cancel %s: %w", id, err)
	}
	return tx.Succeeded, nil
}

// ErrNotClaimable reports an execution another node owns or nobody needs to run.
var ErrNotClaimable = errors.New("not claimable")
