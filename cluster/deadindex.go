package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/starbook/starbook"
)

// The dead-letter index: a listing of dead letters newest first costs what
// it returns, as the execution index does for executions (index.go). Each
// dead letter, of an execution or of an event, has two index keys whose
// last segment is its cursor (starbook.DeadLetter.Cursor: its time in
// milliseconds and its id) inverted with newestFirst:
//
//	ix/d/<reason>/<inverted cursor>             by reason
//	ix/dr/<runbook>/<reason>/<inverted cursor>  by runbook ("" for an event
//	                                            no runbook matched) and reason
//
// Values are empty: the page reads both kinds' keys of an id. One cursor
// in sampleEvery also has sample keys (ixs/d/..., ixs/dr/...) that bound
// the windows a stream reads, as the execution index's do. The keys are
// written and deleted in the txns that write and delete the dead letter's
// record: an execution's end (deadLetterOps), an event's (Triggers.DeadLetter),
// ack, redrive, retention and PruneDeadEvents. An execution's dead letter is
// computed from its ended record (deadLetterOf), so whoever deletes the
// record knows its index keys without reading the dead letter.

// deadIndexKeys are dl's index keys: two, and their two sample keys when
// its cursor is sampled (see indexStream).
func (k Keys) deadIndexKeys(dl *starbook.DeadLetter) []string {
	c := dl.Cursor()
	inv := newestFirst(c)
	d, r := k.deadIndex(dl.Reason), k.deadRunbookIndex(dl.Runbook, dl.Reason)
	if !sampled(c) {
		return []string{d + inv, r + inv}
	}
	return []string{d + inv, r + inv, k.sampleOf(d) + inv, k.sampleOf(r) + inv}
}

func (k Keys) deadIndexPuts(dl *starbook.DeadLetter) []clientv3.Op {
	var ops []clientv3.Op
	for _, key := range k.deadIndexKeys(dl) {
		ops = append(ops, clientv3.OpPut(key, ""))
	}
	return ops
}

func (k Keys) deadIndexDeletes(dl *starbook.DeadLetter) []clientv3.Op {
	var ops []clientv3.Op
	for _, key := range k.deadIndexKeys(dl) {
		ops = append(ops, clientv3.OpDelete(key))
	}
	return ops
}

// deadLetterStreams are the index prefixes a listing of f merges: one per
// reason (every reason of starbook.DeadLetterReasons when f names none),
// under f's runbook when it names one.
func (k Keys) deadLetterStreams(f starbook.DeadLetterFilter) []*indexStream {
	reasons := starbook.DeadLetterReasons
	if f.Reason != "" {
		reasons = []string{f.Reason}
	}
	streams := make([]*indexStream, len(reasons))
	for i, r := range reasons {
		p := k.deadIndex(r)
		if f.Runbook != "" {
			p = k.deadRunbookIndex(f.Runbook, r)
		}
		streams[i] = &indexStream{prefix: p, sample: k.sampleOf(p)}
	}
	return streams
}

// splitDeadRunbookKey splits what follows ix/dr/ in an index key into its
// runbook and reason. An inverted cursor holds no '/' (inverted, ASCII
// bytes are 0x80 and over), so the last two slashes end runbook and reason.
func splitDeadRunbookKey(rest string) (runbook, reason string, ok bool) {
	i := strings.LastIndexByte(rest, '/')
	if i < 0 {
		return "", "", false
	}
	j := strings.LastIndexByte(rest[:i], '/')
	if j < 0 {
		return "", "", false
	}
	return rest[:j], rest[j+1 : i], true
}

// deadIndexChunk is how many dead letters one txn of the migration indexes:
// a compare and two puts each (four for one in sampleEvery).
const deadIndexChunk = 40

// buildDeadLetterIndex writes the index keys of every stored dead letter
// (part of the migration to format 4), deadIndexChunk a txn in key order.
// Like buildIndex, each txn is fenced on the migration lock and on the
// records it indexes, and records the last key it did (after deadletters/)
// in migrating/4/deadletters, so a migrator killed half way resumes after
// it; index puts are idempotent.
func (s *Store) buildDeadLetterIndex(ctx context.Context, fence []clientv3.Cmp) error {
	progress := s.k.migratingDeadLetters(4)
	resp, err := s.cli.Get(ctx, progress)
	if err != nil {
		return fmt.Errorf("read dead-letter index progress: %w", err)
	}
	root := s.k.deadLetters()
	from := root
	if len(resp.Kvs) > 0 {
		from = root + string(resp.Kvs[0].Value) + "\x00"
	}
	end := clientv3.GetPrefixRangeEnd(root)
	for {
		resp, err := s.cli.Get(ctx, from, clientv3.WithRange(end), clientv3.WithLimit(deadIndexChunk))
		if err != nil {
			return fmt.Errorf("read dead letters: %w", err)
		}
		if len(resp.Kvs) == 0 {
			break
		}
		cmps := append([]clientv3.Cmp(nil), fence...)
		var ops []clientv3.Op
		for _, kv := range resp.Kvs {
			var dl starbook.DeadLetter
			if json.Unmarshal(kv.Value, &dl) != nil {
				continue // a listing skips it too
			}
			cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(string(kv.Key)), "=", kv.ModRevision))
			ops = append(ops, s.k.deadIndexPuts(&dl)...)
		}
		last := strings.TrimPrefix(string(resp.Kvs[len(resp.Kvs)-1].Key), root)
		ops = append(ops, clientv3.OpPut(progress, last))
		tx, err := s.cli.Txn(ctx).If(cmps...).Then(ops...).Commit()
		if err != nil {
			return fmt.Errorf("index dead letters: %w", err)
		}
		if !tx.Succeeded {
			held, err := s.cli.Txn(ctx).If(fence...).Commit()
			if err != nil {
				return fmt.Errorf("index dead letters: %w", err)
			}
			if !held.Succeeded {
				return errDeadLockLost
			}
			continue // one was acked meanwhile: read this chunk again
		}
		if !resp.More {
			break
		}
		from = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
	tx, err := s.cli.Txn(ctx).If(fence...).Then(clientv3.OpDelete(progress)).Commit()
	if err != nil {
		return fmt.Errorf("index dead letters: %w", err)
	}
	if !tx.Succeeded {
		return errDeadLockLost
	}
	return nil
}

// errDeadLockLost is errLockLost of the dead-letter step.
var errDeadLockLost = errors.New("index dead letters: the migration lock was lost")
