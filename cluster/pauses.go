package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/starbook/starbook"
	sbruntime "github.com/starbook/starbook/runtime"
	"github.com/starbook/starbook/triggers"
)

// Pauses. A runbook's pause is one key, pauses/<runbook>, and the pause of
// every runbook pauses/* (starbook.AllRunbooks), each holding the
// starbook.PauseState as set. Setting or clearing one writes its audit
// record in the same txn. A pause past its Until stops nothing (Active),
// whoever reads it; the leader deletes it (ResumeDue), so that the resume is
// recorded and survives a fail-over. Readers on a trigger's path pay one
// range read of pauses/, which holds as many keys as runbooks are paused
// (usually none), folded into the read they make anyway (triggerIndex).

// PutPause stores p as the pause of p.Runbook (or of every runbook) and
// audit with it, in one txn. A runbook's pause needs the runbook: an unknown
// one wraps ErrNotFound and nothing is stored.
func (s *Store) PutPause(ctx context.Context, p *starbook.PauseState, audit *starbook.AuditRecord) error {
	data, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("pause %s: %w", p.Runbook, err)
	}
	op, err := s.auditOp(audit)
	if err != nil {
		return err
	}
	txn := s.cli.Txn(ctx)
	if p.Runbook != starbook.AllRunbooks {
		txn = txn.If(clientv3.Compare(clientv3.CreateRevision(s.k.runbookCurrent(p.Runbook)), ">", 0))
	}
	tx, err := txn.Then(clientv3.OpPut(s.k.pause(p.Runbook), string(data)), op).Commit()
	if err != nil {
		return fmt.Errorf("pause %s: %w", p.Runbook, err)
	}
	if !tx.Succeeded {
		return fmt.Errorf("pause runbook %q: %w (apply it first)", p.Runbook, sbruntime.ErrNotFound)
	}
	return nil
}

// DeletePause clears the pause of runbook (or of every runbook) and stores
// audit with it, in one txn fenced on the pause as read; it returns the
// pause it cleared, or nil when there was none (and then stores nothing). A
// runbook that is neither paused nor known wraps ErrNotFound.
func (s *Store) DeletePause(ctx context.Context, runbook string, audit *starbook.AuditRecord) (*starbook.PauseState, error) {
	key := s.k.pause(runbook)
	for {
		resp, err := s.cli.Get(ctx, key)
		if err != nil {
			return nil, fmt.Errorf("resume %s: %w", runbook, err)
		}
		if len(resp.Kvs) == 0 {
			if runbook != starbook.AllRunbooks {
				if _, err := s.CurrentVersion(ctx, runbook); err != nil {
					return nil, err
				}
			}
			return nil, nil
		}
		prev, err := decodePause(resp.Kvs[0])
		if err != nil {
			return nil, err
		}
		op, err := s.auditOp(audit)
		if err != nil {
			return nil, err
		}
		tx, err := s.cli.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(key), "=", resp.Kvs[0].ModRevision)).
			Then(clientv3.OpDelete(key), op).Commit()
		if err != nil {
			return nil, fmt.Errorf("resume %s: %w", runbook, err)
		}
		if tx.Succeeded {
			return prev, nil
		}
	}
}

// PauseOf returns the pause that stops runbook at now (its own, else the
// pause of every runbook, with All set), or a PauseState with Paused false.
// It costs one txn of two key reads.
func (s *Store) PauseOf(ctx context.Context, runbook string) (*starbook.PauseState, error) {
	resp, err := s.cli.Txn(ctx).Then(clientv3.OpGet(s.k.pause(runbook)), clientv3.OpGet(s.k.pause(starbook.AllRunbooks))).Commit()
	if err != nil {
		return nil, fmt.Errorf("read pause of %s: %w", runbook, err)
	}
	var set []starbook.PauseState
	for _, r := range resp.Responses {
		for _, kv := range r.GetResponseRange().Kvs {
			p, err := decodePause(kv)
			if err != nil {
				return nil, err
			}
			set = append(set, *p)
		}
	}
	return EffectivePause(runbook, set, s.now()), nil
}

// Pauses returns every pause stored, the pause of every runbook first (its
// key sorts first), including any past its Until the leader has not
// cleared yet (PauseState.Active tells).
func (s *Store) Pauses(ctx context.Context) ([]starbook.PauseState, error) {
	resp, err := s.cli.Get(ctx, s.k.Pauses(), clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("read pauses: %w", err)
	}
	return decodePauses(resp.Kvs)
}

func decodePauses(kvs []*mvccpb.KeyValue) ([]starbook.PauseState, error) {
	out := make([]starbook.PauseState, 0, len(kvs))
	for _, kv := range kvs {
		p, err := decodePause(kv)
		if err != nil {
			return nil, err
		}
		out = append(out, *p)
	}
	return out, nil
}

func decodePause(kv *mvccpb.KeyValue) (*starbook.PauseState, error) {
	var p starbook.PauseState
	if err := json.Unmarshal(kv.Value, &p); err != nil {
		return nil, fmt.Errorf("decode %s: %w", kv.Key, err)
	}
	return &p, nil
}

