package cluster

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"
	clientv3 "go.etcd.io/etcd/client/v3"
	"golang.org/x/sync/errgroup"

	"github.com/starbook/starbook"
	sbruntime "github.com/starbook/starbook/runtime"
	"github.com/starbook/starbook/triggers"
)

// endOps are the writes that go with an execution's end: its concurrency
// slot and queue entry, if it had any, are released, it stops counting as
// active, its alert group, if it holds one, is released, and a child's end
// is kept for its parent (children.go).
func (k Keys) endOps(e *sbruntime.Execution) []clientv3.Op {
	ops := append([]clientv3.Op{clientv3.OpDelete(k.slot(e.Runbook, e.ID)), clientv3.OpDelete(k.queued(e.Runbook, e.ID)),
		clientv3.OpDelete(k.active(e.Runbook, e.ID))}, k.groupEndOps(e)...)
	ops = append(ops, k.childEndOps(e)...)
	if key := k.alertRunOf(e); key != "" {
		ops = append(ops, clientv3.OpDelete(key))
	}
	return ops
}

// alertRunOf is the alerts/<fingerprint>/<id> key of e, a run an alert
// started ("" for another): it only serves to deliver "resolved" to runs
// that have not ended, so an end deletes it rather than keep it for its
// lease's week.
func (k Keys) alertRunOf(e *sbruntime.Execution) string {
	if e.Trigger.Type != triggers.TypeAlert || e.Trigger.Source == "" {
		return ""
	}
	return k.alertRun(e.Trigger.Source, e.ID)
}

// groupEndOps release the alert group of e, a run a coalescing trigger
// started: its group key is deleted if it still names e. The compare makes
// it safe on every path that ends an execution, even one that never held
// the key (a dropped start) or no longer does (a redriven run whose group
// another run took since).
func (k Keys) groupEndOps(e *sbruntime.Execution) []clientv3.Op {
	g := e.Trigger.Attrs[triggers.AttrGroup]
	if g == "" || e.Trigger.Type != triggers.TypeAlert {
		return nil
	}
	gk := k.group(e.Runbook, g)
	return []clientv3.Op{clientv3.OpTxn([]clientv3.Cmp{clientv3.Compare(clientv3.Value(gk), "=", e.ID)},
		[]clientv3.Op{clientv3.OpDelete(gk)}, nil)}
}

// Triggers is the store side of package triggers: it creates triggered
// executions with durable dedup, bounds them by their runbook's policy,
// records cron ticks, delivers resolved alerts and indexes the current
// runbooks' declarations. It is safe for concurrent use.
type Triggers struct {
	s      *Store
	now    func() time.Time
	log    *slog.Logger
	index  *triggerIndex
	leases leaseCache

	idMu    sync.Mutex
	entropy *ulid.MonotonicEntropy
	runner  Runner // claims unbounded starts in their create txn; see RunOn

	deadBucket eventBucket // bounds the events kept as dead letters; see DeadLetter
	groupRuns  sync.Map    // alert group key -> groupRun, as last read (groups.go)
}

var (
	_ triggers.Starter   = (*Triggers)(nil)
	_ triggers.Resolver  = (*Triggers)(nil)
	_ triggers.CronStore = (*Triggers)(nil)
	_ triggers.Index     = (*triggerIndex)(nil)
)

