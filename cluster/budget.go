package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/starbook/starbook"
	sbruntime "github.com/starbook/starbook/runtime"
	"github.com/starbook/starbook/triggers"
)

// Day budgets are counted cluster-wide with leased chunks. Each runbook's
// day budget has one counter, budgets/<day>/<runbook>/<budget>: the units
// nodes have taken. A node takes a chunk (a compare-and-swap txn) and spends
// it locally, so a step costs no txn of its own; a chunk is taken only while
// the counter is under the limit, and a node refuses once its own chunk is
// spent and the counter has reached the limit. So what is spent never
// exceeds the limit by more than one chunk (or one fan_out's items), and a
// node may be refused while others still hold unspent units, at most a
// chunk and a half each. HTTP calls are known only once a step has made
// them: they are checked before each step and counted after it, so steps
// already admitted can spend beyond. The day is the UTC date of the store's
// clock; a new day starts new counters.

// ChunkOf is the units a node takes of a day budget at once: 1% of the
// limit, at most 100, at least 1.
func ChunkOf(limit int64) int64 { return max(1, min(limit/100, 100)) }

// aheadTimeout bounds a chunk taken ahead, in the background.
const aheadTimeout = 10 * time.Second

// Day is the UTC date of t as keys spell it: 2006-01-02.
func Day(t time.Time) string { return t.UTC().Format(time.DateOnly) }

// Budgets counts the day budgets of runbooks for one store (one node): see
// above. It is safe for concurrent use.
type Budgets struct {
	s *Store

	mu    sync.Mutex
	day   string
	lanes map[string]*lane // by counter key, for day only
	decl  map[string]*triggers.Budget
}

// lane is this node's share of one day budget.
type lane struct {
	key   string
	chunk int64

	mu     sync.Mutex
	limit  int64         // as last declared
	left   int64         // taken here, not yet spent; negative: spent, not yet taken
	seen   int64         // the counter as of this node's last read or take
	rev    int64         // its mod revision then; 0 when absent
	readAt time.Time     // when seen was last read (Exhausted reads at most once a second)
	taking chan struct{} // closed when the take in flight ends; nil when none
}

// counterValue is a counter key's value.
type counterValue struct {
	Taken int64 `json:"taken"`
	Limit int64 `json:"limit"`
}

func newBudgets(s *Store) *Budgets {
	return &Budgets{s: s, lanes: map[string]*lane{}, decl: map[string]*triggers.Budget{}}
}

// Budgets returns the store's day budget counters.
func (s *Store) Budgets() *Budgets { return s.budgets }

// Declared returns the budget a runbook version declares, nil for none. A
// version is immutable: each is read once per store.
func (b *Budgets) Declared(ctx context.Context, runbook, version string) (*triggers.Budget, error) {
	key := runbook + "@" + version
	b.mu.Lock()
	d, ok := b.decl[key]
	b.mu.Unlock()
	if ok {
		return d, nil
	}
	bundle, _, err := b.s.Bundle(ctx, runbook, version)
	if err != nil {
		return nil, err
	}
	set, err := triggers.DecodeSet(bundle.Triggers)
	if err != nil {
		return nil, fmt.Errorf("budget of %s: %w", key, err)
	}
	b.mu.Lock()
	b.decl[key] = set.Budget
	b.mu.Unlock()
	return set.Budget, nil
}

// lane returns this node's lane of runbook's budget name today.
func (b *Budgets) lane(runbook, name string, limit int64) *lane {
	day := Day(b.s.now())
	key := b.s.k.budget(day, runbook, name)
	b.mu.Lock()
	if b.day != day {
		b.day, b.lanes = day, map[string]*lane{} // a new day: new counters
	}
	l, ok := b.lanes[key]
	if !ok {
		l = &lane{key: key, chunk: ChunkOf(limit)}
		b.lanes[key] = l
	}
	b.mu.Unlock()
	l.mu.Lock()
	l.limit = limit
	l.mu.Unlock()
	return l
}

// Spend spends n units of runbook's day budget name (declared as limit)
// before what they count happens, taking a chunk when this node has too few
// left. With refuse, it spends nothing and returns a *runtime.BudgetError
// when the node has fewer than n left and the counter has reached the limit;
// without, it always spends (an undo). n = 0 spends nothing and refuses
// when the node has nothing left and the limit is reached: a check before a
// step whose HTTP calls are counted after it (SpendAfter).
func (b *Budgets) Spend(ctx context.Context, runbook, name string, limit, n int64, refuse bool) error {
	return b.lane(runbook, name, limit).spend(ctx, b, n, refuse)
}

