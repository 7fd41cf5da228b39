package cluster

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/oklog/ulid/v2"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	sbruntime "github.com/starbook/starbook/runtime"
)

// maxKeptSignals bounds the signals kept for one name before a wait takes them.
const maxKeptSignals = 100

// deliverChunk bounds the signals one delivery txn keeps: each is a
// compare and up to two puts, under etcd's default --max-txn-ops of 128.
const deliverChunk = 50

// Signal delivers the signal name with data to execution id, sent by by. If
// the execution waits for it, the wait is resolved and the execution made
// runnable; otherwise the signal is kept, in order, and consumed when the
// script reaches wait_for_signal(name). Durable on return.
func (s *Store) Signal(ctx context.Context, id, name string, data json.RawMessage, by string) error {
	if !validSignalName(name) {
		return sbruntime.Inputf("signal name %q: use 1-64 letters, digits, '.', '-' or '_'", name)
	}
	if len(data) > 0 && !json.Valid(data) {
		return sbruntime.Inputf("signal %s: data is not valid JSON", name)
	}
	if len(data) > 256<<10 {
		return sbruntime.Inputf("signal %s: data is %d bytes, over the 262144-byte limit", name, len(data))
	}
	out := &outgoing{name: name, result: sbruntime.SignalResult(name, data, by, s.now())}
	err := s.deliver(ctx, id, []*outgoing{out}, maxKeptSignals, nil)
	var ended *endedError
	switch {
	case errors.As(err, &ended):
		return sbruntime.Inputf("execution %s has ended (%s): signal %s not delivered", id, ended.status, name)
	case err != nil:
		return err
	case out.overflow:
		return sbruntime.Inputf("execution %s already holds %d unconsumed %s signals", id, maxKeptSignals, name)
	}
	return nil
}

// outgoing is one signal on its way to an execution, and what became of it.
type outgoing struct {
	name   string
	result json.RawMessage // sbruntime.SignalResult
	// dedup, when set, is created with the delivery (value: the execution
	// id, under lease): a signal whose key exists is a duplicate.
	dedup string
	lease clientv3.LeaseID

	done     bool // delivered, or one of the below
	dup      bool // its dedup key existed
	overflow bool // bound signals of its name were kept already
}

// endedError is the execution a delivery was for having ended.
type endedError struct{ status sbruntime.Status }

func (e *endedError) Error() string { return "execution has ended (" + string(e.status) + ")" }

// errFenced is a delivery whose fence compares failed.
var errFenced = errors.New("delivery fence failed")

// seqs makes the kept signals' key suffixes: the sender's read revision
// first, so that a signal sent after another was kept sorts after it
// whichever node sent it, then a ULID, monotonic within this process.
var seqs = struct {
	sync.Mutex
	entropy *ulid.MonotonicEntropy
}{entropy: ulid.Monotonic(rand.Reader, 0)}

func signalSeq(rev int64) string {
	seqs.Lock()
	defer seqs.Unlock()
	return fmt.Sprintf("%016x-%s", rev, ulid.MustNew(ulid.Now(), seqs.entropy))
}

// deliver delivers sigs to execution id, in order: a signal resolves the
// pending wait for its name, if any, or is kept under its own key; a
// signal whose dedup key exists is marked dup, and one that would hold
// more than bound unconsumed signals of its name overflow (bound is soft
// by the few concurrent deliveries that read the same count). Every txn
// carries the fence compares: when they fail, deliver returns errFenced.
// An execution that has ended is an *endedError, a missing one
// runtime.ErrNotFound. The signals marked done are durable on return.
func (s *Store) deliver(ctx context.Context, id string, sigs []*outgoing, bound int, fence []clientv3.Cmp) error {
	for len(sigs) > 0 {
		chunk := sigs[:min(deliverChunk, len(sigs))]
		if err := s.deliverChunk(ctx, id, chunk, bound, fence); err != nil {
			return err
		}
		sigs = sigs[len(chunk):]
	}
	return nil
}