// NewTriggers returns the trigger store over s; now is its clock (time.Now
// when nil) and logger may be nil.
func NewTriggers(s *Store, now func() time.Time, logger *slog.Logger) *Triggers {
	if now == nil {
		now = time.Now
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	t := &Triggers{s: s, now: now, log: logger, entropy: ulid.Monotonic(rand.Reader, 0)}
	t.index = &triggerIndex{s: s, log: logger, now: now, runbooks: map[string]triggers.Runbook{}}
	t.leases.m = map[time.Duration]leaseEntry{}
	return t
}

// RunOn makes runner (the node of this process) claim the executions t
// starts for unbounded runbooks in their create txn, while it has free
// workers, and run them at once. Call it before t serves starts.
func (t *Triggers) RunOn(runner Runner) { t.runner = runner }

// Index returns the declarations of every runbook's current version.
func (t *Triggers) Index() triggers.Index { return t.index }

func (t *Triggers) newID() string {
	t.idMu.Lock()
	defer t.idMu.Unlock()
	return ulid.MustNew(ulid.Timestamp(t.now()), t.entropy).String()
}

// leaseBucket is how long one granted lease serves new keys: a key with TTL d
// lives between d and d+leaseBucket, and a burst of starts costs no grant.
const leaseBucket = time.Hour

type leaseCache struct {
	mu sync.Mutex
	m  map[time.Duration]leaseEntry
}

type leaseEntry struct {
	id    clientv3.LeaseID
	until time.Time
}

func (t *Triggers) lease(ctx context.Context, ttl time.Duration) (clientv3.LeaseID, error) {
	t.leases.mu.Lock()
	defer t.leases.mu.Unlock()
	now := time.Now() // lease lifetimes are real time, whatever clock the triggers see
	if e, ok := t.leases.m[ttl]; ok && now.Before(e.until) {
		return e.id, nil
	}
	resp, err := t.s.cli.Grant(ctx, int64((ttl+leaseBucket)/time.Second))
	if err != nil {
		return 0, fmt.Errorf("grant lease: %w", err)
	}
	t.leases.m[ttl] = leaseEntry{id: resp.ID, until: now.Add(leaseBucket)}
	return resp.ID, nil
}

// forgetLeases drops cached leases after a failed txn: one may have been
// revoked or expired, and the retry must not reuse it.
func (t *Triggers) forgetLeases() {
	t.leases.mu.Lock()
	t.leases.m = map[time.Duration]leaseEntry{}
	t.leases.mu.Unlock()
}

// item is one start on its way to the store.
type item struct {
	i        int // index in the caller's starts
	s        *triggers.Start
	dedupKey string        // "" for none
	dedupTTL time.Duration // lease of dedupKey
	extra    []clientv3.Op // written with the execution (a cron tick's last key)
	e        *sbruntime.Execution
	out      triggers.Started
	reserved Reservation // the local node's worker, when it claims e in the create txn
	refused  string      // a budget's refusal: e is stored cancelled with it (budget.go)
	// pinned: e's version was chosen on its runbook's rollout key at
	// pinRev (0: none), which its create txn compares (see pin).
	pinned bool
	pinRev int64
	// groupKey, for a coalescing alert's start, is its group's key: the
	// create txn creates it if absent. groupTaken: another run holds it.
	groupKey   string
	groupTaken bool
}

// conflictReads are the reads that tell why it's create txn failed: its
// dedup key, then its group key, those it has.
func (it *item) conflictReads() []clientv3.Op {
	var ops []clientv3.Op
	if it.dedupKey != "" {
		ops = append(ops, clientv3.OpGet(it.dedupKey))
	}
	if it.groupKey != "" {
		ops = append(ops, clientv3.OpGet(it.groupKey, clientv3.WithKeysOnly()))
	}
	return ops
}

// conflicted reads its conflictReads in resp from *r on, and reports
// whether it must not be tried again: its dedup key exists (a duplicate)
// or its group has a run (to be delivered to it instead).
func (it *item) conflicted(resp *clientv3.TxnResponse, r *int) bool {
	out := false
	if it.dedupKey != "" {
		if kvs := resp.Responses[*r].GetResponseRange().Kvs; len(kvs) > 0 {
			it.out = triggers.Started{Runbook: it.s.Runbook, ID: string(kvs[0].Value), Status: triggers.StatusDuplicate}
			out = true
		}
		*r++
	}
	if it.groupKey != "" {
		if !out && len(resp.Responses[*r].GetResponseRange().Kvs) > 0 {
			it.groupTaken, out = true, true
		}
		*r++
	}
	return out
}

// txnItems bounds the starts of one txn: each is up to 5 ops, under etcd's
// default --max-txn-ops of 128 (an external cluster may not raise it).
const txnItems = 24

// Start creates the executions starts ask for; see triggers.Starter.
func (t *Triggers) Start(ctx context.Context, starts []triggers.Start) ([]triggers.Started, error) {
	items := make([]*item, len(starts))
	for i := range starts {
		s := &starts[i]
		it := &item{i: i, s: s}
		if s.Dedup != nil {
			it.dedupKey, it.dedupTTL = t.s.k.dedup(s.Dedup.Scope, s.Dedup.Key), s.Dedup.TTL
		}
		items[i] = it
	}
	var plain, grouped []*item
	for _, it := range items {
		if it.s.Group != nil {
			grouped = append(grouped, it)
		} else {
			plain = append(plain, it)
		}
	}
	if len(plain) > 0 {
		if err := t.start(ctx, plain); err != nil {
			return nil, err
		}
	}
	if len(grouped) > 0 {
		if err := t.coalesce(ctx, grouped); err != nil {
			return nil, err
		}
	}
	out := make([]triggers.Started, len(items))
	for _, it := range items {
		out[it.i] = it.out
	}
	return out, nil
}

// start stores items: duplicates are found, unbounded runbooks' starts are
// committed in parallel batches, bounded ones go through their gate.
func (t *Triggers) start(ctx context.Context, items []*item) error {
	now := t.now().UTC()
	firstOf := map[string]*item{}
	var fresh []*item
	for _, it := range items {
		it.out = triggers.Started{Runbook: it.s.Runbook}
		if it.dedupKey != "" {
			if first, ok := firstOf[it.dedupKey]; ok {
				// The same key twice in one request: the first one wins.
				it.out.Status, it.out.Reason = triggers.StatusDuplicate, "same key earlier in this request"
				defer func() { it.out.ID = first.out.ID }()
				continue
			}
			firstOf[it.dedupKey] = it
		}
		it.e = &sbruntime.Execution{ID: t.newID(), Runbook: it.s.Runbook, Version: it.s.Version,
			Status: sbruntime.StatusPending, Trigger: it.s.Trigger, Input: it.s.Input, CreatedAt: now, UpdatedAt: now,
			TraceParent: TraceParent(ctx)}
		if err := t.pin(ctx, it, false); err != nil {
			return err
		}
		fresh = append(fresh, it)
	}
	fresh, err := t.dropSeen(ctx, fresh)
	if err != nil {
		return err
	}
	var free []*item
	bounded := map[string][]*item{}
	var order []string
	for _, it := range fresh {
		refused, err := t.s.budgets.refusal(ctx, it.s.Runbook, it.e.Version)
		if err != nil {
			return err
		}
		if refused != "" {
			it.refused = refused
			free = append(free, it) // recorded at once, outside any policy
			continue
		}
		if it.s.Policy.Limited() {
			if bounded[it.s.Runbook] == nil {
				order = append(order, it.s.Runbook)
			}
			bounded[it.s.Runbook] = append(bounded[it.s.Runbook], it)
		} else {
			free = append(free, it)
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for len(free) > 0 {
		batch := free[:min(txnItems, len(free))]
		free = free[len(batch):]
		g.Go(func() error { return t.commitFree(gctx, batch) })
	}
	for _, rb := range order {
		g.Go(func() error { return t.admit(gctx, rb, bounded[rb]) })
	}
	return g.Wait()
}

// pin chooses it's version as StartCurrent does: during an active rollout
// of the version the trigger matched (the stable one), the canary's when
// the id falls in its share. The create txn compares the rollout key, so a
// stale cache fails it and repin chooses again.
func (t *Triggers) pin(ctx context.Context, it *item, fresh bool) error {
	p, err := t.s.cachedPin(ctx, it.s.Runbook, fresh)
	if errors.Is(err, sbruntime.ErrNotFound) {
		return nil // no current version: run the version the trigger named
	}
	if err != nil {
		return err
	}
	if p.current != it.s.Version {
		it.pinned = false // the trigger named another version: run it
		it.e.Version = it.s.Version
		return nil
	}
	it.pinned, it.pinRev, it.e.Version = true, p.rolloutRev, p.version(it.e.ID)
	return nil
}

// repin chooses the versions of items again on a fresh read of their
// runbooks' rollouts, after their txn failed; it reports whether one of
// their rollouts had changed (which may have failed the txn).
func (t *Triggers) repin(ctx context.Context, items []*item) (bool, error) {
	changed, read := false, map[string]bool{}
	for _, it := range items {
		if !it.pinned {
			continue
		}
		before := it.pinRev
		if err := t.pin(ctx, it, !read[it.s.Runbook]); err != nil {
			return false, err
		}
		read[it.s.Runbook] = true
		changed = changed || !it.pinned || it.pinRev != before
	}
	return changed, nil
}

// dropSeen marks the items whose dedup key exists as duplicates (one read per
// batch) and returns the others.
func (t *Triggers) dropSeen(ctx context.Context, items []*item) ([]*item, error) {
	var keyed []*item
	for _, it := range items {
		if it.dedupKey != "" {
			keyed = append(keyed, it)
		}
	}
	for len(keyed) > 0 {
		batch := keyed[:min(100, len(keyed))]
		keyed = keyed[len(batch):]
		ops := make([]clientv3.Op, len(batch))
		for i, it := range batch {
			ops[i] = clientv3.OpGet(it.dedupKey)
		}
		resp, err := t.s.cli.Txn(ctx).Then(ops...).Commit()
		if err != nil {
			return nil, fmt.Errorf("read dedup keys: %w", err)
		}
		for i, it := range batch {
			if kvs := resp.Responses[i].GetResponseRange().Kvs; len(kvs) > 0 {
				it.out.Status, it.out.ID = triggers.StatusDuplicate, string(kvs[0].Value)
				it.e = nil
			}
		}
	}
	out := items[:0:0]
	for _, it := range items {
		if it.e != nil {
			out = append(out, it)
		}
	}
	return out, nil
}

// writes returns the compares and ops that store it with status (started,
// queued or dropped) and reason.
func (t *Triggers) writes(ctx context.Context, it *item, status, reason string) ([]clientv3.Cmp, []clientv3.Op, error) {
	e, k := it.e, t.s.k
	var ops []clientv3.Op
	switch status {
	case triggers.StatusStarted:
		e.Status, e.Error, e.EndedAt = sbruntime.StatusPending, "", nil
		ops = append(ops, clientv3.OpPut(k.runnable(e.ID), ""))
		ops = append(ops, t.s.activeOps(e)...)
		if it.s.Policy.Limited() {
			ops = append(ops, clientv3.OpPut(k.slot(e.Runbook, e.ID), ""))
		}
	case triggers.StatusQueued:
		e.Status, e.Error = sbruntime.StatusPending, "queued: "+reason
		ops = append(ops, clientv3.OpPut(k.queued(e.Runbook, e.ID), ""))
		ops = append(ops, t.s.activeOps(e)...)
	case triggers.StatusDropped:
		end := e.CreatedAt
		e.Status, e.Error, e.EndedAt = sbruntime.StatusCancelled, "dropped: "+reason, &end
		if it.refused != "" {
			e.Error = it.refused // "budget: steps_per_day 10000 reached": a dead letter
		}
		ops = append(ops, k.deadLetterOps(e)...)
		ops = append(ops, k.rollupEndOps(e)...) // its SLO end (rollups.go)
	}
	data, err := json.Marshal(e)
	if err != nil {
		return nil, nil, err
	}
	if len(data) > maxRecordBytes {
		return nil, nil, sbruntime.Inputf("runbook %s: the event is %d bytes, over the %d-byte limit of an execution", e.Runbook, len(data), maxRecordBytes)
	}
	ops = append(ops, clientv3.OpPut(k.execution(e.ID), string(data)))
	ops = append(ops, k.indexOps(e)...)
	var cmps []clientv3.Cmp
	if it.pinned && status != triggers.StatusDropped {
		cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(k.rollout(e.Runbook)), "=", it.pinRev))
	}
	if it.dedupKey != "" {
		lease, err := t.lease(ctx, it.dedupTTL)
		if err != nil {
			return nil, nil, err
		}
		cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(it.dedupKey), "=", 0))
		ops = append(ops, clientv3.OpPut(it.dedupKey, e.ID, clientv3.WithLease(lease)))
	}
	if it.groupKey != "" && status != triggers.StatusDropped {
		cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(it.groupKey), "=", 0))
		ops = append(ops, clientv3.OpPut(it.groupKey, e.ID))
	}
	if fp := it.s.Fingerprint; fp != "" && status != triggers.StatusDropped {
		lease, err := t.lease(ctx, triggers.AlertDedupTTL)
		if err != nil {
			return nil, nil, err
		}
		ops = append(ops, clientv3.OpPut(k.alertRun(fp, e.ID), e.Runbook, clientv3.WithLease(lease)))
	}
	ops = append(ops, it.extra...)
	it.out = triggers.Started{Runbook: e.Runbook, ID: e.ID, Status: status, Reason: reason}
	return cmps, ops, nil
}

