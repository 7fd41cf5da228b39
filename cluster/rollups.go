package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	sbruntime "github.com/starbook/starbook/runtime"
	"github.com/starbook/starbook/slo/tally"
)

// Rollups make an SLO and a usage report cost the buckets of their window,
// not the executions in it (as Prometheus' recording rules do):
//
//   - Each end writes, in its own txn, one small key of its own:
//     slo/d/<runbook>/<minute>/<id>@<attempt> (status, end, duration). No
//     end reads or compares another's, so group commit and concurrent txns
//     never contend on a counter. An attempt ends at most once (its end is
//     fenced), so the key is written once; a redrive (RedriveFailed) writes
//     <key>- beside it, retracting that end, in the redrive's txn.
//   - The leader folds (FoldRollups, every rollupInterval, every second
//     while there is something to fold): the ends older than rollupGrace
//     into their slo/m/<runbook>/<minute> (a tally.Bucket: a minute still
//     open is folded again next pass), and, once an hour ended minuteSpan
//     ago, its minutes into one slo/h/<runbook>/<hour>. A fold is one txn
//     that puts the rollup compared on its mod revision and deletes
//     exactly the keys it read, each compared on its mod revision: a fold
//     that lost a race (another leader, a concurrent write) commits
//     nothing and is retried next pass.
//   - A read sums the rollups and the unfolded ends of its window in one
//     txn (three range reads): exact at every moment, folded or not.
//
// Usage keys (usage/<day>/<runbook>/<id>) are not deltas: every outcome of
// a run rewrites its own with the run's whole usage that day. The fold
// moves each into usagefolded/<day>/<runbook>/<id> and adds the difference
// from the value it moved last time (none: a new execution that day) to
// usagedays/<day>/<runbook>. A read sums the day's rollups and the keys
// still unfolded, less what each of those had when last folded. So a read
// costs the runbooks × days asked plus the keys written since the last
// fold, and equals the sum of the usage keys as last written at every
// moment.
//
// An ended execution keeps no key of its own: its end (a claim's Finish,
// Cancel) writes its usage on every day it has any, computed from every
// event stored for it (finalUsagePuts), marked final; the fold of a final
// key adds its difference as any and deletes the execution's usagefolded/
// key instead of writing it. Only a redrive (RedriveFailed) writes its
// usage again: in the redrive's txn it computes the final values again
// from the history it read (the same events, the same record's CreatedAt
// and EndedAt: the same values), puts each day's usagefolded/ key back
// where the fold dropped it, or unmarks a final key not folded yet, each
// compared on the mod revisions read (a fold racing it: read again). So a
// live execution has one usagefolded/ key per day it ran, dropped when it
// ends; an ended one none: per ended execution, the rollups keep nothing
// (its slo/d/ end and usage keys are folded away within seconds).
//
// Resolution: counts are exact. A window's far edge is rounded to the
// nearest bucket boundary: to the minute within minuteSpan (the 5m, 1h
// and 6h burn windows), to the hour beyond (the 3d burn window, an SLO's
// 28d); the ends of the last rollupGrace, unfolded, count to the
// nanosecond. Latency percentiles are within tally.RelativeError (1/32)
// above the exact nearest-rank ones, or 1 ms, never below.

const (
	// rollupGrace is how old an end must be (by the time it carries) to be
	// folded. Exactness does not depend on it: a fold deletes exactly the
	// keys it read and a read sums rollups and unfolded keys, so an end
	// timed before a pass and committed after it (a group commit's wait, a
	// slow node, clock skew between nodes: well under a second with NTP)
	// is simply folded by the next pass. A second keeps a pass from
	// chasing the ends being committed as it reads.
	rollupGrace = time.Second
	// rollupInterval is the time between the leader's passes when the
	// last folded nothing (default), rollupBusyInterval when it folded
	// something: in a burst (a thousand ends a second and more), a read
	// finds a few seconds of ends unfolded, not minutes'.
	rollupInterval     = 10 * time.Second
	rollupBusyInterval = time.Second
	// minuteSpan is how long after an hour ends its minutes stay apart:
	// longer than the 6h burn window, so that its edge is to the minute.
	minuteSpan = 7 * time.Hour
	// rollupPage is how many keys one read of a fold or a build takes.
	// etcd counts every key of a range read whatever its limit, so a fold
	// reads its backlog in few large pages: a pass costs one read of what
	// it folds, up to rollupPage keys (~3 MB).
	rollupPage = 20000
)

