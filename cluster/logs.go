package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"

	sbruntime "github.com/starbook/starbook/runtime"
)

// maxLogMsg bounds one stored log message; logs are for people.
const maxLogMsg = 16 << 10

var _ sbruntime.LogWriter = (*Claim)(nil)

// WriteLog stores l, fenced on the claim, unless its line is stored already;
// it shares the group commit with checkpoints.
func (c *Claim) WriteLog(ctx context.Context, l *sbruntime.LogLine) error {
	if len(l.Msg) > maxLogMsg {
		l.Msg = l.Msg[:maxLogMsg] + fmt.Sprintf("... (%d more bytes)", len(l.Msg)-maxLogMsg)
	}
	data, err := json.Marshal(l)
	if err != nil {
		return fmt.Errorf("encode log line: %w", err)
	}
	err = c.s.batch.append(ctx, &appendReq{
		owner: c.s.k.owner(c.Execution.ID), ownerRev: c.rev,
		key: c.s.k.logLine(c.Execution.ID, l.Key()), value: data})
	if errors.Is(err, sbruntime.ErrPositionTaken) {
		return nil // logged by an earlier run of the same step
	}
	return err
}

// Logs returns up to limit lines of execution id with Seq > after, oldest
// first (limit <= 0: all). It fails with ErrNotFound for an unknown execution.
func (s *Store) Logs(ctx context.Context, id string, after int64, limit int) ([]*sbruntime.LogLine, error) {
	lines, _, _, err := s.readLogs(ctx, id, after, limit)
	return lines, err
}

// readLogs reads lines after after and the execution record in one txn; it
// also returns the revision it read at.
func (s *Store) readLogs(ctx context.Context, id string, after int64, limit int) ([]*sbruntime.LogLine, *sbruntime.Execution, int64, error) {
	opts := []clientv3.OpOption{clientv3.WithPrefix(), clientv3.WithMinCreateRev(after + 1),
		clientv3.WithSort(clientv3.SortByCreateRevision, clientv3.SortAscend)}
	if limit > 0 {
		opts = append(opts, clientv3.WithLimit(int64(limit)))
	}
	resp, err := s.cli.Txn(ctx).Then(clientv3.OpGet(s.k.execution(id)), clientv3.OpGet(s.k.logs(id), opts...)).Commit()
	if err != nil {
		return nil, nil, 0, fmt.Errorf("read logs of %s: %w", id, err)
	}
	recs := resp.Responses[0].GetResponseRange().Kvs
	if len(recs) == 0 {
		return nil, nil, 0, fmt.Errorf("execution %q: %w", id, sbruntime.ErrNotFound)
	}
	e, err := s.k.decodeExecution(recs[0])
	if err != nil {
		return nil, nil, 0, err
	}
	var lines []*sbruntime.LogLine
	for _, kv := range resp.Responses[1].GetResponseRange().Kvs {
		l, err := decodeLogLine(kv.Value, kv.CreateRevision)
		if err != nil {
			return nil, nil, 0, fmt.Errorf("decode %s: %w", kv.Key, err)
		}
		lines = append(lines, l)
	}
	return lines, e, resp.Header.Revision, nil
}

func decodeLogLine(data []byte, rev int64) (*sbruntime.LogLine, error) {
	var l sbruntime.LogLine
	if err := json.Unmarshal(data, &l); err != nil {
		return nil, err
	}
	l.Seq = rev
	return &l, nil
}

// FollowLogs sends every line of execution id with Seq > after, in order, and
// then each new line as it is stored, until the execution has ended and all
// its lines are sent (it returns nil), ctx is done, or send fails.
func (s *Store) FollowLogs(ctx context.Context, id string, after int64, send func(*sbruntime.LogLine) error) error {
	for {
		lines, e, rev, err := s.readLogs(ctx, id, after, 0)
		if err != nil {
			return err
		}
		for _, l := range lines {
			if err := send(l); err != nil {
				return err
			}
			after = l.Seq
		}
		if e.Status.Terminal() {
			return nil
		}
		ended, err := s.watchLogs(ctx, id, &after, rev+1, send)
		if err != nil || ended {
			return err
		}
		// The watch broke (compaction, etcd restart): read again from after.
	}
}

// watchLogs sends new lines from revision rev until the execution record
// turns terminal (then it reads what is left and reports true), or the watch
// breaks (false, nil).
func (s *Store) watchLogs(ctx context.Context, id string, after *int64, rev int64, send func(*sbruntime.LogLine) error) (bool, error) {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	logCh := s.cli.Watch(wctx, s.k.logs(id), clientv3.WithPrefix(), clientv3.WithRev(rev))
	execCh := s.cli.Watch(wctx, s.k.execution(id), clientv3.WithRev(rev))
	for {
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case wr, ok := <-logCh:
			if !ok || wr.Err() != nil {
				return false, nil
			}
			for _, ev := range wr.Events {
				if ev.Type != clientv3.EventTypePut || ev.Kv.CreateRevision <= *after {
					continue
				}
				l, err := decodeLogLine(ev.Kv.Value, ev.Kv.CreateRevision)
				if err != nil {
					continue
				}
				if err := send(l); err != nil {
					return false, err
				}
				*after = l.Seq
			}
		case wr, ok := <-execCh:
			if !ok || wr.Err() != nil {
				return false, nil
			}
			for _, ev := range wr.Events {
				if ev.Type != clientv3.EventTypePut {
					return true, nil // deleted by retention: nothing more will come
				}
				e, err := s.k.decodeExecution(ev.Kv)
				if err != nil || !e.Status.Terminal() {
					continue
				}
				// Every line was stored before the outcome: read the rest.
				lines, _, _, err := s.readLogs(ctx, id, *after, 0)
				if err != nil {
					return true, err
				}
				for _, l := range lines {
					if err := send(l); err != nil {
						return true, err
					}
					*after = l.Seq
				}
				return true, nil
			}
		}
	}
}