// commitFree stores starts of unbounded runbooks in one txn, fenced on their
// dedup keys; a key another request took meanwhile makes its start a
// duplicate and the rest are committed again.
func (t *Triggers) commitFree(ctx context.Context, batch []*item) error {
	if t.runner != nil {
		for _, it := range batch {
			if it.refused == "" {
				it.reserved = t.runner.Reserve(t.s, it.e.ID)
			}
		}
	}
	defer func() { // the ones not run: the txn failed
		for _, it := range batch {
			if it.reserved != nil {
				it.reserved.Release()
			}
		}
	}()
	for len(batch) > 0 {
		var cmps []clientv3.Cmp
		var ops, reads []clientv3.Op
		for _, it := range batch {
			status, reason := triggers.StatusStarted, ""
			if it.refused != "" {
				status, reason = triggers.StatusDropped, it.refused
			}
			c, o, err := t.writes(ctx, it, status, reason)
			if err != nil {
				return err
			}
			if it.reserved != nil {
				o = append(o, t.s.claimOp(it.e.ID, it.reserved))
			}
			cmps, ops = append(cmps, c...), append(ops, o...)
			reads = append(reads, it.conflictReads()...)
		}
		resp, err := t.s.cli.Txn(ctx).If(cmps...).Then(ops...).Else(reads...).Commit()
		if err != nil {
			t.forgetLeases()
			return fmt.Errorf("create triggered executions: %w", err)
		}
		if resp.Succeeded {
			for _, it := range batch {
				if it.reserved != nil {
					it.reserved.Start(t.s.newClaim(it.e, resp.Header.Revision))
					it.reserved = nil
				}
				if it.refused != "" {
					t.s.ends.ended(it.e)
					t.log.Info("triggered run refused", "runbook", it.e.Runbook, "execution", it.e.ID, "reason", it.refused)
				}
			}
			return nil
		}
		var retry []*item
		r := 0
		for _, it := range batch {
			if it.conflicted(resp, &r) {
				if it.reserved != nil {
					it.reserved.Release()
					it.reserved = nil
				}
			} else {
				retry = append(retry, it)
			}
		}
		if len(retry) == len(batch) {
			changed, err := t.repin(ctx, retry)
			if err != nil {
				return err
			}
			if !changed {
				return errors.New("create triggered executions: txn failed with every dedup key free")
			}
		}
		batch = retry
	}
	return nil
}