// foldChunk is how many keys one fold txn takes under the store's max ops
// per txn (128 for an external etcd, EmbeddedMaxTxnOps embedded): each key
// costs a compare and a delete (a usage key a compare more and a put), the
// rollup a compare and a put, the fence its compares.
func (s *Store) foldChunk(perKey int, fence []clientv3.Cmp) int {
	return max((s.batch.maxOps-1-len(fence))/perKey, 1)
}

// sloEndValue is the value of slo/d/...: one attempt's end.
type sloEndValue struct {
	Status sbruntime.Status `json:"status"`
	Ended  int64            `json:"ended"` // unix ns
	Took   int64            `json:"took"`  // ns from creation to end
}

// sloEndKV returns the key and value of e's end, or false if e has not ended.
func (k Keys) sloEndKV(e *sbruntime.Execution) (string, []byte, bool) {
	if !e.Status.Terminal() || e.EndedAt == nil {
		return "", nil, false
	}
	v, _ := json.Marshal(sloEndValue{Status: e.Status, Ended: e.EndedAt.UnixNano(), Took: e.EndedAt.Sub(e.CreatedAt).Nanoseconds()})
	return k.sloEnd(e.Runbook, *e.EndedAt, e.ID, e.Attempt()), v, true
}

// RollupEndOps are the writes an end of e adds to its txn for the rollups
// (none if e has not ended): one key of its own, written once.
func (k Keys) rollupEndOps(e *sbruntime.Execution) []clientv3.Op {
	key, v, ok := k.sloEndKV(e)
	if !ok {
		return nil
	}
	return []clientv3.Op{clientv3.OpPut(key, string(v))}
}

// rollupEndPB is rollupEndOps built as protobuf, for group commit.
func (k Keys) rollupEndPB(e *sbruntime.Execution) []*etcdserverpb.RequestOp {
	key, v, ok := k.sloEndKV(e)
	if !ok {
		return nil
	}
	return []*etcdserverpb.RequestOp{putOp([]byte(key), v)}
}

// rollupRetractOps are the writes a redrive of ended, the record as it
// ended, adds to its txn: the retraction of its end, which it will end
// again (once more, counted again).
func (k Keys) rollupRetractOps(ended *sbruntime.Execution) []clientv3.Op {
	key, v, ok := k.sloEndKV(ended)
	if !ok {
		return nil
	}
	return []clientv3.Op{clientv3.OpPut(key+"-", string(v))}
}

// decodeSLOEnd returns what an slo/d/ key counts: its end, and -1 for a
// retraction.
func decodeSLOEnd(kv *mvccpb.KeyValue) (tally.Bucket, error) {
	var v sloEndValue
	if err := json.Unmarshal(kv.Value, &v); err != nil {
		return tally.Bucket{}, fmt.Errorf("decode %s: %w", kv.Key, err)
	}
	sign := int64(1)
	if strings.HasSuffix(string(kv.Key), "-") {
		sign = -1
	}
	at := time.Unix(0, v.Ended).UTC()
	b := tally.Bucket{Start: at, End: at}
	b.Add(v.Status, time.Duration(v.Took), sign)
	return b, nil
}

// decodeRollup decodes a rollup key's bucket, spanning [start, start+span).
func decodeRollup(kv *mvccpb.KeyValue, start time.Time, span time.Duration) (tally.Bucket, error) {
	var b tally.Bucket
	if err := b.Decode(kv.Value); err != nil {
		return b, fmt.Errorf("decode %s: %w", kv.Key, err)
	}
	b.Start, b.End = start, start.Add(span)
	return b, nil
}

