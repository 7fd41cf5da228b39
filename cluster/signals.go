package cluster

import (
	"context"
	"encoding/json"
	"fmt"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	sbruntime "github.com/starbook/starbook/runtime"
)

// maxKeptSignals bounds the signals kept for one name before a wait takes them.
const maxKeptSignals = 100

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
	result := sbruntime.SignalResult(name, data, by, s.now())
	sk, waits := s.k.signal(id, name), s.k.waits(id)
	for {
		resp, err := s.cli.Txn(ctx).Then(
			clientv3.OpGet(s.k.execution(id)), clientv3.OpGet(waits, clientv3.WithPrefix()), clientv3.OpGet(sk)).Commit()
		if err != nil {
			return fmt.Errorf("signal %s to %s: %w", name, id, err)
		}
		r := resp.Responses
		execKvs := r[0].GetResponseRange().Kvs
		if len(execKvs) == 0 {
			return fmt.Errorf("execution %q: %w", id, sbruntime.ErrNotFound)
		}
		e, err := s.k.decodeExecution(execKvs[0])
		if err != nil {
			return err
		}
		if e.Status.Terminal() {
			return sbruntime.Inputf("execution %s has ended (%s): signal %s not delivered", id, e.Status, name)
		}
		pos, err := s.signalWaitPosition(name, r[1].GetResponseRange().Kvs)
		if err != nil {
			return err
		}
		if pos != "" {
			ok, err := s.ResolveWait(ctx, id, pos, result, "")
			if err != nil || ok {
				return err
			}
			continue // resolved by someone else meanwhile (a timeout): look again
		}
		var queue []json.RawMessage
		kept := r[2].GetResponseRange().Kvs
		rev := int64(0)
		if len(kept) > 0 {
			rev = kept[0].ModRevision
			if err := json.Unmarshal(kept[0].Value, &queue); err != nil {
				return fmt.Errorf("decode kept signals %s: %w", sk, err)
			}
		}
		if len(queue) >= maxKeptSignals {
			return sbruntime.Inputf("execution %s already holds %d unconsumed %s signals", id, len(queue), name)
		}
		b, _ := json.Marshal(append(queue, result))
		// Keep the signal only if no wait of the execution was written since
		// the read: one registered meanwhile may be the wait for it (the
		// claim side refuses to register it over a kept signal). etcd holds a
		// range compare against every key in the range; an empty range
		// compares as revision 0 and passes.
		tx, err := s.cli.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(waits), "<", resp.Header.Revision+1).WithPrefix(),
				clientv3.Compare(clientv3.ModRevision(sk), "=", rev),
				clientv3.Compare(clientv3.ModRevision(s.k.execution(id)), "=", execKvs[0].ModRevision)).
			Then(clientv3.OpPut(sk, string(b))).
			Commit()
		if err != nil {
			return fmt.Errorf("keep signal %s for %s: %w", name, id, err)
		}
		if tx.Succeeded {
			return nil
		}
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