// gateState is a bounded runbook's admission record: the policy in force and
// the start times inside the rate window. Every admission and promotion
// rewrites it, compared on its revision, so they are serialised per runbook.
type gateState struct {
	MaxConcurrent int     `json:"max_concurrent,omitempty"`
	RateCount     int     `json:"rate_count,omitempty"`
	RatePer       int64   `json:"rate_per_ms,omitempty"`
	OnExcess      string  `json:"on_excess,omitempty"`
	Starts        []int64 `json:"starts,omitempty"` // unix ms, oldest first
}

func (g *gateState) setPolicy(p triggers.Policy) {
	g.MaxConcurrent, g.OnExcess, g.RateCount, g.RatePer = p.MaxConcurrent, p.OnExcess, 0, 0
	if p.Rate != nil {
		g.RateCount, g.RatePer = p.Rate.Count, p.Rate.Per.Milliseconds()
	}
}

// prune forgets starts outside the rate window.
func (g *gateState) prune(now time.Time) {
	if g.RateCount == 0 {
		g.Starts = nil
		return
	}
	cut := now.UnixMilli() - g.RatePer
	i := 0
	for i < len(g.Starts) && g.Starts[i] <= cut {
		i++
	}
	g.Starts = g.Starts[i:]
}

// blocked says why one more run cannot start now ("" if it can), given the
// runs holding a slot.
func (g *gateState) blocked(active int) string {
	if g.MaxConcurrent > 0 && active >= g.MaxConcurrent {
		return fmt.Sprintf("max_concurrent %d reached", g.MaxConcurrent)
	}
	if g.RateCount > 0 && len(g.Starts) >= g.RateCount {
		return fmt.Sprintf("rate %s reached", (&triggers.Rate{Count: g.RateCount, Per: time.Duration(g.RatePer) * time.Millisecond}).String())
	}
	return ""
}

