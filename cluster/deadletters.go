package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strings"
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

// deadLetterOf is the dead letter of ended execution e, nil unless
// starbook.DeadLetterReason names why it is one. Everything in it comes
// from e's record, so the record alone says which index keys its dead
// letter has (deadLetterDeleteOps).
func deadLetterOf(e *sbruntime.Execution) *starbook.DeadLetter {
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
	dl := &starbook.DeadLetter{ID: e.ID, Kind: starbook.DeadExecution, Reason: reason, Runbook: e.Runbook,
		Status: e.Status, Error: errMsg, Trigger: e.Trigger.Type, At: at}
	if n := e.Attempt(); n > 1 {
		dl.Attempt = n
	}
	return dl
}

// deadLetterOps are the writes that make ended execution e a dead letter,
// record and index keys: none unless starbook.DeadLetterReason names why.
func (k Keys) deadLetterOps(e *sbruntime.Execution) []clientv3.Op {
	dl := deadLetterOf(e)
	if dl == nil {
		return nil
	}
	data, err := json.Marshal(dl)
	if err != nil {
		return nil
	}
	return append([]clientv3.Op{clientv3.OpPut(k.deadExecution(e.ID), string(data))}, k.deadIndexPuts(dl)...)
}

// deadLetterDeleteOps delete the dead letter of ended execution e, if it
// has one (unacknowledged), with its index keys, as its record says.
func (k Keys) deadLetterDeleteOps(e *sbruntime.Execution) []clientv3.Op {
	ops := []clientv3.Op{clientv3.OpDelete(k.deadExecution(e.ID))}
	if dl := deadLetterOf(e); dl != nil {
		ops = append(ops, k.deadIndexDeletes(dl)...)
	}
	return ops
}

// DeadLetters lists the dead letters matching f, newest first (by At to
// the millisecond, then id: the order of their cursors), at most f.Limit
// (0: all) after f.After. A page reads O(page) keys whatever is stored: it
// merges the dead-letter index streams (see deadIndex) the filter names,
// each read ascending with a limit, then reads the page's records by key.
func (s *Store) DeadLetters(ctx context.Context, f starbook.DeadLetterFilter) ([]*starbook.DeadLetter, error) {
	n := f.Limit
	if n <= 0 {
		n = math.MaxInt32
	}
	streams := s.k.deadLetterStreams(f)
	seen := map[string]bool{}
	var out []*starbook.DeadLetter
	// A dead letter acknowledged between the index read and the record
	// read is left out: the page reads on to fill itself.
	for len(out) < n {
		cursors, err := s.newestIDs(ctx, streams, f.After, n-len(out), seen)
		if err != nil {
			return nil, fmt.Errorf("list dead letters: %w", err)
		}
		if len(cursors) == 0 {
			return out, nil
		}
		dls, err := s.deadLetterRecords(ctx, cursors)
		if err != nil {
			return nil, fmt.Errorf("list dead letters: %w", err)
		}
		for _, dl := range dls {
			if (f.Runbook == "" || dl.Runbook == f.Runbook) && (f.Reason == "" || dl.Reason == f.Reason) {
				out = append(out, dl)
			}
		}
	}
	return out, nil
}

// deadLetterRecords reads the dead letters of cursors, in that order: both
// kinds' keys of each id (the index does not say which), one txn per
// defaultMaxTxnOps/2. A cursor whose id has no dead letter, or one at
// another time (its index key outlived it), is left out.
func (s *Store) deadLetterRecords(ctx context.Context, cursors []string) ([]*starbook.DeadLetter, error) {
	out := make([]*starbook.DeadLetter, 0, len(cursors))
	for len(cursors) > 0 {
		part := cursors[:min(len(cursors), defaultMaxTxnOps/2)]
		cursors = cursors[len(part):]
		ops := make([]clientv3.Op, 0, 2*len(part))
		for _, c := range part {
			_, id, _ := starbook.ParseDeadLetterCursor(c)
			ops = append(ops, clientv3.OpGet(s.k.deadExecution(id)), clientv3.OpGet(s.k.deadEvent(id)))
		}
		resp, err := s.cli.Txn(ctx).Then(ops...).Commit()
		if err != nil {
			return nil, fmt.Errorf("read dead letters: %w", err)
		}
		for i, c := range part {
			kvs := append(resp.Responses[2*i].GetResponseRange().Kvs, resp.Responses[2*i+1].GetResponseRange().Kvs...)
			if len(kvs) == 0 {
				continue
			}
			var dl starbook.DeadLetter
			if err := json.Unmarshal(kvs[0].Value, &dl); err != nil {
				return nil, fmt.Errorf("decode %s: %w", kvs[0].Key, err)
			}
			if dl.Cursor() == c {
				out = append(out, &dl)
			}
		}
	}
	return out, nil
}

