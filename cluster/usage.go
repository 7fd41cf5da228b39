package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/starbook/starbook"
	sbruntime "github.com/starbook/starbook/runtime"
)

// Usage per runbook per day costs no txn of its own: a run's outcome (Claim
// Finish) also writes usage/<day>/<runbook>/<id>, what the execution did
// that day, counted from its whole history (each event on the UTC day it
// ended) and, once it ended, its wall time on the day it ended. The value
// is recomputed from history each time, so a retried or repeated write
// stores the same thing, and each execution has its own key, so the
// outcomes of many executions share a txn with no compare between them.

// noteEvent remembers an event this claim recorded, for its usage.
func (c *Claim) noteEvent(ev *sbruntime.Event) {
	if ev == nil {
		return
	}
	c.usageMu.Lock()
	c.recorded = append(c.recorded, ev)
	c.usageMu.Unlock()
}

// usageOps are the writes of the execution's usage on each day the run
// recorded something (or ended, or a wait it replayed was resolved); end is
// the outcome's time, ended whether it ended the execution.
func (c *Claim) usageOps(e *sbruntime.Execution, checkpoint *sbruntime.Event, end time.Time, ended bool) []*etcdserverpb.RequestOp {
	c.usageMu.Lock()
	recorded := c.recorded
	if checkpoint != nil {
		recorded = append(recorded[:len(recorded):len(recorded)], checkpoint)
	}
	c.usageMu.Unlock()
	var puts []usagePut
	if ended && e.EndedAt != nil {
		// Every event stored for it: those it read when claimed and those
		// it recorded since, each once (a later write of a position wins).
		events := append(c.stored[:len(c.stored):len(c.stored)], recorded...)
		puts = c.s.k.finalUsagePuts(e, events)
	} else {
		puts = c.s.k.usagePuts(e, c.History, recorded, end, ended)
	}
	ops := make([]*etcdserverpb.RequestOp, len(puts))
	for i, p := range puts {
		ops[i] = putOp([]byte(p.key), p.value)
	}
	return ops
}

// usagePut is one usage/<day>/<runbook>/<id> write.
type usagePut struct {
	key   string
	value []byte
}

// usagePuts computes the execution's usage on each day one of its events
// ended, from the history it replayed and the events recorded since
// (recorded: every event of those counts; replayed: only the waits resolved
// by a timer, a signal or a decision, which no run recorded, open a day),
// with its wall time on the day it ended when ended.
func (k Keys) usagePuts(e *sbruntime.Execution, history map[string]*sbruntime.Event, recorded []*sbruntime.Event, end time.Time, ended bool) []usagePut {
	var days []dayRange
	touch := func(t time.Time) {
		for _, d := range days {
			if d.holds(t) {
				return
			}
		}
		days = append(days, dayOf(t))
	}
	for _, ev := range recorded {
		touch(ev.EndedAt)
	}
	for _, ev := range history {
		switch ev.Kind {
		case sbruntime.KindSleep, sbruntime.KindSignal, sbruntime.KindApproval:
			touch(ev.EndedAt) // resolved by a timer, a signal or a decision: no run recorded it
		}
	}
	if ended {
		touch(end)
	}
	if len(days) == 0 {
		return nil
	}
	usage := make([]sbruntime.Usage, len(days))
	count := func(ev *sbruntime.Event) {
		for i, d := range days {
			if d.holds(ev.EndedAt) {
				usage[i].Count(ev)
				return
			}
		}
	}
	for _, ev := range history {
		count(ev)
	}
	for _, ev := range recorded {
		count(ev)
	}
	puts := make([]usagePut, len(days))
	for i, d := range days {
		if ended && d.holds(end) {
			usage[i].WallTimeMS = max(end.Sub(e.CreatedAt).Milliseconds(), 0)
		}
		puts[i] = usagePut{key: k.executionUsage(d.name, e.Runbook, e.ID), value: encodeUsage(&usage[i])}
	}
	return puts
}