// nextFree is when the rate window lets one more run start (zero if now or
// if only a slot can free it).
func (g *gateState) nextFree(active int) time.Time {
	if g.MaxConcurrent > 0 && active >= g.MaxConcurrent {
		return time.Time{}
	}
	if g.RateCount > 0 && len(g.Starts) >= g.RateCount {
		return time.UnixMilli(g.Starts[len(g.Starts)-g.RateCount] + g.RatePer + 1)
	}
	return time.Time{}
}

func (g *gateState) started(now time.Time) {
	if g.RateCount > 0 {
		g.Starts = append(g.Starts, now.UnixMilli())
		if len(g.Starts) > g.RateCount {
			g.Starts = g.Starts[len(g.Starts)-g.RateCount:]
		}
	}
}

// gateView is a consistent read of a runbook's admission state.
type gateView struct {
	state   gateState
	rev     int64 // mod revision of the gate key, 0 if absent
	active  int   // slots held
	waiting int   // runs queued
}

func (t *Triggers) readGate(ctx context.Context, runbook string, extra ...clientv3.Op) (*gateView, *clientv3.TxnResponse, error) {
	k := t.s.k
	ops := append([]clientv3.Op{
		clientv3.OpGet(k.gate(runbook)),
		clientv3.OpGet(k.slotsOf(runbook), clientv3.WithPrefix(), clientv3.WithCountOnly()),
		clientv3.OpGet(k.queuedOf(runbook), clientv3.WithPrefix(), clientv3.WithCountOnly()),
	}, extra...)
	resp, err := t.s.cli.Txn(ctx).Then(ops...).Commit()
	if err != nil {
		return nil, nil, fmt.Errorf("read gate of %s: %w", runbook, err)
	}
	v := &gateView{active: int(resp.Responses[1].GetResponseRange().Count),
		waiting: int(resp.Responses[2].GetResponseRange().Count)}
	if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) > 0 {
		v.rev = kvs[0].ModRevision
		if err := json.Unmarshal(kvs[0].Value, &v.state); err != nil {
			return nil, nil, fmt.Errorf("decode gate of %s: %w", runbook, err)
		}
	}
	return v, resp, nil
}