// stampAfter parses the time stamp that follows prefix in key (up to the
// next '/', if any) with layout.
func stampAfter(key, prefix, layout string) (time.Time, error) {
	stamp, _, _ := strings.Cut(strings.TrimPrefix(key, prefix), "/")
	t, err := time.Parse(layout, stamp)
	if err != nil {
		return t, fmt.Errorf("rollup key %q: %w", key, err)
	}
	return t, nil
}

// SLOBuckets returns runbook's ends since since (to the minute, or the
// hour beyond minuteSpan; see the resolution above) as counted buckets:
// one range read each of its hour rollups, minute rollups and unfolded
// ends from since's hour or minute on, in one txn. It costs the buckets
// of the window and the ends of the last minutes, not the executions.
func (s *Store) SLOBuckets(ctx context.Context, runbook string, since time.Time) ([]tally.Bucket, error) {
	out, err := s.SLOBucketsOf(ctx, map[string]time.Time{runbook: since})
	return out[runbook], err
}

// SLOBucketsOf is SLOBuckets of several runbooks, each since its own time,
// in one txn (40 runbooks a txn).
func (s *Store) SLOBucketsOf(ctx context.Context, since map[string]time.Time) (map[string][]tally.Bucket, error) {
	type family struct {
		prefix, layout string
		span           time.Duration
	}
	var runbooks []string
	var families []family
	var reads []clientv3.Op
	for rb, t := range since {
		hours, minutes, ends := s.k.sloHoursOf(rb), s.k.sloMinutesOf(rb), s.k.sloEndsOf(rb)
		runbooks = append(runbooks, rb)
		families = append(families, family{hours, hourLayout, time.Hour}, family{minutes, minuteLayout, time.Minute}, family{ends, "", 0})
		reads = append(reads,
			clientv3.OpGet(hours+hourStamp(t), clientv3.WithRange(clientv3.GetPrefixRangeEnd(hours))),
			clientv3.OpGet(minutes+minuteStamp(t), clientv3.WithRange(clientv3.GetPrefixRangeEnd(minutes))),
			clientv3.OpGet(ends+minuteStamp(t), clientv3.WithRange(clientv3.GetPrefixRangeEnd(ends))))
	}
	out := make(map[string][]tally.Bucket, len(since))
	for done := 0; done < len(reads); done += 120 {
		n := min(len(reads)-done, 120)
		resp, err := s.cli.Txn(ctx).Then(reads[done : done+n]...).Commit()
		if err != nil {
			return nil, fmt.Errorf("read slo rollups: %w", err)
		}
		for k, r := range resp.Responses {
			f, rb := families[done+k], runbooks[(done+k)/3]
			for _, kv := range r.GetResponseRange().Kvs {
				var b tally.Bucket
				if f.layout == "" {
					b, err = decodeSLOEnd(kv)
				} else {
					var start time.Time
					if start, err = stampAfter(string(kv.Key), f.prefix, f.layout); err == nil {
						b, err = decodeRollup(kv, start, f.span)
					}
				}
				if err != nil {
					return nil, err
				}
				out[rb] = append(out[rb], b)
			}
		}
	}
	return out, nil
}

// RollupFolding configures the leader's folding of rollups.
type RollupFolding struct {
	// Interval between passes after one that folded nothing (default 10s;
	// after one that folded something, at most rollupBusyInterval); the
	// first runs when leadership starts.
	Interval time.Duration
	// Now is the clock deciding what is closed; the store's when nil.
	Now func() time.Time
	// Logger gets a line per failed pass; nil discards.
	Logger *slog.Logger
	// OnPass, when set, is told each pass's outcome (tests, metrics).
	OnPass func(folded int, err error)
}

