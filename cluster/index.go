package cluster

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"strings"

	"go.etcd.io/etcd/api/v3/etcdserverpb"

	clientv3 "go.etcd.io/etcd/client/v3"

	sbruntime "github.com/starbook/starbook/runtime"
)

// Listings newest first cost what they return. etcd drops the limit of any
// range read that is not in ascending key order (it reads, decodes and sorts
// the whole range, then truncates), so a page sorted descending would read
// every execution older than its cursor. Instead every execution has index
// keys whose last segment is its id inverted (newestFirst), so that an
// ascending read with a limit returns the newest first:
//
//	ix/s/<class>/<inverted id>            by status class
//	ix/r/<runbook>/<class>/<inverted id>  by runbook and status class, once ended
//
// The class is the status of an ended execution (completed, failed,
// cancelled, stuck) and "live" before it ends: a live execution's status
// changes with every claim and park, and is derived from its claim and
// runnable keys anyway (deriveStatus). A live execution has only its
// ix/s/live key, whose value is its runbook: a listing by runbook reads the
// live ones of every runbook and keeps its own, which costs the work in
// flight, not the history kept, and saves every run a put and a delete (5%
// of the steps a second with 50 runs in flight). The keys are written in
// the txns that create, end, redrive and delete an execution, so they never
// disagree with the records for longer than a txn. A page reads one range
// per class (five at most, with a limit each, merged), then the page's
// records by key.

// classLive is the index class of an execution that has not ended.
const classLive = "live"

// indexClasses are every index class, live first.
var indexClasses = []string{classLive, string(sbruntime.StatusCompleted), string(sbruntime.StatusFailed),
	string(sbruntime.StatusCancelled), string(sbruntime.StatusStuck)}

// indexClass is the class of an execution in status st.
func indexClass(st sbruntime.Status) string {
	if st.Terminal() {
		return string(st)
	}
	return classLive
}

// newestFirst inverts id so that ids sort in reverse: each byte b becomes
// 0xff-b, and a 0xff ends it (so that a longer id, which sorts after its
// prefix, now sorts before it). Any cursor a user gives inverts the same
// way, so paging from an id no execution has still works.
func newestFirst(id string) string {
	b := make([]byte, len(id)+1)
	for i := 0; i < len(id); i++ {
		b[i] = 0xff - id[i]
	}
	b[len(id)] = 0xff
	return string(b)
}

// idOfNewestFirst is the id newestFirst inverted into s.
func idOfNewestFirst(s string) (string, bool) {
	if s == "" || s[len(s)-1] != 0xff {
		return "", false
	}
	b := []byte(s[:len(s)-1])
	for i := range b {
		b[i] = 0xff - b[i]
	}
	return string(b), true
}

// indexKeys are the index keys of execution id of runbook in class: two (one
// when live), and their sample keys when id is sampled.
func (k Keys) indexKeys(id, runbook, class string) []string {
	inv := newestFirst(id)
	s := k.statusIndex(class)
	if class == classLive {
		if !sampled(id) {
			return []string{s + inv}
		}
		return []string{s + inv, k.sampleOf(s) + inv}
	}
	r := k.runbookIndex(runbook, class)
	if !sampled(id) {
		return []string{s + inv, r + inv}
	}
	return []string{s + inv, r + inv, k.sampleOf(s) + inv, k.sampleOf(r) + inv}
}

// indexValue is what e's index keys hold: its runbook while it is live
// (listings by runbook read the live ones of all), else nothing.
func indexValue(e *sbruntime.Execution) string {
	if indexClass(e.Status) == classLive {
		return e.Runbook
	}
	return ""
}

// indexOps are the puts of e's index keys in its current status's class.
func (k Keys) indexOps(e *sbruntime.Execution) []clientv3.Op {
	keys, v := k.indexKeys(e.ID, e.Runbook, indexClass(e.Status)), indexValue(e)
	ops := make([]clientv3.Op, len(keys))
	for i, key := range keys {
		ops[i] = clientv3.OpPut(key, v)
	}
	return ops
}

// indexPB is indexOps built as protobuf, for the hot path.
func (k Keys) indexPB(e *sbruntime.Execution) []*etcdserverpb.RequestOp {
	keys, v := k.indexKeys(e.ID, e.Runbook, indexClass(e.Status)), []byte(indexValue(e))
	ops := make([]*etcdserverpb.RequestOp, len(keys))
	for i, key := range keys {
		ops[i] = putOp([]byte(key), v)
	}
	return ops
}