func (t *Triggers) gateCmp(runbook string, rev int64) clientv3.Cmp {
	return clientv3.Compare(clientv3.ModRevision(t.s.k.gate(runbook)), "=", rev)
}

// admit stores the starts of one bounded runbook in arrival order: each
// starts if its policy allows, else is queued or dropped. Runs already queued
// go first: a new one queues behind them.
func (t *Triggers) admit(ctx context.Context, runbook string, items []*item) error {
	for attempts := 0; len(items) > 0; attempts++ {
		if attempts > 100 {
			return fmt.Errorf("admit runs of %s: too much contention on its gate", runbook)
		}
		batch := items[:min(txnItems-1, len(items))]
		v, _, err := t.readGate(ctx, runbook)
		if err != nil {
			return err
		}
		now := t.now()
		st := v.state
		st.setPolicy(batch[0].s.Policy)
		st.prune(now)
		var cmps []clientv3.Cmp
		var ops, reads []clientv3.Op
		cmps = append(cmps, t.gateCmp(runbook, v.rev))
		for _, it := range batch {
			reason := st.blocked(v.active)
			if reason == "" && v.waiting > 0 {
				reason = fmt.Sprintf("behind %d queued runs", v.waiting)
			}
			status := triggers.StatusStarted
			if reason != "" {
				status = triggers.StatusQueued
				if it.s.Policy.Drop() {
					status = triggers.StatusDropped
				}
			}
			switch status {
			case triggers.StatusStarted:
				v.active++
				st.started(now)
			case triggers.StatusQueued:
				v.waiting++
			}
			c, o, err := t.writes(ctx, it, status, reason)
			if err != nil {
				return err
			}
			cmps, ops = append(cmps, c...), append(ops, o...)
			reads = append(reads, it.conflictReads()...)
		}
		data, _ := json.Marshal(&st)
		ops = append(ops, clientv3.OpPut(t.s.k.gate(runbook), string(data)))
		resp, err := t.s.cli.Txn(ctx).If(cmps...).Then(ops...).Else(reads...).Commit()
		if err != nil {
			t.forgetLeases()
			return fmt.Errorf("admit runs of %s: %w", runbook, err)
		}
		if resp.Succeeded {
			for _, it := range batch {
				if it.out.Status == triggers.StatusDropped {
					t.s.ends.ended(it.e)
				}
				if it.out.Status != triggers.StatusStarted {
					t.log.Info("triggered run "+it.out.Status, "runbook", runbook, "execution", it.out.ID, "reason", it.out.Reason)
				}
			}
			items = items[len(batch):]
			continue
		}
		// The gate moved or a dedup key was taken: drop the duplicates and
		// decide again on a fresh read.
		r := 0
		var left []*item
		for _, it := range batch {
			if !it.conflicted(resp, &r) {
				left = append(left, it)
			}
		}
		if _, err := t.repin(ctx, left); err != nil { // a rollout may have changed
			return err
		}
		items = append(left, items[len(batch):]...)
	}
	return nil
}