// RollupTask returns a leader task (node.Config.LeaderTasks) that folds
// rollups (FoldRollups) every r.Interval while the node leads.
func (s *Store) RollupTask(r RollupFolding) func(ctx context.Context) {
	if r.Interval <= 0 {
		r.Interval = rollupInterval
	}
	if r.Now == nil {
		r.Now = func() time.Time { return s.now() }
	}
	if r.Logger == nil {
		r.Logger = slog.New(slog.DiscardHandler)
	}
	return func(ctx context.Context) {
		t := time.NewTimer(r.Interval)
		defer t.Stop()
		for {
			n, err := s.FoldRollups(ctx, r.Now())
			if ctx.Err() != nil {
				return
			}
			if err != nil {
				r.Logger.Warn("rollups", "err", err, "folded", n)
			}
			if r.OnPass != nil {
				r.OnPass(n, err)
			}
			// A pass that folded something is in a burst: the next comes
			// soon, so that reads after it find little unfolded.
			wait := r.Interval
			if n > 0 {
				wait = min(wait, rollupBusyInterval)
			}
			t.Reset(wait)
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}
}

// errFoldRaced is a fold whose compares failed: what it read changed.
var errFoldRaced = errors.New("changed while folded")

// FoldRollups folds, as of now: the SLO ends older than rollupGrace, the minute rollups of every hour that ended minuteSpan
// ago, and every usage key. It returns how many keys it folded. A fold that
// lost a race is left for the next pass; reads are exact either way.
func (s *Store) FoldRollups(ctx context.Context, now time.Time) (int, error) {
	return s.foldRollups(ctx, now, nil)
}

func (s *Store) foldRollups(ctx context.Context, now time.Time, fence []clientv3.Cmp) (int, error) {
	n1, err1 := s.foldSLOEnds(ctx, now, fence)
	n2, err2 := s.foldSLOMinutes(ctx, now, fence)
	n3, err3 := s.foldUsage(ctx, fence)
	return n1 + n2 + n3, errors.Join(err1, err2, err3)
}

// readAll calls fn with every key in [from, end), read rollupPage at a time.
func (s *Store) readAll(ctx context.Context, from, end string, fn func(*mvccpb.KeyValue) error) error {
	for {
		resp, err := s.cli.Get(ctx, from, clientv3.WithRange(end), clientv3.WithLimit(rollupPage))
		if err != nil {
			return fmt.Errorf("read %s: %w", from, err)
		}
		for _, kv := range resp.Kvs {
			if err := fn(kv); err != nil {
				return err
			}
		}
		if !resp.More || len(resp.Kvs) == 0 {
			return nil
		}
		from = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
}

// foldTarget is a rollup key and the keys to fold into it.
type foldTarget struct {
	key  string
	keys []*mvccpb.KeyValue
	add  []tally.Bucket // what each of keys adds
}

// foldPlan is what a pass folds: its targets, in the order first met.
type foldPlan struct {
	targets map[string]*foldTarget
	order   []string
}

// add plans kv, adding b, to be folded into the rollup at target.
func (p *foldPlan) add(target string, kv *mvccpb.KeyValue, b tally.Bucket) {
	t, ok := p.targets[target]
	if !ok {
		if p.targets == nil {
			p.targets = map[string]*foldTarget{}
		}
		t = &foldTarget{key: target}
		p.targets[target] = t
		p.order = append(p.order, target)
	}
	t.keys, t.add = append(t.keys, kv), append(t.add, b)
}

// foldSLOEnds folds the ends of closed minutes into their minute rollup, or
// their hour's if that hour's minutes were folded already (late ends, and
// retractions of old ones).
func (s *Store) foldSLOEnds(ctx context.Context, now time.Time, fence []clientv3.Cmp) (int, error) {
	plan := &foldPlan{}
	err := s.readAll(ctx, s.k.sloEnds(), clientv3.GetPrefixRangeEnd(s.k.sloEnds()), func(kv *mvccpb.KeyValue) error {
		rb, rest, _ := strings.Cut(strings.TrimPrefix(string(kv.Key), s.k.sloEnds()), "/")
		minute, err := stampAfter(rest, "", minuteLayout)
		if err != nil {
			return err
		}
		b, err := decodeSLOEnd(kv)
		if err != nil {
			return err
		}
		if b.Start.After(now.Add(-rollupGrace)) {
			return nil // too recent: next pass
		}
		target := s.k.sloMinute(rb, minute)
		if hourEnd := minute.Truncate(time.Hour).Add(time.Hour); !hourEnd.After(now.Add(-minuteSpan)) {
			target = s.k.sloHour(rb, minute)
		}
		plan.add(target, kv, b)
		return nil
	})
	if err != nil {
		return 0, err
	}
	return s.foldTargets(ctx, plan, fence)
}

// foldSLOMinutes folds the minute rollups of hours that ended minuteSpan
// ago into their hour's.
func (s *Store) foldSLOMinutes(ctx context.Context, now time.Time, fence []clientv3.Cmp) (int, error) {
	runbooks, err := s.runbooksUnder(ctx, s.k.sloMinutes())
	if err != nil {
		return 0, err
	}
	cutoff := now.Add(-minuteSpan).Truncate(time.Hour) // hours before this one ended minuteSpan ago
	plan := &foldPlan{}
	for _, rb := range runbooks {
		prefix := s.k.sloMinutesOf(rb)
		err := s.readAll(ctx, prefix, prefix+hourStamp(cutoff), func(kv *mvccpb.KeyValue) error {
			minute, err := stampAfter(string(kv.Key), prefix, minuteLayout)
			if err != nil {
				return err
			}
			b, err := decodeRollup(kv, minute, time.Minute)
			if err != nil {
				return err
			}
			target := s.k.sloHour(rb, minute)
			plan.add(target, kv, b)
			return nil
		})
		if err != nil {
			return 0, err
		}
	}
	return s.foldTargets(ctx, plan, fence)
}

// foldTargets folds each target's keys into it, a chunk of keys a txn.
func (s *Store) foldTargets(ctx context.Context, plan *foldPlan, fence []clientv3.Cmp) (int, error) {
	folded := 0
	var errs []error
	for _, key := range plan.order {
		t := plan.targets[key]
		chunk := s.foldChunk(1, fence)
		for i := 0; i < len(t.keys); i += chunk {
			j := min(i+chunk, len(t.keys))
			err := s.foldInto(ctx, key, t.keys[i:j], t.add[i:j], fence)
			if err != nil {
				if !errors.Is(err, errFoldRaced) { // a race is no failure: the next pass reads it again
					errs = append(errs, err)
				}
				break
			}
			folded += j - i
		}
	}
	return folded, errors.Join(errs...)
}

// foldInto adds adds (what each of keys counts) to the rollup at key and
// deletes keys, in one txn compared on the rollup's and each key's mod
// revision as read.
func (s *Store) foldInto(ctx context.Context, key string, keys []*mvccpb.KeyValue, adds []tally.Bucket, fence []clientv3.Cmp) error {
	resp, err := s.cli.Get(ctx, key)
	if err != nil {
		return fmt.Errorf("read rollup %s: %w", key, err)
	}
	var b tally.Bucket
	var rev int64
	if len(resp.Kvs) > 0 {
		if err := b.Decode(resp.Kvs[0].Value); err != nil {
			return fmt.Errorf("decode %s: %w", key, err)
		}
		rev = resp.Kvs[0].ModRevision
	}
	for i := range adds {
		b.Merge(&adds[i], 1)
	}
	cmps := append(append(make([]clientv3.Cmp, 0, len(keys)+1+len(fence)), fence...),
		clientv3.Compare(clientv3.ModRevision(key), "=", rev))
	ops := make([]clientv3.Op, 0, len(keys)+1)
	if b.Empty() { // its ends were all retracted
		ops = append(ops, clientv3.OpDelete(key))
	} else {
		v, err := json.Marshal(&b)
		if err != nil {
			return err
		}
		ops = append(ops, clientv3.OpPut(key, string(v)))
	}
	for _, kv := range keys {
		cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(string(kv.Key)), "=", kv.ModRevision))
		ops = append(ops, clientv3.OpDelete(string(kv.Key)))
	}
	tx, err := s.cli.Txn(ctx).If(cmps...).Then(ops...).Commit()
	if err != nil {
		return fmt.Errorf("fold into %s: %w", key, err)
	}
	if !tx.Succeeded {
		return fmt.Errorf("fold into %s: %w", key, errFoldRaced)
	}
	return nil
}