// indexMovePB moves e's index keys from class from to its status's class:
// nothing when they are the same.
func (k Keys) indexMovePB(e *sbruntime.Execution, from string) []*etcdserverpb.RequestOp {
	if indexClass(e.Status) == from {
		return nil
	}
	var ops []*etcdserverpb.RequestOp
	for _, key := range k.indexKeys(e.ID, e.Runbook, from) {
		ops = append(ops, deleteOp([]byte(key)))
	}
	return append(ops, k.indexPB(e)...)
}

// indexMoveOps is indexMovePB as clientv3 ops.
func (k Keys) indexMoveOps(e *sbruntime.Execution, from string) []clientv3.Op {
	if indexClass(e.Status) == from {
		return nil
	}
	var ops []clientv3.Op
	for _, key := range k.indexKeys(e.ID, e.Runbook, from) {
		ops = append(ops, clientv3.OpDelete(key))
	}
	return append(ops, k.indexOps(e)...)
}

// indexDeleteOps delete e's index keys: those of its status's class, as
// every txn that changes the class writes the record too.
func (k Keys) indexDeleteOps(e *sbruntime.Execution) []clientv3.Op {
	var ops []clientv3.Op
	for _, key := range k.indexKeys(e.ID, e.Runbook, indexClass(e.Status)) {
		ops = append(ops, clientv3.OpDelete(key))
	}
	return ops
}

// indexStream is one index prefix read newest first, a window at a time.
//
// etcd counts every key from a range read's start to its end, whatever its
// limit (the response's Count; even RangeStream counts what it leaves), so
// an index read with a limit up to the end of its prefix would still cost
// O(keys older than the cursor) in etcd's key index: 26 ms at 100,000 keys
// against 0.2 ms for a bounded range, measured. A stream therefore reads
// windows whose end it takes from a sample of its keys: one id in
// sampleEvery also has its key under the sample prefix (ixs/, written and
// deleted with the index keys), so the m-th sample key after the cursor
// ends a window of about m*sampleEvery keys. Reading the sample counts
// O(stored/sampleEvery) keys (1,500 at 100,000 stored); reading a window
// counts O(page + sampleEvery).
type indexStream struct {
	prefix string
	sample string   // the prefix of its sample; "" for none
	only   string   // keep only the keys whose value is this runbook ("" keeps all): the live index of all runbooks read for one
	from   string   // the next read starts here (inclusive)
	end    string   // the current window's end (exclusive); "" for none yet
	buf    []string // inverted ids read and not yet merged
	done   bool     // nothing left after buf
}

// sampleEvery is one in how many index keys is sampled.
const sampleEvery = 64

// sampled reports whether id's index keys have sample keys.
func sampled(id string) bool {
	h := fnv.New32a()
	h.Write([]byte(id))
	return h.Sum32()%sampleEvery == 0
}

// fill reads, in rounds of one or two txns, until every stream that is not
// done has a key buffered; each read asks for up to chunk keys. It reports
// whether it read anything: the chunk grows with the reads, not with the
// ids merged (doubled for each, it reached listChunk within seven ids, and
// any stream that ran dry read up to a window of listChunk keys).
func (s *Store) fill(ctx context.Context, streams []*indexStream, chunk int) (read bool, err error) {
	for {
		var reads []*indexStream
		for _, st := range streams {
			if len(st.buf) == 0 && !st.done {
				reads = append(reads, st)
			}
		}
		if len(reads) == 0 {
			return read, nil
		}
		read = true
		if err := s.windows(ctx, reads, chunk); err != nil {
			return read, err
		}
		ops := make([]clientv3.Op, len(reads))
		for i, st := range reads {
			opts := []clientv3.OpOption{clientv3.WithRange(st.end), clientv3.WithLimit(int64(chunk))}
			if st.only == "" {
				opts = append(opts, clientv3.WithKeysOnly())
			}
			ops[i] = clientv3.OpGet(st.from, opts...)
		}
		resp, err := s.cli.Txn(ctx).Then(ops...).Commit()
		if err != nil {
			return read, fmt.Errorf("read execution index: %w", err)
		}
		for i, st := range reads {
			r := resp.Responses[i].GetResponseRange()
			for _, kv := range r.Kvs {
				if st.only == "" || string(kv.Value) == st.only {
					st.buf = append(st.buf, strings.TrimPrefix(string(kv.Key), st.prefix))
				}
			}
			switch {
			case r.More:
				st.from = string(r.Kvs[len(r.Kvs)-1].Key) + "\x00" // more in this window
			case st.end == clientv3.GetPrefixRangeEnd(st.prefix):
				st.done = true
			default:
				st.from, st.end = st.end, "" // the next window starts where this one ends
			}
		}
	}
}