// Promote starts the oldest queued runs of runbook that its policy admits
// now. It returns when the rate window next lets one start, or the zero time
// if only an ending run can make room (or nothing is queued).
func (t *Triggers) Promote(ctx context.Context, runbook string) (time.Time, error) {
	k := t.s.k
	for attempts := 0; ; attempts++ {
		if attempts > 100 {
			return time.Time{}, fmt.Errorf("promote runs of %s: too much contention on its gate", runbook)
		}
		v, resp, err := t.readGate(ctx, runbook, clientv3.OpGet(k.queuedOf(runbook), clientv3.WithPrefix(),
			clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend), clientv3.WithLimit(txnItems), clientv3.WithKeysOnly()))
		if err != nil {
			return time.Time{}, err
		}
		queued := resp.Responses[3].GetResponseRange().Kvs
		if len(queued) == 0 {
			return time.Time{}, nil
		}
		now := t.now()
		st := v.state
		st.prune(now)
		n := 0
		for n < len(queued) && st.blocked(v.active+n) == "" {
			st.started(now)
			n++
		}
		if n == 0 {
			return st.nextFree(v.active), nil
		}
		ids := make([]string, n)
		gets := make([]clientv3.Op, n)
		for i := range n {
			ids[i] = strings.TrimPrefix(string(queued[i].Key), k.queuedOf(runbook))
			gets[i] = clientv3.OpGet(k.execution(ids[i]))
		}
		recs, err := t.s.cli.Txn(ctx).Then(gets...).Commit()
		if err != nil {
			return time.Time{}, fmt.Errorf("read queued runs of %s: %w", runbook, err)
		}
		cmps := []clientv3.Cmp{t.gateCmp(runbook, v.rev)}
		var ops []clientv3.Op
		for i, id := range ids {
			qk := k.queued(runbook, id)
			cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(qk), "=", queued[i].ModRevision))
			kvs := recs.Responses[i].GetResponseRange().Kvs
			if len(kvs) == 0 {
				ops = append(ops, clientv3.OpDelete(qk)) // a queue entry without a record
				continue
			}
			e, err := k.decodeExecution(kvs[0])
			if err != nil {
				return time.Time{}, err
			}
			cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(k.execution(id)), "=", kvs[0].ModRevision))
			if e.Status.Terminal() {
				ops = append(ops, clientv3.OpDelete(qk))
				continue
			}
			e.Error, e.UpdatedAt = "", now.UTC()
			data, _ := json.Marshal(e)
			ops = append(ops, clientv3.OpDelete(qk), clientv3.OpPut(k.execution(id), string(data)),
				clientv3.OpPut(k.runnable(id), ""), clientv3.OpPut(k.slot(runbook, id), ""))
		}
		data, _ := json.Marshal(&st)
		ops = append(ops, clientv3.OpPut(k.gate(runbook), string(data)))
		tx, err := t.s.cli.Txn(ctx).If(cmps...).Then(ops...).Commit()
		if err != nil {
			return time.Time{}, fmt.Errorf("promote runs of %s: %w", runbook, err)
		}
		if tx.Succeeded {
			t.log.Info("queued runs started", "runbook", runbook, "count", n)
		}
		// Succeeded or not, look again: more may fit, or the state moved.
	}
}

// Resolve delivers the signal "resolved" to the runs the alert started that
// have not ended, once per run; see triggers.Resolver.
func (t *Triggers) Resolve(ctx context.Context, fingerprint string, startsAt time.Time, data json.RawMessage) ([]string, error) {
	k := t.s.k
	resp, err := t.s.cli.Get(ctx, k.alertRuns(fingerprint), clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return nil, fmt.Errorf("read runs of alert %s: %w", fingerprint, err)
	}
	var delivered []string
	for _, kv := range resp.Kvs {
		id := strings.TrimPrefix(string(kv.Key), k.alertRuns(fingerprint))
		mark := k.dedup("resolved", id)
		seen, err := t.s.cli.Get(ctx, mark, clientv3.WithCountOnly())
		if err != nil {
			return delivered, fmt.Errorf("read resolved mark of %s: %w", id, err)
		}
		if seen.Count > 0 {
			continue
		}
		err = t.s.Signal(ctx, id, "resolved", data, "alertmanager")
		var ie *sbruntime.InputError
		switch {
		case errors.Is(err, sbruntime.ErrNotFound), errors.As(err, &ie):
			continue // ended (or gone) before its alert resolved
		case err != nil:
			return delivered, err
		}
		lease, err := t.lease(ctx, triggers.AlertDedupTTL)
		if err != nil {
			return delivered, err
		}
		if _, err := t.s.cli.Put(ctx, mark, startsAt.UTC().Format(time.RFC3339Nano), clientv3.WithLease(lease)); err != nil {
			t.forgetLeases()
			return delivered, fmt.Errorf("record resolved mark of %s: %w", id, err)
		}
		t.log.Info("alert resolved: signal delivered", "execution", id, "fingerprint", fingerprint)
		delivered = append(delivered, id)
	}
	return delivered, nil
}

// LastTick returns the latest cron tick fired or skipped for runbook.
func (t *Triggers) LastTick(ctx context.Context, runbook string) (time.Time, error) {
	resp, err := t.s.cli.Get(ctx, t.s.k.cronLast(runbook))
	if err != nil {
		return time.Time{}, fmt.Errorf("read last tick of %s: %w", runbook, err)
	}
	if len(resp.Kvs) == 0 {
		return time.Time{}, nil
	}
	sec, err := strconv.ParseInt(string(resp.Kvs[0].Value), 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("decode last tick of %s: %w", runbook, err)
	}
	return time.Unix(sec, 0).UTC(), nil
}