// runbooksUnder lists the runbooks that have keys under prefix
// (prefix<runbook>/...): one read of one key per runbook, each jumping past
// the previous runbook's keys.
func (s *Store) runbooksUnder(ctx context.Context, prefix string) ([]string, error) {
	var out []string
	from, end := prefix, clientv3.GetPrefixRangeEnd(prefix)
	for {
		resp, err := s.cli.Get(ctx, from, clientv3.WithRange(end), clientv3.WithLimit(1), clientv3.WithKeysOnly())
		if err != nil {
			return nil, fmt.Errorf("list runbooks under %s: %w", prefix, err)
		}
		if len(resp.Kvs) == 0 {
			return out, nil
		}
		rb, _, _ := strings.Cut(strings.TrimPrefix(string(resp.Kvs[0].Key), prefix), "/")
		out = append(out, rb)
		from = prefix + rb + "0" // '0' follows '/': past every key of rb
	}
}

// pruneRollups deletes the SLO rollups and ends of the UTC days before
// day's: one range delete per runbook and family.
func (s *Store) pruneRollups(ctx context.Context, day string) error {
	var ops []clientv3.Op
	for _, family := range []string{s.k.sloEnds(), s.k.sloMinutes(), s.k.sloHours()} {
		runbooks, err := s.runbooksUnder(ctx, family)
		if err != nil {
			return err
		}
		for _, rb := range runbooks {
			ops = append(ops, clientv3.OpDelete(family+rb+"/", clientv3.WithRange(family+rb+"/"+day)))
		}
	}
	for len(ops) > 0 {
		n := min(len(ops), 100)
		if _, err := s.cli.Txn(ctx).Then(ops[:n]...).Commit(); err != nil {
			return fmt.Errorf("delete slo rollups before %s: %w", day, err)
		}
		ops = ops[n:]
	}
	return nil
}