// finalUsagePuts computes the usage of e, ended, on every UTC day it has
// any: each of events (every event stored for it, all attempts', as its
// history reads) counted once on the day it ended, and its wall time on the
// day it ended. The values are marked final: its fold drops the execution's
// usagefolded/ key (rollups.go). An end writes them; a redrive computes them
// again from the history it reads, the same events, to restore that key.
// An execution that ended as it was created with nothing recorded (dropped,
// refused by a budget) has no usage.
func (k Keys) finalUsagePuts(e *sbruntime.Execution, events []*sbruntime.Event) []usagePut {
	if e.EndedAt == nil {
		return nil
	}
	end := *e.EndedAt
	once := make(map[string]*sbruntime.Event, len(events))
	var order []string
	for _, ev := range events {
		if ev == nil {
			continue
		}
		id := ev.Position + "@" + strconv.Itoa(ev.Attempt)
		if _, ok := once[id]; !ok {
			order = append(order, id)
		}
		once[id] = ev
	}
	if len(order) == 0 && !end.After(e.CreatedAt) {
		return nil
	}
	var days []dayRange
	var usage []sbruntime.Usage
	dayIndex := func(t time.Time) int {
		for i, d := range days {
			if d.holds(t) {
				return i
			}
		}
		days, usage = append(days, dayOf(t)), append(usage, sbruntime.Usage{})
		return len(days) - 1
	}
	usage[dayIndex(end)].WallTimeMS = max(end.Sub(e.CreatedAt).Milliseconds(), 0)
	for _, id := range order {
		ev := once[id]
		usage[dayIndex(ev.EndedAt)].Count(ev)
	}
	puts := make([]usagePut, len(days))
	for i, d := range days {
		puts[i] = usagePut{key: k.executionUsage(d.name, e.Runbook, e.ID), value: encodeFinalUsage(&usage[i])}
	}
	return puts
}

// finalMark ends the value of a final usage key: nothing reads it but the fold.
const finalMark = `,"final":true}`

func encodeFinalUsage(u *sbruntime.Usage) []byte {
	b := encodeUsage(u)
	return append(b[:len(b)-1], finalMark...)
}

func isFinalUsage(v []byte) bool { return bytes.HasSuffix(v, []byte(finalMark)) }

// unfinal is v, a usage value, no longer marked final.
func unfinal(v []byte) []byte {
	if !isFinalUsage(v) {
		return v
	}
	return append(v[:len(v)-len(finalMark):len(v)-len(finalMark)], '}')
}

// dayRange is one UTC day.
type dayRange struct {
	name       string
	start, end time.Time
}

func dayOf(t time.Time) dayRange {
	t = t.UTC()
	start := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
	return dayRange{name: start.Format(time.DateOnly), start: start, end: start.AddDate(0, 0, 1)}
}

func (d dayRange) holds(t time.Time) bool { return !t.Before(d.start) && t.Before(d.end) }

// encodeUsage writes u as json.Marshal does.
func encodeUsage(u *sbruntime.Usage) []byte {
	b := make([]byte, 0, 96)
	b = strconv.AppendInt(append(b, `{"steps":`...), u.Steps, 10)
	b = strconv.AppendInt(append(b, `,"retries":`...), u.Retries, 10)
	b = strconv.AppendInt(append(b, `,"http_calls":`...), u.HTTPCalls, 10)
	b = strconv.AppendInt(append(b, `,"fan_out_items":`...), u.FanOutItems, 10)
	b = strconv.AppendInt(append(b, `,"wall_time_ms":`...), u.WallTimeMS, 10)
	return append(b, '}')
}