// SpendAfter counts n units of runbook's day budget name that were spent
// already (a step's HTTP calls): they are taken whatever the limit.
func (b *Budgets) SpendAfter(ctx context.Context, runbook, name string, limit, n int64) error {
	if n <= 0 {
		return nil
	}
	l := b.lane(runbook, name, limit)
	for {
		l.mu.Lock()
		if l.taking != nil {
			ch := l.taking
			l.mu.Unlock()
			if err := wait(ctx, ch); err != nil {
				return err
			}
			continue
		}
		l.left -= n
		deficit := -l.left
		if deficit <= 0 {
			l.mu.Unlock()
			return nil
		}
		l.taking = make(chan struct{})
		l.mu.Unlock()
		_, err := l.take(ctx, b, deficit, false)
		l.endTake()
		return err
	}
}

// Exhausted reports whether runbook's day budget name is reached for new
// runs: this node has no unit of it left and the counter is at the limit.
// It reads the counter at most once a second per budget.
func (b *Budgets) Exhausted(ctx context.Context, runbook, name string, limit int64) (bool, error) {
	l := b.lane(runbook, name, limit)
	l.mu.Lock()
	if l.left > 0 || l.seen >= l.limit {
		defer l.mu.Unlock()
		return l.left <= 0, nil
	}
	fresh := time.Since(l.readAt) < time.Second
	l.mu.Unlock()
	if fresh {
		return false, nil
	}
	resp, err := b.s.cli.Get(ctx, l.key)
	if err != nil {
		return false, fmt.Errorf("read budget %s: %w", l.key, err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.absorb(resp.Kvs); err != nil {
		return false, err
	}
	l.readAt = time.Now()
	return l.left <= 0 && l.seen >= l.limit, nil
}

// AdmitStart decides whether a new run of runbook's version may start: it
// may not when a day budget of its declaration is exhausted (checked
// first, spending nothing), or when runs_per_day is (a run is spent). It
// returns a *runtime.BudgetError naming the budget, nil when the run may
// start, or a storage error.
func (b *Budgets) AdmitStart(ctx context.Context, runbook, version string) error {
	d, err := b.Declared(ctx, runbook, version)
	if err != nil || d == nil {
		return err
	}
	for _, name := range []string{triggers.BudgetStepsPerDay, triggers.BudgetHTTPCallsPerDay, triggers.BudgetFanOutItemsPerDay} {
		limit := d.Limit(name)
		if limit == 0 {
			continue
		}
		done, err := b.Exhausted(ctx, runbook, name, limit)
		if err != nil {
			return err
		}
		if done {
			return &sbruntime.BudgetError{Budget: name, Limit: limit}
		}
	}
	if d.RunsPerDay > 0 {
		return b.Spend(ctx, runbook, triggers.BudgetRunsPerDay, d.RunsPerDay, 1, true)
	}
	return nil
}

// refusal is AdmitStart's refusal of a triggered run as its execution
// records it ("" when it may start), or a storage error.
func (b *Budgets) refusal(ctx context.Context, runbook, version string) (string, error) {
	err := b.AdmitStart(ctx, runbook, version)
	var be *sbruntime.BudgetError
	if errors.As(err, &be) {
		return be.Error(), nil
	}
	return "", err
}

// refuseStart records e, a manual or API start err refused, as cancelled
// with the budget's message, so that it shows (and counts as a dead
// letter), and returns the *runtime.LimitError the caller answers with
// (HTTP 429). Other errors are returned as they are, recording nothing.
func (s *Store) refuseStart(ctx context.Context, e *sbruntime.Execution, err error) error {
	var be *sbruntime.BudgetError
	if !errors.As(err, &be) {
		return err
	}
	end := e.CreatedAt
	e.Status, e.Error, e.EndedAt, e.UpdatedAt = sbruntime.StatusCancelled, be.Error(), &end, end
	data, err := e.EncodeJSON()
	if err != nil {
		return err
	}
	ek := s.k.execution(e.ID)
	if _, err := s.cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(ek), "=", 0)).
		Then(append(append(append([]clientv3.Op{clientv3.OpPut(ek, string(data))}, s.k.deadLetterOps(e)...), s.k.indexOps(e)...), s.k.rollupEndOps(e)...)...).Commit(); err != nil {
		return fmt.Errorf("record refused execution %s: %w", e.ID, err)
	}
	s.ends.ended(e)
	return &sbruntime.LimitError{Limit: be.Budget, Msg: fmt.Sprintf("runbook %s: %s; execution %s recorded as cancelled",
		e.Runbook, be.Error(), e.ID)}
}