func (s *Store) deliverChunk(ctx context.Context, id string, chunk []*outgoing, bound int, fence []clientv3.Cmp) error {
	k := s.k
	waits := k.waits(id)
	for {
		var pending []*outgoing
		var names []string
		for _, o := range chunk {
			if o.done {
				continue
			}
			pending = append(pending, o)
			if !slices.Contains(names, o.name) {
				names = append(names, o.name)
			}
		}
		if len(pending) == 0 {
			return nil
		}
		reads := []clientv3.Op{clientv3.OpGet(k.execution(id)), clientv3.OpGet(waits, clientv3.WithPrefix())}
		// Per name, the legacy list, then a count of the kept keys unless
		// this store's estimate will do (keptcount.go).
		kept := map[string]int{}
		var counting []string
		for _, name := range names {
			reads = append(reads, clientv3.OpGet(k.signalList(id, name)))
			if n, ok := s.kept.estimate(id, name, bound); ok {
				kept[name] = n
				continue
			}
			counting = append(counting, name)
			reads = append(reads, clientv3.OpGet(k.keptSignals(id, name), clientv3.WithPrefix(), clientv3.WithCountOnly()))
		}
		for _, o := range pending {
			if o.dedup != "" {
				reads = append(reads, clientv3.OpGet(o.dedup, clientv3.WithCountOnly()))
			}
		}
		resp, err := s.reads.read(ctx, fence, reads)
		if err != nil {
			return fmt.Errorf("signal %s: %w", id, err)
		}
		if !resp.ok {
			return errFenced
		}
		r := resp.resps
		execKvs := r[0].GetResponseRange().Kvs
		if len(execKvs) == 0 {
			return fmt.Errorf("execution %q: %w", id, sbruntime.ErrNotFound)
		}
		e, err := k.decodeExecution(execKvs[0])
		if err != nil {
			return err
		}
		if e.Status.Terminal() {
			return &endedError{e.Status}
		}
		next := 2
		for _, name := range names {
			if l := r[next].GetResponseRange().Kvs; len(l) > 0 {
				var queue []json.RawMessage
				if err := json.Unmarshal(l[0].Value, &queue); err != nil {
					return fmt.Errorf("decode kept signals %s: %w", l[0].Key, err)
				}
				kept[name] += len(queue)
			}
			next++
			if slices.Contains(counting, name) {
				n := int(r[next].GetResponseRange().Count)
				s.kept.counted(id, name, n)
				kept[name] += n
				next++
			}
		}
		fresh := pending[:0:0]
		for _, o := range pending {
			if o.dedup != "" {
				if r[next].GetResponseRange().Count > 0 {
					o.done, o.dup = true, true
				}
				next++
			}
			if !o.done {
				fresh = append(fresh, o)
			}
		}
		// The first signal whose name a wait waits for resolves it; the
		// others are kept after a fresh read.
		var resolve *outgoing
		var pos string
		for _, o := range fresh {
			if pos, err = s.signalWaitPosition(o.name, r[1].GetResponseRange().Kvs); err != nil {
				return err
			}
			if pos != "" {
				resolve = o
				break
			}
		}
		if resolve != nil {
			var cmps []clientv3.Cmp
			var ops []clientv3.Op
			if resolve.dedup != "" {
				cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(resolve.dedup), "=", 0))
				ops = append(ops, clientv3.OpPut(resolve.dedup, id, clientv3.WithLease(resolve.lease)))
			}
			ok, err := s.resolveWait(ctx, id, pos, resolve.result, childFailure(resolve.name, resolve.result), append(cmps, fence...), ops)
			if err != nil {
				return err
			}
			resolve.done = ok
			continue // resolved, or by someone else meanwhile (a timeout): look again
		}
		// Keep them only if no wait of the execution was written since the
		// read: one registered meanwhile may be the wait for one (the claim
		// side refuses to register it over a kept signal). etcd holds a
		// range compare against every key in the range; an empty range
		// compares as revision 0 and passes.
		cmps := append([]clientv3.Cmp{
			clientv3.Compare(clientv3.ModRevision(waits), "<", resp.rev+1).WithPrefix(),
			clientv3.Compare(clientv3.ModRevision(k.execution(id)), "=", execKvs[0].ModRevision)}, fence...)
		var ops []clientv3.Op
		var keeping []*outgoing
		for _, o := range fresh {
			if kept[o.name] >= bound {
				o.done, o.overflow = true, true
				continue
			}
			kept[o.name]++
			keeping = append(keeping, o)
			ops = append(ops, clientv3.OpPut(k.keptSignal(id, o.name, signalSeq(resp.rev)), string(o.result)))
			if o.dedup != "" {
				cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(o.dedup), "=", 0))
				ops = append(ops, clientv3.OpPut(o.dedup, id, clientv3.WithLease(o.lease)))
			}
		}
		if len(keeping) == 0 {
			return nil
		}
		// Through the committer: in a storm, the keeps of many groups and
		// payloads share a txn.
		_, err = s.batch.do(ctx, fencedReq(cmps, ops))
		switch {
		case err == nil:
			for _, o := range keeping {
				o.done = true
				s.kept.kept(id, o.name, 1)
			}
			return nil
		case !errors.Is(err, errComparesFailed):
			return fmt.Errorf("keep signals for %s: %w", id, err)
		}
		// A wait, the execution, a dedup key or the fence changed: look again.
	}
}

// signalWaitPosition returns the position of the pending wait for signal name
// among an execution's waits, the first in position order if branches of a
// fan_out wait for the same name, or "" if none waits for it.
func (s *Store) signalWaitPosition(name string, waits []*mvccpb.KeyValue) (string, error) {
	pos := ""
	for _, kv := range waits {
		w, err := s.k.decodeWait(kv)
		if err != nil {
			return "", err
		}
		if w.Kind == sbruntime.KindSignal && w.Name == name && (pos == "" || sbruntime.ComparePositions(w.Position, pos) < 0) {
			pos = w.Position
		}
	}
	return pos, nil
}

func validSignalName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}