// windows sets the end of each stream's window that has none: the key of
// the id of the chunk/sampleEvery+2-th sample key after its start, or the
// prefix's end when the sample has no more.
func (s *Store) windows(ctx context.Context, streams []*indexStream, chunk int) error {
	var open []*indexStream
	for _, st := range streams {
		switch {
		case st.end != "":
		case st.sample == "":
			st.end = clientv3.GetPrefixRangeEnd(st.prefix)
		default:
			open = append(open, st)
		}
	}
	if len(open) == 0 {
		return nil
	}
	m := int64(chunk/sampleEvery + 2)
	ops := make([]clientv3.Op, len(open))
	for i, st := range open {
		from := st.sample + strings.TrimPrefix(st.from, st.prefix)
		ops[i] = clientv3.OpGet(from, clientv3.WithRange(clientv3.GetPrefixRangeEnd(st.sample)), clientv3.WithKeysOnly(), clientv3.WithLimit(m))
	}
	resp, err := s.cli.Txn(ctx).Then(ops...).Commit()
	if err != nil {
		return fmt.Errorf("read execution index sample: %w", err)
	}
	for i, st := range open {
		kvs := resp.Responses[i].GetResponseRange().Kvs
		if int64(len(kvs)) < m {
			st.end = clientv3.GetPrefixRangeEnd(st.prefix)
			continue
		}
		st.end = st.prefix + strings.TrimPrefix(string(kvs[len(kvs)-1].Key), st.sample)
	}
	return nil
}

// newestIDs merges the streams newest first, returning up to n ids older
// than after ("" for none) and not in seen: the streams whose buffer ran
// out read on (fill), then the newest buffered key goes out. A page of n
// reads O(n + streams) keys, whatever is stored.
func (s *Store) newestIDs(ctx context.Context, streams []*indexStream, after string, n int, seen map[string]bool) ([]string, error) {
	for _, st := range streams {
		if st.from != "" {
			continue
		}
		st.from = st.prefix
		if after != "" {
			st.from = st.prefix + newestFirst(after) + "\x00"
		}
	}
	var out []string
	chunk := max(n/len(streams)+1, 8)
	for len(out) < n {
		read, err := s.fill(ctx, streams, chunk)
		if err != nil {
			return nil, err
		}
		if read {
			chunk = min(2*chunk, listChunk)
		}
		// Every stream that is not done has its next key buffered: the
		// least of those is the newest id left.
		var best *indexStream
		for _, st := range streams {
			if len(st.buf) > 0 && (best == nil || st.buf[0] < best.buf[0]) {
				best = st
			}
		}
		if best == nil {
			return out, nil
		}
		inv := best.buf[0]
		best.buf = best.buf[1:]
		id, ok := idOfNewestFirst(inv)
		if !ok || seen[id] {
			continue
		}
		seen[id] = true
		out = append(out, id)
	}
	return out, nil
}

// records reads the execution records of ids, in that order, with their
// live status (deriveStatus): one txn per defaultMaxTxnOps records, and the
// claim and runnable keys of those that have not ended. An id without a
// record (deleted meanwhile) is left out.
func (s *Store) records(ctx context.Context, ids []string) ([]*sbruntime.Execution, error) {
	out := make([]*sbruntime.Execution, 0, len(ids))
	var live []*sbruntime.Execution
	for len(ids) > 0 {
		part := ids[:min(len(ids), defaultMaxTxnOps)]
		ids = ids[len(part):]
		ops := make([]clientv3.Op, len(part))
		for i, id := range part {
			ops[i] = clientv3.OpGet(s.k.execution(id))
		}
		resp, err := s.cli.Txn(ctx).Then(ops...).Commit()
		if err != nil {
			return nil, fmt.Errorf("read executions: %w", err)
		}
		for i := range part {
			kvs := resp.Responses[i].GetResponseRange().Kvs
			if len(kvs) == 0 {
				continue
			}
			e, err := s.k.decodeExecution(kvs[0])
			if err != nil {
				return nil, err
			}
			out = append(out, e)
			if !e.Status.Terminal() {
				live = append(live, e)
			}
		}
	}
	for len(live) > 0 {
		part := live[:min(len(live), defaultMaxTxnOps/2)]
		live = live[len(part):]
		ops := make([]clientv3.Op, 0, 2*len(part))
		for _, e := range part {
			ops = append(ops, clientv3.OpGet(s.k.owner(e.ID)), clientv3.OpGet(s.k.runnable(e.ID), clientv3.WithKeysOnly()))
		}
		resp, err := s.cli.Txn(ctx).Then(ops...).Commit()
		if err != nil {
			return nil, fmt.Errorf("read executions' claims: %w", err)
		}
		for i, e := range part {
			owner := ""
			if kvs := resp.Responses[2*i].GetResponseRange().Kvs; len(kvs) > 0 {
				owner = string(kvs[0].Value)
			}
			deriveStatus(e, owner, len(resp.Responses[2*i+1].GetResponseRange().Kvs) > 0)
		}
	}
	return out, nil
}

