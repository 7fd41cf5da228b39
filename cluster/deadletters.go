package cluster

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/starbook/starbook"
	sbruntime "github.com/starbook/starbook/runtime"
	"github.com/starbook/starbook/triggers"
)

// Dead letters. An execution's is written in the txn that ends it, and
// only when it ends without completing: a completed run pays nothing, not
// even a read. A trigger event's is written by the node that received it,
// bounded three ways: one per alert (fingerprint and startsAt, a dedup key
// with a lease of EventDeadLetterDedupTTL, across nodes), at most
// EventDeadLettersPerMinute per node (a token bucket), and none while
// MaxEventDeadLetters are stored. Retention deletes events' dead letters
// older than --retention, and an execution's with it.

// Bounds of the dead letters of trigger events.
const (
	EventDeadLettersPerMinute = 60
	MaxEventDeadLetters       = 10_000
	EventDeadLetterDedupTTL   = 24 * time.Hour
)

// maxDeadLetterError bounds the error an execution's dead letter copies.
const maxDeadLetterError = 1024

// deadLetterOps are the writes that make ended execution e a dead letter:
// none unless starbook.DeadLetterReason names why.
func (k Keys) deadLetterOps(e *sbruntime.Execution) []clientv3.Op {
	reason := starbook.DeadLetterReason(e)
	if reason == "" {
		return nil
	}
	at := e.UpdatedAt
	if e.EndedAt != nil {
		at = *e.EndedAt
	}
	errMsg := e.Error
	if len(errMsg) > maxDeadLetterError {
		errMsg = errMsg[:maxDeadLetterError] + "..."
	}
	dl := starbook.DeadLetter{ID: e.ID, Kind: starbook.DeadExecution, Reason: reason, Runbook: e.Runbook,
		Status: e.Status, Error: errMsg, Trigger: e.Trigger.Type, At: at}
	if n := e.Attempt(); n > 1 {
		dl.Attempt = n
	}
	data, err := json.Marshal(&dl)
	if err != nil {
		return nil
	}
	return []clientv3.Op{clientv3.OpPut(k.deadExecution(e.ID), string(data))}
}

// DeadLetters lists the dead letters matching f, newest first.
func (s *Store) DeadLetters(ctx context.Context, f starbook.DeadLetterFilter) ([]*starbook.DeadLetter, error) {
	resp, err := s.cli.Get(ctx, s.k.deadLetters(), clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("list dead letters: %w", err)
	}
	out := make([]*starbook.DeadLetter, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		var dl starbook.DeadLetter
		if err := json.Unmarshal(kv.Value, &dl); err != nil {
			return nil, fmt.Errorf("decode %s: %w", kv.Key, err)
		}
		if (f.Runbook == "" || dl.Runbook == f.Runbook) && (f.Reason == "" || dl.Reason == f.Reason) {
			out = append(out, &dl)
		}
	}
	slices.SortFunc(out, func(a, b *starbook.DeadLetter) int {
		if c := b.At.Compare(a.At); c != 0 {
			return c
		}
		return cmp.Compare(b.ID, a.ID)
	})
	return out, nil
}

// DeadLetterCounts counts the dead letters by runbook and reason (the gauge
// starbook_dead_letters).
func (s *Store) DeadLetterCounts(ctx context.Context) (map[[2]string]int, error) {
	all, err := s.DeadLetters(ctx, starbook.DeadLetterFilter{})
	if err != nil {
		return nil, err
	}
	out := map[[2]string]int{}
	for _, dl := range all {
		out[[2]string{dl.Runbook, dl.Reason}]++
	}
	return out, nil
}

// AckDeadLetter removes dead letter id and returns it; an id that is not a
// dead letter (unknown, or acknowledged already) wraps ErrNotFound.
func (s *Store) AckDeadLetter(ctx context.Context, id string) (*starbook.DeadLetter, error) {
	for {
		resp, err := s.cli.Txn(ctx).Then(clientv3.OpGet(s.k.deadExecution(id)), clientv3.OpGet(s.k.deadEvent(id))).Commit()
		if err != nil {
			return nil, fmt.Errorf("read dead letter %s: %w", id, err)
		}
		kvs := append(resp.Responses[0].GetResponseRange().Kvs, resp.Responses[1].GetResponseRange().Kvs...)
		if len(kvs) == 0 {
			return nil, fmt.Errorf("dead letter %q: %w (unknown, or acknowledged already)", id, sbruntime.ErrNotFound)
		}
		var dl starbook.DeadLetter
		if err := json.Unmarshal(kvs[0].Value, &dl); err != nil {
			return nil, fmt.Errorf("decode %s: %w", kvs[0].Key, err)
		}
		key := string(kvs[0].Key)
		tx, err := s.cli.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(key), "=", kvs[0].ModRevision)).
			Then(clientv3.OpDelete(key)).Commit()
		if err != nil {
			return nil, fmt.Errorf("ack dead letter %s: %w", id, err)
		}
		if tx.Succeeded {
			return &dl, nil
		}
	}
}