// usageDayValue is the value of usagedays/<day>/<runbook>: the sum of the
// folded usage keys, and how many there are.
type usageDayValue struct {
	Executions int64 `json:"executions"`
	sbruntime.Usage
}

func addUsage(u *sbruntime.Usage, o *sbruntime.Usage, sign int64) {
	u.Steps += sign * o.Steps
	u.Retries += sign * o.Retries
	u.HTTPCalls += sign * o.HTTPCalls
	u.FanOutItems += sign * o.FanOutItems
	u.WallTimeMS += sign * o.WallTimeMS
}

// foldUsage moves every usage key into usagefolded/, adding to its day's
// rollup what it adds to the value moved last time.
func (s *Store) foldUsage(ctx context.Context, fence []clientv3.Cmp) (int, error) {
	type group struct{ day, rb string }
	groups := map[group][]*mvccpb.KeyValue{}
	var order []group
	err := s.readAll(ctx, s.k.usage(), clientv3.GetPrefixRangeEnd(s.k.usage()), func(kv *mvccpb.KeyValue) error {
		day, rest, _ := strings.Cut(strings.TrimPrefix(string(kv.Key), s.k.usage()), "/")
		rb, _, ok := strings.Cut(rest, "/")
		if !ok {
			return nil // not ours
		}
		g := group{day, rb}
		if _, ok := groups[g]; !ok {
			order = append(order, g)
		}
		groups[g] = append(groups[g], kv)
		return nil
	})
	if err != nil {
		return 0, err
	}
	folded := 0
	var errs []error
	for _, g := range order {
		kvs := groups[g]
		chunk := s.foldChunk(2, fence)
		for i := 0; i < len(kvs); i += chunk {
			j := min(i+chunk, len(kvs))
			n, err := s.foldUsageInto(ctx, g.day, g.rb, kvs[i:j], fence)
			if err != nil {
				if !errors.Is(err, errFoldRaced) { // a race is no failure: the next pass reads it again
					errs = append(errs, err)
				}
				break
			}
			folded += n
		}
	}
	return folded, errors.Join(errs...)
}