// FireTick creates the run of one cron tick, at most once per (runbook, tick)
// across nodes and restarts: the tick key is created in the execution's txn.
func (t *Triggers) FireTick(ctx context.Context, at time.Time, s triggers.Start) (*triggers.Started, error) {
	s.Dedup = nil
	it := &item{s: &s, dedupKey: t.s.k.cronTick(s.Runbook, at), dedupTTL: triggers.CronTickTTL,
		extra: []clientv3.Op{clientv3.OpPut(t.s.k.cronLast(s.Runbook), strconv.FormatInt(at.Unix(), 10))}}
	if err := t.start(ctx, []*item{it}); err != nil {
		return nil, err
	}
	if it.out.Status == triggers.StatusDuplicate {
		return nil, nil
	}
	return &it.out, nil
}

// SkipTo records at as runbook's last handled tick.
func (t *Triggers) SkipTo(ctx context.Context, runbook string, at time.Time) error {
	if _, err := t.s.cli.Put(ctx, t.s.k.cronLast(runbook), strconv.FormatInt(at.Unix(), 10)); err != nil {
		return fmt.Errorf("record last tick of %s: %w", runbook, err)
	}
	return nil
}

// triggerIndex caches the declarations of every runbook's current version.
// Each call first asks etcd which runbook keys changed since the revision it
// reflects, and reads the pauses (pauses/ holds one key per paused runbook,
// usually none), in one small txn, so an apply or a pause that completed is
// always seen.
type triggerIndex struct {
	s   *Store
	log *slog.Logger
	now func() time.Time

	mu       sync.Mutex
	rev      int64 // store revision the cache reflects; 0 before the first load
	runbooks map[string]triggers.Runbook
	list     []triggers.Runbook
}

// Runbooks returns the runbooks that declare triggers.
func (x *triggerIndex) Runbooks(ctx context.Context) ([]triggers.Runbook, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	k := x.s.k
	opts := []clientv3.OpOption{clientv3.WithPrefix(), clientv3.WithKeysOnly()}
	if x.rev > 0 {
		opts = append(opts, clientv3.WithMinModRev(x.rev+1))
	}
	tx, err := x.s.cli.Txn(ctx).Then(clientv3.OpGet(k.Runbooks(), opts...), clientv3.OpGet(k.Pauses(), clientv3.WithPrefix())).Commit()
	if err != nil {
		return nil, fmt.Errorf("list runbooks: %w", err)
	}
	resp := tx.Responses[0].GetResponseRange()
	pauses, err := decodePauses(tx.Responses[1].GetResponseRange().Kvs)
	if err != nil {
		return nil, err
	}
	changed := false
	for _, kv := range resp.Kvs {
		name, ok := cutSuffix(k.IDUnder(string(kv.Key), k.Runbooks()), "/current")
		if !ok {
			continue
		}
		b, created, err := x.s.Bundle(ctx, name, "")
		if err != nil {
			return nil, err
		}
		changed = true
		set, err := triggers.DecodeSet(b.Triggers)
		if err != nil {
			x.log.Error("runbook triggers unreadable; ignoring them", "runbook", name, "version", b.Version, "err", err)
			set = &triggers.Set{}
		}
		if set.Empty() {
			delete(x.runbooks, name)
			continue
		}
		rb := triggers.Runbook{Name: name, Version: b.Version, Since: created, Set: set}
		sch, err := x.s.bundleSchema(b)
		if err != nil {
			// Apply compiled it: refuse every event rather than start runs
			// on input nobody checked.
			x.log.Error("runbook input schema unreadable; its triggers refuse every event", "runbook", name, "version", b.Version, "err", err)
			rb.Input = refuseAll{err}
		} else if sch != nil {
			rb.Input = sch
		}
		x.runbooks[name] = rb
	}
	x.rev = tx.Header.Revision
	if changed || x.list == nil {
		x.list = make([]triggers.Runbook, 0, len(x.runbooks))
		for _, rb := range x.runbooks {
			x.list = append(x.list, rb)
		}
		slices.SortFunc(x.list, func(a, b triggers.Runbook) int { return strings.Compare(a.Name, b.Name) })
	}
	return withPauses(x.list, pauses, x.now()), nil
}

// withPauses returns list with each runbook's active pause set: list itself
// when none is paused, else a copy (list is the shared cache).
func withPauses(list []triggers.Runbook, pauses []starbook.PauseState, now time.Time) []triggers.Runbook {
	active := false
	for i := range pauses {
		active = active || pauses[i].Active(now)
	}
	if !active {
		return list
	}
	out := slices.Clone(list)
	for i := range out {
		if p := EffectivePause(out[i].Name, pauses, now); p.Paused {
			out[i].Pause = p
		}
	}
	return out
}