func (l *lane) spend(ctx context.Context, b *Budgets, n int64, refuse bool) error {
	need := max(n, 1)
	for {
		l.mu.Lock()
		if l.left >= need {
			l.left -= n
			// Take the next chunk before this one runs out, so that the
			// steps after this one do not wait for it.
			ahead := l.chunk >= 10 && l.left < l.chunk/2 && l.taking == nil && l.seen < l.limit
			if ahead {
				l.taking = make(chan struct{})
			}
			l.mu.Unlock()
			if ahead {
				// In the background: no step waits for a chunk taken ahead. A
				// failure is met again when this chunk runs out.
				go func() {
					tctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), aheadTimeout)
					defer cancel()
					_, _ = l.take(tctx, b, l.chunk, true)
					l.endTake()
				}()
			}
			return nil
		}
		if l.taking != nil {
			ch := l.taking
			l.mu.Unlock()
			if err := wait(ctx, ch); err != nil {
				return err
			}
			continue
		}
		if refuse && l.seen >= l.limit {
			limit := l.limit
			l.mu.Unlock()
			return &sbruntime.BudgetError{Budget: budgetName(l.key), Limit: limit}
		}
		units := max(l.chunk, need-l.left)
		l.taking = make(chan struct{})
		l.mu.Unlock()
		ok, err := l.take(ctx, b, units, refuse)
		l.endTake()
		if err != nil {
			return err
		}
		if !ok {
			l.mu.Lock()
			limit := l.limit
			l.mu.Unlock()
			return &sbruntime.BudgetError{Budget: budgetName(l.key), Limit: limit}
		}
	}
}

// take adds units to the counter and to what this node has left, by
// compare-and-swap on the counter's revision; with guard, only while the
// counter is under the limit (it reports false when it is not). The caller
// has set l.taking.
func (l *lane) take(ctx context.Context, b *Budgets, units int64, guard bool) (bool, error) {
	for attempt := 0; ; attempt++ {
		if attempt > 100 {
			return false, fmt.Errorf("take budget %s: too much contention", l.key)
		}
		l.mu.Lock()
		seen, rev, limit := l.seen, l.rev, l.limit
		l.mu.Unlock()
		if guard && seen >= limit {
			return false, nil
		}
		data, _ := json.Marshal(counterValue{Taken: seen + units, Limit: limit})
		resp, err := b.s.cli.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(l.key), "=", rev)).
			Then(clientv3.OpPut(l.key, string(data))).
			Else(clientv3.OpGet(l.key)).
			Commit()
		if err != nil {
			return false, fmt.Errorf("take budget %s: %w", l.key, err)
		}
		l.mu.Lock()
		if resp.Succeeded {
			l.seen, l.rev = seen+units, resp.Header.Revision
			l.left += units
			l.readAt = time.Now()
			l.mu.Unlock()
			return true, nil
		}
		err = l.absorb(resp.Responses[0].GetResponseRange().Kvs)
		l.mu.Unlock()
		if err != nil {
			return false, err
		}
	}
}

// absorb takes in a read of the counter (l.mu held).
func (l *lane) absorb(kvs []*mvccpb.KeyValue) error {
	if len(kvs) == 0 {
		if l.rev == 0 {
			l.seen = 0
		}
		return nil
	}
	var v counterValue
	if err := json.Unmarshal(kvs[0].Value, &v); err != nil {
		return fmt.Errorf("decode budget %s: %w", l.key, err)
	}
	if kvs[0].ModRevision > l.rev || v.Taken > l.seen {
		l.seen, l.rev = v.Taken, kvs[0].ModRevision
	}
	return nil
}

func (l *lane) endTake() {
	l.mu.Lock()
	close(l.taking)
	l.taking = nil
	l.mu.Unlock()
}

func wait(ctx context.Context, ch <-chan struct{}) error {
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// budgetName is the last segment of a counter key.
func budgetName(key string) string { return key[strings.LastIndexByte(key, '/')+1:] }

// BudgetUses reads the day budget counters of day ("" for today), by
// runbook and budget.
func (s *Store) BudgetUses(ctx context.Context, day string) ([]starbook.BudgetUse, error) {
	if day == "" {
		day = Day(s.now())
	}
	prefix := s.k.budgetsOf(day)
	resp, err := s.cli.Get(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("read budgets of %s: %w", day, err)
	}
	out := make([]starbook.BudgetUse, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		runbook, name, ok := strings.Cut(strings.TrimPrefix(string(kv.Key), prefix), "/")
		if !ok {
			continue
		}
		var v counterValue
		if err := json.Unmarshal(kv.Value, &v); err != nil {
			continue // not ours to judge
		}
		out = append(out, starbook.BudgetUse{Runbook: runbook, Day: day, Budget: name, Used: v.Taken, Limit: v.Limit})
	}
	return out, nil
}