// classStream is the index stream of class, of runbook's executions only
// unless runbook is "".
func (k Keys) classStream(class, runbook string) *indexStream {
	switch {
	case runbook == "":
		p := k.statusIndex(class)
		return &indexStream{prefix: p, sample: k.sampleOf(p)}
	case class == classLive:
		p := k.statusIndex(class)
		return &indexStream{prefix: p, sample: k.sampleOf(p), only: runbook}
	default:
		p := k.runbookIndex(runbook, class)
		return &indexStream{prefix: p, sample: k.sampleOf(p)}
	}
}

// listStreams are the index prefixes a listing of f reads.
func (k Keys) listStreams(f ListFilter) []*indexStream {
	classes := indexClasses
	if f.Status != "" {
		classes = []string{indexClass(f.Status)}
	}
	streams := make([]*indexStream, len(classes))
	for i, c := range classes {
		streams[i] = k.classStream(c, f.Runbook)
	}
	return streams
}

// indexChunk is how many executions one txn of the index migration indexes.
const indexChunk = 40

// buildIndex writes the index keys of every stored execution (the
// migration to format 4), indexChunk executions a txn, oldest first, then
// those of every dead letter (buildDeadLetterIndex). Each
// txn is fenced on the migration lock and on the records it indexes, and
// records its last id in migrating/4: a migrator killed half way resumes
// after what it did. Puts of index keys are idempotent, so one that died
// between a txn and its progress loses nothing either.
func (s *Store) buildIndex(ctx context.Context, fence []clientv3.Cmp) error {
	progress := s.k.migrating(4)
	resp, err := s.cli.Get(ctx, progress)
	if err != nil {
		return fmt.Errorf("read index progress: %w", err)
	}
	from := s.k.executions()
	if len(resp.Kvs) > 0 {
		from = s.k.execution(string(resp.Kvs[0].Value)) + "\x00"
	}
	end := clientv3.GetPrefixRangeEnd(s.k.executions())
	for {
		resp, err := s.cli.Get(ctx, from, clientv3.WithRange(end), clientv3.WithLimit(indexChunk))
		if err != nil {
			return fmt.Errorf("read executions: %w", err)
		}
		if len(resp.Kvs) == 0 {
			break
		}
		cmps := append([]clientv3.Cmp(nil), fence...)
		var ops []clientv3.Op
		last := ""
		for _, kv := range resp.Kvs {
			e, err := s.k.decodeExecution(kv)
			if err != nil {
				continue // not ours to judge: a listing skips what it cannot read
			}
			cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(string(kv.Key)), "=", kv.ModRevision))
			ops = append(ops, s.k.indexOps(e)...)
			last = e.ID
		}
		if last != "" {
			ops = append(ops, clientv3.OpPut(progress, last))
			tx, err := s.cli.Txn(ctx).If(cmps...).Then(ops...).Commit()
			if err != nil {
				return fmt.Errorf("index executions: %w", err)
			}
			if !tx.Succeeded {
				held, err := s.cli.Txn(ctx).If(fence...).Commit()
				if err != nil {
					return fmt.Errorf("index executions: %w", err)
				}
				if !held.Succeeded {
					return errLockLost
				}
				continue // a record changed meanwhile: read this chunk again
			}
		}
		if !resp.More {
			break
		}
		from = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
	// migrating/4 stays until the dead letters are indexed too: a migrator
	// killed meanwhile resumes with them, not with every execution again.
	if err := s.buildDeadLetterIndex(ctx, fence); err != nil {
		return err
	}
	tx, err := s.cli.Txn(ctx).If(fence...).Then(clientv3.OpDelete(progress)).Commit()
	if err != nil {
		return fmt.Errorf("index executions: %w", err)
	}
	if !tx.Succeeded {
		return errLockLost
	}
	return nil
}

// errLockLost is a migrator's whose fence failed: another holds the
// migration lock, or the marker moved.
var errLockLost = errors.New("index executions: the migration lock was lost")