// Usage sums what runbook ("" for every runbook) did on each of the last
// days UTC days of the store's clock, today included, with the day
// budgets' counters: newest day first, then by runbook. Days without usage
// or budgets are left out. It reads the days' rollups (usagedays/, one key
// per runbook and day) and only the usage keys not folded yet (see
// rollups.go), in one txn: what it costs does not grow with the executions
// stored.
func (s *Store) Usage(ctx context.Context, runbook string, days int) ([]*starbook.DayUsage, error) {
	if days < 1 {
		return nil, sbruntime.Inputf("days must be at least 1, got %d", days)
	}
	today := s.now().UTC()
	// One txn for every day asked (three reads a day, 40 days a txn).
	reads := make([]clientv3.Op, 0, 3*days)
	for i := range days {
		day := Day(today.AddDate(0, 0, -i))
		if runbook == "" {
			reads = append(reads, clientv3.OpGet(s.k.usageOf(day), clientv3.WithPrefix()),
				clientv3.OpGet(s.k.budgetsOf(day), clientv3.WithPrefix()),
				clientv3.OpGet(s.k.usageDaysOf(day), clientv3.WithPrefix()))
		} else {
			reads = append(reads, clientv3.OpGet(s.k.usageOfRunbook(day, runbook), clientv3.WithPrefix()),
				clientv3.OpGet(s.k.budgetsOf(day), clientv3.WithPrefix()),
				clientv3.OpGet(s.k.usageDay(day, runbook)))
		}
	}
	var responses []*etcdserverpb.ResponseOp
	for len(reads) > 0 {
		n := min(len(reads), 120)
		resp, err := s.cli.Txn(ctx).Then(reads[:n]...).Commit()
		if err != nil {
			return nil, fmt.Errorf("read usage: %w", err)
		}
		responses, reads = append(responses, resp.Responses...), reads[n:]
	}
	var out []*starbook.DayUsage
	for i := range days {
		day := Day(today.AddDate(0, 0, -i))
		rs := responses[3*i : 3*i+3] // its usage keys, budgets and rollups
		byRunbook := map[string]*starbook.DayUsage{}
		get := func(rb string) *starbook.DayUsage {
			du, ok := byRunbook[rb]
			if !ok {
				du = &starbook.DayUsage{Runbook: rb, Day: day}
				byRunbook[rb] = du
			}
			return du
		}
		for _, kv := range rs[2].GetResponseRange().Kvs {
			var v usageDayValue
			if err := json.Unmarshal(kv.Value, &v); err != nil {
				return nil, fmt.Errorf("decode %s: %w", kv.Key, err)
			}
			du := get(strings.TrimPrefix(string(kv.Key), s.k.usageDaysOf(day)))
			du.Executions += v.Executions
			du.Add(v.Usage)
		}
		// The keys written since the last fold, less what each had when
		// folded before (then it is counted in the rollup already).
		var unfolded []*mvccpb.KeyValue
		var moved []clientv3.Op
		for _, kv := range rs[0].GetResponseRange().Kvs {
			rb, id, ok := strings.Cut(strings.TrimPrefix(string(kv.Key), s.k.usageOf(day)), "/")
			if !ok {
				continue
			}
			unfolded = append(unfolded, kv)
			moved = append(moved, clientv3.OpGet(s.k.usageFoldedKey(day, rb, id)))
		}
		for len(unfolded) > 0 {
			n := min(len(unfolded), s.batch.maxOps)
			prev, err := s.cli.Txn(ctx).Then(moved[:n]...).Commit()
			if err != nil {
				return nil, fmt.Errorf("read usage of %s: %w", day, err)
			}
			for i, kv := range unfolded[:n] {
				rb, _, _ := strings.Cut(strings.TrimPrefix(string(kv.Key), s.k.usageOf(day)), "/")
				var u sbruntime.Usage
				if err := json.Unmarshal(kv.Value, &u); err != nil {
					continue // not ours to judge
				}
				du := get(rb)
				if old := prev.Responses[i].GetResponseRange().Kvs; len(old) > 0 {
					var o sbruntime.Usage
					if json.Unmarshal(old[0].Value, &o) == nil {
						addUsage(&du.Usage, &o, -1)
					}
				} else {
					du.Executions++
				}
				du.Add(u)
			}
			unfolded, moved = unfolded[n:], moved[n:]
		}
		for _, kv := range rs[1].GetResponseRange().Kvs {
			rb, name, ok := strings.Cut(strings.TrimPrefix(string(kv.Key), s.k.budgetsOf(day)), "/")
			if !ok || runbook != "" && rb != runbook {
				continue
			}
			var v counterValue
			if err := json.Unmarshal(kv.Value, &v); err != nil {
				continue
			}
			du := get(rb)
			du.Budgets = append(du.Budgets, starbook.BudgetUse{Budget: name, Used: v.Taken, Limit: v.Limit})
		}
		names := make([]string, 0, len(byRunbook))
		for rb := range byRunbook {
			names = append(names, rb)
		}
		slices.Sort(names)
		for _, rb := range names {
			out = append(out, byRunbook[rb])
		}
	}
	return out, nil
}

// PruneDays deletes the usage and budget counters and the rollups (usage
// and SLO) of the UTC days before cutoff's: retention keeps them as long as
// it keeps executions.
func (s *Store) PruneDays(ctx context.Context, cutoff time.Time) error {
	day := Day(cutoff)
	_, err := s.cli.Txn(ctx).Then(
		clientv3.OpDelete(s.k.usage(), clientv3.WithRange(s.k.usageOf(day))),
		clientv3.OpDelete(s.k.budgets(), clientv3.WithRange(s.k.budgetsOf(day))),
		clientv3.OpDelete(s.k.usageDays(), clientv3.WithRange(s.k.usageDaysOf(day))),
		clientv3.OpDelete(s.k.usageFolded(), clientv3.WithRange(s.k.usageFoldedOf(day))),
	).Commit()
	if err != nil {
		return fmt.Errorf("delete usage before %s: %w", day, err)
	}
	return s.pruneRollups(ctx, day)
}