// EffectivePause is the pause of runbook among set (stored pauses) at now:
// its own if active, else the active pause of every runbook (All set), else
// a PauseState with Paused false.
func EffectivePause(runbook string, set []starbook.PauseState, now time.Time) *starbook.PauseState {
	var all *starbook.PauseState
	for i := range set {
		p := &set[i]
		if !p.Active(now) {
			continue
		}
		switch p.Runbook {
		case runbook:
			out := *p
			return &out
		case starbook.AllRunbooks:
			all = p
		}
	}
	if all == nil {
		return &starbook.PauseState{Runbook: runbook}
	}
	out := *all
	out.Runbook, out.All = runbook, runbook != starbook.AllRunbooks
	return &out
}

// ResumeDue deletes the pauses whose Until is not after now, each with its
// audit record (actor "starbook", action runbook.resume), fenced on the
// pause as read so that a pause set again meanwhile stays. It returns the
// runbooks resumed and the earliest Until still ahead (zero for none). The
// leader calls it (PauseExpiryTask).
func (s *Store) ResumeDue(ctx context.Context, now time.Time) ([]string, time.Time, error) {
	resp, err := s.cli.Get(ctx, s.k.Pauses(), clientv3.WithPrefix())
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("read pauses: %w", err)
	}
	var resumed []string
	var next time.Time
	for _, kv := range resp.Kvs {
		p, err := decodePause(kv)
		if err != nil {
			return resumed, next, err
		}
		if p.Until.IsZero() {
			continue
		}
		if p.Until.After(now) {
			if next.IsZero() || p.Until.Before(next) {
				next = p.Until
			}
			continue
		}
		op, err := s.auditOp(&starbook.AuditRecord{Time: now.UTC(), Actor: "starbook", Action: "runbook.resume",
			Runbook: p.Runbook, Detail: "until " + p.Until.UTC().Format(time.RFC3339) + " passed (paused by " + p.By + ")",
			Outcome: starbook.AuditOK})
		if err != nil {
			return resumed, next, err
		}
		tx, err := s.cli.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(string(kv.Key)), "=", kv.ModRevision)).
			Then(clientv3.OpDelete(string(kv.Key)), op).Commit()
		if err != nil {
			return resumed, next, fmt.Errorf("resume %s: %w", p.Runbook, err)
		}
		if tx.Succeeded {
			resumed = append(resumed, p.Runbook)
		}
	}
	return resumed, next, nil
}

// ReplayDedupTTL is how long a replayed dead letter's runs are remembered
// (dedup/replay/): the dead letter itself is deleted by the replay.
const ReplayDedupTTL = 7 * 24 * time.Hour

// EventDeadLetter returns trigger event dead letter id. One that is gone
// wraps ErrConflict when a replay took it (naming the runs it started), else
// ErrNotFound; an execution's dead letter is returned as it is.
func (s *Store) EventDeadLetter(ctx context.Context, id string) (*starbook.DeadLetter, error) {
	resp, err := s.cli.Txn(ctx).Then(clientv3.OpGet(s.k.deadEvent(id)), clientv3.OpGet(s.k.deadExecution(id)),
		clientv3.OpGet(s.k.replays(id), clientv3.WithPrefix())).Commit()
	if err != nil {
		return nil, fmt.Errorf("read dead letter %s: %w", id, err)
	}
	kvs := append(resp.Responses[0].GetResponseRange().Kvs, resp.Responses[1].GetResponseRange().Kvs...)
	if len(kvs) > 0 {
		var dl starbook.DeadLetter
		if err := json.Unmarshal(kvs[0].Value, &dl); err != nil {
			return nil, fmt.Errorf("decode %s: %w", kvs[0].Key, err)
		}
		return &dl, nil
	}
	if runs := resp.Responses[2].GetResponseRange().Kvs; len(runs) > 0 {
		started := make([]string, len(runs))
		for i, kv := range runs {
			started[i] = string(kv.Value)
		}
		return nil, sbruntime.Conflictf("dead letter %s was replayed already: it started %s", id, strings.Join(started, ", "))
	}
	return nil, fmt.Errorf("dead letter %q: %w (unknown, or acknowledged already)", id, sbruntime.ErrNotFound)
}

// Replay starts starts (triggers.ReplayStarts of dead letter dl) and deletes
// dl, once: each start's dedup key is dedup/replay/<dl>/<runbook>, and the
// first start's txn deletes the dead letter and its index keys. A second
// replay, even a concurrent one, starts nothing (its starts come back
// triggers.StatusDuplicate, naming the first one's runs).
func (t *Triggers) Replay(ctx context.Context, dl *starbook.DeadLetter, starts []triggers.Start) ([]triggers.Started, error) {
	k := t.s.k
	items := make([]*item, len(starts))
	for i := range starts {
		items[i] = &item{i: i, s: &starts[i], dedupKey: k.replayed(dl.ID, starts[i].Runbook), dedupTTL: ReplayDedupTTL}
	}
	if len(items) > 0 {
		items[0].extra = append([]clientv3.Op{clientv3.OpDelete(k.deadEvent(dl.ID))}, k.deadIndexDeletes(dl)...)
	}
	if err := t.start(ctx, items); err != nil {
		return nil, err
	}
	out := make([]triggers.Started, len(items))
	for i, it := range items {
		out[i] = it.out
	}
	return out, nil
}