// PruneDeadEvents deletes the trigger events' dead letters older than
// cutoff (their ids sort by time) and returns how many it deleted.
func (s *Store) PruneDeadEvents(ctx context.Context, cutoff time.Time) (int64, error) {
	var zero [10]byte
	bound := ulid.MustNew(ulid.Timestamp(cutoff), bytesReader(zero[:])).String()
	resp, err := s.cli.Delete(ctx, s.k.deadEvents(), clientv3.WithRange(s.k.deadEvent(bound)))
	if err != nil {
		return 0, fmt.Errorf("prune dead letters: %w", err)
	}
	return resp.Deleted, nil
}

// eventBucket is a token bucket of EventDeadLettersPerMinute.
type eventBucket struct {
	mu     sync.Mutex
	tokens float64
	last   time.Time
}

// take takes one token at now, if there is one.
func (b *eventBucket) take(now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.last.IsZero() {
		b.tokens = EventDeadLettersPerMinute
	} else {
		b.tokens = min(EventDeadLettersPerMinute, b.tokens+now.Sub(b.last).Minutes()*EventDeadLettersPerMinute)
	}
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

var _ triggers.DeadLetterer = (*Triggers)(nil)

// DeadLetter keeps events as dead letters, bounded (see the top of this
// file): a duplicate, or an event over the per-node rate or the stored cap,
// is left out and logged.
func (t *Triggers) DeadLetter(ctx context.Context, events []triggers.Unstarted) error {
	if len(events) == 0 {
		return nil
	}
	count, err := t.s.cli.Get(ctx, t.s.k.deadEvents(), clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return fmt.Errorf("count dead letters: %w", err)
	}
	stored, skipped := count.Count, 0
	for _, ev := range events {
		now := t.now().UTC()
		if stored >= MaxEventDeadLetters || !t.deadBucket.take(now) {
			skipped++
			continue
		}
		dl := starbook.DeadLetter{ID: t.newID(), Kind: starbook.DeadEvent, Reason: ev.Reason, Runbook: ev.Runbook,
			Source: ev.Source, Fingerprint: ev.Fingerprint, Detail: ev.Detail, Payload: ev.Payload, At: now}
		if len(dl.Payload) > starbook.MaxDeadLetterPayload {
			cut, _ := json.Marshal(string(dl.Payload[:starbook.MaxDeadLetterPayload]))
			dl.Payload, dl.PayloadTruncated = cut, true
		}
		data, err := json.Marshal(&dl)
		if err != nil {
			return err
		}
		put := clientv3.OpPut(t.s.k.deadEvent(dl.ID), string(data))
		if ev.DedupKey == "" {
			if _, err := t.s.cli.Put(ctx, t.s.k.deadEvent(dl.ID), string(data)); err != nil {
				return fmt.Errorf("store dead letter: %w", err)
			}
			stored++
			continue
		}
		lease, err := t.lease(ctx, EventDeadLetterDedupTTL)
		if err != nil {
			return err
		}
		dk := t.s.k.deadEventDedup(ev.DedupKey)
		tx, err := t.s.cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(dk), "=", 0)).
			Then(put, clientv3.OpPut(dk, dl.ID, clientv3.WithLease(lease))).Commit()
		if err != nil {
			t.forgetLeases()
			return fmt.Errorf("store dead letter: %w", err)
		}
		if tx.Succeeded {
			stored++
		}
	}
	if skipped > 0 {
		t.log.Warn("trigger events not kept as dead letters: over the cap", "skipped", skipped,
			"per_minute", EventDeadLettersPerMinute, "max_stored", MaxEventDeadLetters, "stored", stored)
	}
	return nil
}