// foldUsageInto folds kvs, usage keys of runbook rb on day, in one txn, and
// returns how many it moved (one that does not decode stays where it is).
func (s *Store) foldUsageInto(ctx context.Context, day, rb string, kvs []*mvccpb.KeyValue, fence []clientv3.Cmp) (int, error) {
	rollup := s.k.usageDay(day, rb)
	reads := []clientv3.Op{clientv3.OpGet(rollup)}
	moved := make([]string, len(kvs))
	for i, kv := range kvs {
		moved[i] = s.k.usageFoldedKey(day, rb, strings.TrimPrefix(string(kv.Key), s.k.usageOfRunbook(day, rb)))
		reads = append(reads, clientv3.OpGet(moved[i]))
	}
	resp, err := s.cli.Txn(ctx).Then(reads...).Commit()
	if err != nil {
		return 0, fmt.Errorf("read usage rollup %s: %w", rollup, err)
	}
	var sum usageDayValue
	var rev int64
	if r := resp.Responses[0].GetResponseRange().Kvs; len(r) > 0 {
		if err := json.Unmarshal(r[0].Value, &sum); err != nil {
			return 0, fmt.Errorf("decode %s: %w", rollup, err)
		}
		rev = r[0].ModRevision
	}
	cmps := append(append(make([]clientv3.Cmp, 0, 2*len(kvs)+1+len(fence)), fence...),
		clientv3.Compare(clientv3.ModRevision(rollup), "=", rev))
	ops := make([]clientv3.Op, 0, 2*len(kvs)+1)
	for i, kv := range kvs {
		var u sbruntime.Usage
		if err := json.Unmarshal(kv.Value, &u); err != nil {
			continue // not ours to judge: left where it is, as Usage skips it
		}
		var prevRev int64
		if prev := resp.Responses[i+1].GetResponseRange().Kvs; len(prev) > 0 {
			var old sbruntime.Usage
			if err := json.Unmarshal(prev[0].Value, &old); err == nil {
				addUsage(&sum.Usage, &old, -1)
			}
			prevRev = prev[0].ModRevision
		} else {
			sum.Executions++
		}
		addUsage(&sum.Usage, &u, 1)
		cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(string(kv.Key)), "=", kv.ModRevision),
			clientv3.Compare(clientv3.ModRevision(moved[i]), "=", prevRev))
		if isFinalUsage(kv.Value) { // its execution ended: it changes no more, unless redriven (then RedriveFailed puts it back)
			ops = append(ops, clientv3.OpDelete(moved[i]), clientv3.OpDelete(string(kv.Key)))
		} else {
			ops = append(ops, clientv3.OpPut(moved[i], string(kv.Value)), clientv3.OpDelete(string(kv.Key)))
		}
	}
	if len(ops) == 0 {
		return 0, nil // nothing that decodes
	}
	v, err := json.Marshal(&sum)
	if err != nil {
		return 0, err
	}
	ops = append(ops, clientv3.OpPut(rollup, string(v)))
	tx, err := s.cli.Txn(ctx).If(cmps...).Then(ops...).Commit()
	if err != nil {
		return 0, fmt.Errorf("fold usage into %s: %w", rollup, err)
	}
	if !tx.Succeeded {
		return 0, fmt.Errorf("fold usage into %s: %w", rollup, errFoldRaced)
	}
	return len(ops) / 2, nil
}