// DeadLetterCounts counts the dead letters by runbook and reason (the gauge
// starbook_dead_letters). It decodes none: it walks the runbook index
// (ix/dr/<runbook>/<reason>/), and for each (runbook, reason) there, one
// txn counts its keys (count only: etcd reads no value) and reads the first
// key of the next one. Its cost grows with the pairs, not the dead letters.
func (s *Store) DeadLetterCounts(ctx context.Context) (map[[2]string]int, error) {
	root := s.k.deadRunbookIndexes()
	end := clientv3.GetPrefixRangeEnd(root)
	first, err := s.cli.Get(ctx, root, clientv3.WithRange(end), clientv3.WithKeysOnly(), clientv3.WithLimit(1))
	if err != nil {
		return nil, fmt.Errorf("count dead letters: %w", err)
	}
	out := map[[2]string]int{}
	kvs := first.Kvs
	for len(kvs) > 0 {
		runbook, reason, ok := splitDeadRunbookKey(strings.TrimPrefix(string(kvs[0].Key), root))
		if !ok {
			return nil, fmt.Errorf("count dead letters: %q is not a dead-letter index key", kvs[0].Key)
		}
		p := s.k.deadRunbookIndex(runbook, reason)
		resp, err := s.cli.Txn(ctx).Then(
			clientv3.OpGet(p, clientv3.WithPrefix(), clientv3.WithCountOnly()),
			clientv3.OpGet(clientv3.GetPrefixRangeEnd(p), clientv3.WithRange(end), clientv3.WithKeysOnly(), clientv3.WithLimit(1)),
		).Commit()
		if err != nil {
			return nil, fmt.Errorf("count dead letters: %w", err)
		}
		if c := resp.Responses[0].GetResponseRange().Count; c > 0 {
			out[[2]string{runbook, reason}] = int(c)
		}
		kvs = resp.Responses[1].GetResponseRange().Kvs
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
			Then(append([]clientv3.Op{clientv3.OpDelete(key)}, s.k.deadIndexDeletes(&dl)...)...).Commit()
		if err != nil {
			return nil, fmt.Errorf("ack dead letter %s: %w", id, err)
		}
		if tx.Succeeded {
			return &dl, nil
		}
	}
}

// pruneChunk is how many events' dead letters one txn of PruneDeadEvents
// deletes: three keys each (record and two index keys), five when sampled.
const pruneChunk = defaultMaxTxnOps / 5

// PruneDeadEvents deletes the trigger events' dead letters older than
// cutoff (their ids sort by time) with their index keys, pruneChunk a txn,
// and returns how many it deleted. An event's dead letter never changes
// once written, so its record says which index keys to delete.
func (s *Store) PruneDeadEvents(ctx context.Context, cutoff time.Time) (int64, error) {
	var zero [10]byte
	bound := ulid.MustNew(ulid.Timestamp(cutoff), bytesReader(zero[:])).String()
	from, end := s.k.deadEvents(), s.k.deadEvent(bound)
	var deleted int64
	for {
		resp, err := s.cli.Get(ctx, from, clientv3.WithRange(end), clientv3.WithLimit(pruneChunk))
		if err != nil {
			return deleted, fmt.Errorf("prune dead letters: %w", err)
		}
		if len(resp.Kvs) == 0 {
			return deleted, nil
		}
		ops := make([]clientv3.Op, 0, 3*len(resp.Kvs))
		for _, kv := range resp.Kvs {
			ops = append(ops, clientv3.OpDelete(string(kv.Key)))
			var dl starbook.DeadLetter
			if json.Unmarshal(kv.Value, &dl) == nil {
				ops = append(ops, s.k.deadIndexDeletes(&dl)...)
			}
		}
		tx, err := s.cli.Txn(ctx).Then(ops...).Commit()
		if err != nil {
			return deleted, fmt.Errorf("prune dead letters: %w", err)
		}
		for i, op := range ops {
			if op.IsDelete() && strings.HasPrefix(string(op.KeyBytes()), s.k.deadEvents()) {
				deleted += tx.Responses[i].GetResponseDeleteRange().Deleted
			}
		}
		if !resp.More {
			return deleted, nil
		}
		from = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
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
		puts := append([]clientv3.Op{clientv3.OpPut(t.s.k.deadEvent(dl.ID), string(data))}, t.s.k.deadIndexPuts(&dl)...)
		if ev.DedupKey == "" {
			if _, err := t.s.cli.Txn(ctx).Then(puts...).Commit(); err != nil {
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
			Then(append(puts, clientv3.OpPut(dk, dl.ID, clientv3.WithLease(lease)))...).Commit()
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