// BuildRollups counts the executions that ended before the rollups existed
// (the format 4 migration): each ended execution's end is added to its
// minute's or hour's rollup, executions in id order, and the id of the
// last one counted is stored in slo/built in the same txn, so that a build
// killed half way resumes after it and one run again counts nothing twice;
// then every usage key is folded (FoldRollups' fold, idempotent). fence,
// the migration's, is added to every txn's compares. No node may end
// executions meanwhile (a store being migrated has none of this format;
// one of the format before writes no end keys, and its ends after the
// build are not counted).
func (s *Store) BuildRollups(ctx context.Context, fence ...clientv3.Cmp) error {
	built := s.k.sloBuilt()
	now := s.now().UTC()
	for {
		resp, err := s.cli.Get(ctx, built)
		if err != nil {
			return fmt.Errorf("read %s: %w", built, err)
		}
		var cursor string
		var cursorRev int64
		if len(resp.Kvs) > 0 {
			cursor, cursorRev = string(resp.Kvs[0].Value), resp.Kvs[0].ModRevision
		}
		if cursor == builtDone {
			break
		}
		from := s.k.executions()
		if cursor != "" {
			from = s.k.execution(cursor) + "\x00"
		}
		page, err := s.cli.Get(ctx, from, clientv3.WithRange(clientv3.GetPrefixRangeEnd(s.k.executions())),
			clientv3.WithLimit(buildPage), clientv3.WithRev(resp.Header.Revision))
		if err != nil {
			return fmt.Errorf("read executions after %q: %w", cursor, err)
		}
		if len(page.Kvs) == 0 {
			if _, err := s.putBuilt(ctx, builtDone, cursorRev, nil, fence); err != nil {
				return err
			}
			break
		}
		// Count the page's ends by rollup, up to a fold's chunk of rollups a txn.
		adds := map[string]*tally.Bucket{}
		last := cursor
		flush := func() error {
			rev, err := s.putBuilt(ctx, last, cursorRev, adds, fence)
			adds, cursorRev = map[string]*tally.Bucket{}, rev
			return err
		}
		for _, kv := range page.Kvs {
			e, err := s.k.decodeExecution(kv)
			if err != nil {
				return err
			}
			if _, _, ok := s.k.sloEndKV(e); ok {
				target := s.k.sloMinute(e.Runbook, *e.EndedAt)
				if hourEnd := e.EndedAt.Truncate(time.Hour).Add(time.Hour); !hourEnd.After(now.Add(-minuteSpan)) {
					target = s.k.sloHour(e.Runbook, *e.EndedAt)
				}
				if _, ok := adds[target]; !ok && len(adds) == s.foldChunk(1, fence) {
					if err := flush(); err != nil {
						return err
					}
				}
				b := adds[target]
				if b == nil {
					b = &tally.Bucket{}
					adds[target] = b
				}
				b.Add(e.Status, e.EndedAt.Sub(e.CreatedAt), 1)
			}
			last = e.ID
		}
		if err := flush(); err != nil {
			return err
		}
	}
	for {
		n, err := s.foldUsage(ctx, fence)
		if err != nil {
			return fmt.Errorf("build usage rollups: %w", err)
		}
		if n == 0 {
			return nil
		}
	}
}

// buildPage is how many execution records one read of a build takes.
const buildPage = 1000

// builtDone is slo/built's value once BuildRollups has counted every execution.
const builtDone = "done"

// putBuilt adds adds to their rollups and stores cursor in slo/built, if
// slo/built is still at cursorRev and no rollup changed since read. It
// returns slo/built's new mod revision.
func (s *Store) putBuilt(ctx context.Context, cursor string, cursorRev int64, adds map[string]*tally.Bucket, fence []clientv3.Cmp) (int64, error) {
	keys := make([]string, 0, len(adds))
	reads := make([]clientv3.Op, 0, len(adds))
	for key := range adds {
		keys = append(keys, key)
		reads = append(reads, clientv3.OpGet(key))
	}
	resp, err := s.cli.Txn(ctx).Then(reads...).Commit()
	if err != nil {
		return 0, fmt.Errorf("read rollups: %w", err)
	}
	cmps := append(append([]clientv3.Cmp(nil), fence...), clientv3.Compare(clientv3.ModRevision(s.k.sloBuilt()), "=", cursorRev))
	ops := []clientv3.Op{clientv3.OpPut(s.k.sloBuilt(), cursor)}
	for i, key := range keys {
		var b tally.Bucket
		var rev int64
		if kvs := resp.Responses[i].GetResponseRange().Kvs; len(kvs) > 0 {
			if err := b.Decode(kvs[0].Value); err != nil {
				return 0, fmt.Errorf("decode %s: %w", key, err)
			}
			rev = kvs[0].ModRevision
		}
		b.Merge(adds[key], 1)
		v, err := json.Marshal(&b)
		if err != nil {
			return 0, err
		}
		cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(key), "=", rev))
		ops = append(ops, clientv3.OpPut(key, string(v)))
	}
	tx, err := s.cli.Txn(ctx).If(cmps...).Then(ops...).Commit()
	if err != nil {
		return 0, fmt.Errorf("build rollups: %w", err)
	}
	if !tx.Succeeded {
		return 0, fmt.Errorf("build rollups after %q: %w (the migration lock lost, or another build ran)", cursor, errFoldRaced)
	}
	return tx.Header.Revision, nil
}
