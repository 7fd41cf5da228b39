package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/starbook/starbook"
	sbruntime "github.com/starbook/starbook/runtime"
)

// noticeRecord is the value of a notices key: where the request was posted
// and what it asked, to render the outcome once the wait is gone.
type noticeRecord struct {
	sbruntime.MessageRef
	Request  *sbruntime.ApprovalRequest `json:"request,omitempty"`
	Since    time.Time                  `json:"since"`
	Deadline *time.Time                 `json:"deadline,omitempty"`
}

// RunNotifier keeps approval posts in step with the waits until ctx is done:
// it posts each pending approval once per round and records where, and
// updates every post once the approval is decided, escalated or gone. Run it
// on the leader only (NodeConfig.LeaderTasks).
func (s *Store) RunNotifier(ctx context.Context, nf starbook.ApprovalNotifier, log *slog.Logger) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	seen := map[string]int{} // approvals shown per notice key
	for ctx.Err() == nil {
		if err := s.notifyOnce(ctx, nf, log, seen); err != nil && ctx.Err() == nil {
			log.Warn("approval notifier", "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}
}

func (s *Store) notifyOnce(ctx context.Context, nf starbook.ApprovalNotifier, log *slog.Logger, seen map[string]int) error {
	resp, err := s.cli.Txn(ctx).Then(
		clientv3.OpGet(s.k.allWaits(), clientv3.WithPrefix(), clientv3.WithKeysOnly()),
		clientv3.OpGet(s.k.allNotices(), clientv3.WithPrefix(), clientv3.WithKeysOnly()),
	).Commit()
	if err != nil {
		return fmt.Errorf("list waits: %w", err)
	}
	type at struct{ id, pos string }
	todo := map[at]bool{}
	var order []at
	add := func(id, pos string) {
		if id != "" && !todo[at{id, pos}] {
			todo[at{id, pos}] = true
			order = append(order, at{id, pos})
		}
	}
	for _, kv := range resp.Responses[0].GetResponseRange().Kvs {
		add(splitIDPos(s.k.IDUnder(string(kv.Key), s.k.allWaits())))
	}
	for _, kv := range resp.Responses[1].GetResponseRange().Kvs {
		rest := s.k.IDUnder(string(kv.Key), s.k.allNotices())
		add(splitIDPos(rest[:max(strings.LastIndex(rest, "/"), 0)]))
	}
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	watch := s.cli.Watch(wctx, s.k.allWaits(), clientv3.WithPrefix(), clientv3.WithRev(resp.Header.Revision+1))
	var failed error
	for _, a := range order {
		if err := s.reconcileNotice(ctx, nf, log, seen, a.id, a.pos); err != nil {
			failed = err
		}
	}
	if failed != nil {
		return failed // retried from a fresh listing
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case wr, ok := <-watch:
			if !ok || wr.Err() != nil {
				return WatchErr(wr, ok)
			}
			for _, ev := range wr.Events {
				id, pos := splitIDPos(s.k.IDUnder(string(ev.Kv.Key), s.k.allWaits()))
				if err := s.reconcileNotice(ctx, nf, log, seen, id, pos); err != nil {
					return err
				}
			}
		}
	}
}

// splitIDPos splits "<id>/<position>"; execution ids hold no '/'.
func splitIDPos(s string) (string, string) {
	id, pos, _ := strings.Cut(s, "/")
	return id, pos
}

// reconcileNotice brings the posts of the approval at (id, pos) up to date.
func (s *Store) reconcileNotice(ctx context.Context, nf starbook.ApprovalNotifier, log *slog.Logger, seen map[string]int, id, pos string) error {
	wk := s.k.wait(id, pos)
	resp, err := s.cli.Txn(ctx).Then(append([]clientv3.Op{
		clientv3.OpGet(wk),
		clientv3.OpGet(s.k.notices(id, pos), clientv3.WithPrefix()),
		clientv3.OpGet(s.k.approvals(id, pos), clientv3.WithPrefix())},
		s.k.eventAttempts(id, pos)...)...).Commit()
	if err != nil {
		return fmt.Errorf("read approval %s/%s: %w", id, pos, err)
	}
	r := resp.Responses
	var (
		w    *sbruntime.Wait
		req  *sbruntime.ApprovalRequest
		wrev int64
	)
	if kvs := r[0].GetResponseRange().Kvs; len(kvs) > 0 {
		x, err := s.k.decodeWait(kvs[0])
		if err != nil {
			return err
		}
		if x.Kind != sbruntime.KindApproval && len(r[1].GetResponseRange().Kvs) == 0 {
			return nil
		}
		if x.Kind == sbruntime.KindApproval {
			w, wrev = x, kvs[0].ModRevision
			if req, err = sbruntime.ParseApprovalRequest(w); err != nil {
				return fmt.Errorf("decode approval %s/%s: %w", id, pos, err)
			}
		}
	}
	received, err := decodeApprovals(r[2].GetResponseRange().Kvs)
	if err != nil {
		return err
	}
	notice := &starbook.ApprovalNotice{Execution: id, Position: pos, Request: req, Approvals: received}
	decided := latestEvent(r[3], r[4]) // the outcome of its latest attempt, once recorded
	if w != nil {
		notice.Since, notice.Deadline = w.Since, w.Deadline
	}
	var current *sbruntime.MessageRef
	for _, kv := range r[1].GetResponseRange().Kvs {
		var rec noticeRecord
		if err := json.Unmarshal(kv.Value, &rec); err != nil {
			log.Warn("drop unreadable approval notice", "key", string(kv.Key), "err", err)
			_, _ = s.cli.Delete(ctx, string(kv.Key))
			continue
		}
		ref := rec.MessageRef
		if req != nil && ref.Round == req.Round {
			current = &ref
			if n := len(received); n > 0 && seen[string(kv.Key)] != n {
				if err := nf.Update(ctx, ref, notice); err != nil {
					return fmt.Errorf("update approval post %s/%s: %w", id, pos, err)
				}
				seen[string(kv.Key)] = n
			}
			continue
		}
		old := *notice
		old.Request, old.Since, old.Deadline, old.Approvals = rec.Request, rec.Since, rec.Deadline, nil
		if old.Request == nil {
			old.Request = req
		}
		switch {
		case req != nil:
			old.EscalatedTo = req
		case decided != nil:
			var ev sbruntime.Event
			if err := json.Unmarshal(decided.Value, &ev); err != nil {
				return fmt.Errorf("decode event %s/%s: %w", id, pos, err)
			}
			var res sbruntime.ApprovalResult
			if json.Unmarshal(ev.Result, &res) == nil && len(ev.Result) > 0 {
				old.Outcome = &res
			}
			old.Error = ev.Error
			if old.Outcome == nil {
				old.Outcome = &sbruntime.ApprovalResult{Decision: sbruntime.DecisionTimeout, Via: sbruntime.ViaTimeout, At: ev.EndedAt}
			}
		default:
			old.Ended = true
		}
		if err := nf.Update(ctx, ref, &old); err != nil {
			return fmt.Errorf("update approval post %s/%s: %w", id, pos, err)
		}
		delete(seen, string(kv.Key))
		if _, err := s.cli.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(string(kv.Key)), "=", kv.ModRevision)).
			Then(clientv3.OpDelete(string(kv.Key))).Commit(); err != nil {
			return fmt.Errorf("delete approval notice %s: %w", kv.Key, err)
		}
	}
	if req == nil || (req.Notified != nil && req.Notified.Round == req.Round) {
		return nil
	}
	ref := current
	if ref == nil {
		posted, err := nf.Post(ctx, notice)
		if errors.Is(err, starbook.ErrNoChannel) {
			log.Debug("approval request not posted", "execution", id, "position", pos, "err", err)
			return nil
		}
		if err != nil {
			return fmt.Errorf("post approval request %s/%s: %w", id, pos, err)
		}
		posted.Round = req.Round
		ref = &posted
		seen[s.k.notice(id, pos, req.Round)] = len(received)
	}
	shown := *req
	shown.Notified = nil
	refData, _ := json.Marshal(noticeRecord{MessageRef: *ref, Request: &shown, Since: w.Since, Deadline: w.Deadline})
	nk := s.k.notice(id, pos, ref.Round)
	for {
		req.Notified = ref
		x := *w
		x.Detail, _ = json.Marshal(req)
		data, err := encodeWait(&x)
		if err != nil {
			return err
		}
		tx, err := s.cli.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(wk), "=", wrev)).
			Then(clientv3.OpPut(wk, string(data)), clientv3.OpPut(nk, string(refData))).
			Else(clientv3.OpGet(wk)).
			Commit()
		if err != nil {
			return fmt.Errorf("record approval post %s/%s: %w", id, pos, err)
		}
		if tx.Succeeded {
			return nil
		}
		kvs := tx.Responses[0].GetResponseRange().Kvs
		var now *sbruntime.Wait
		if len(kvs) > 0 {
			now, _ = s.k.decodeWait(kvs[0])
		}
		if now == nil {
			// Decided while we posted: keep the post so that it gets updated.
			if _, err := s.cli.Put(ctx, nk, string(refData)); err != nil {
				return fmt.Errorf("record approval post %s/%s: %w", id, pos, err)
			}
			return s.reconcileNotice(ctx, nf, log, seen, id, pos)
		}
		nreq, err := sbruntime.ParseApprovalRequest(now)
		if err != nil {
			return err
		}
		if nreq.Round != ref.Round || (nreq.Notified != nil && nreq.Notified.Round == nreq.Round) {
			if _, err := s.cli.Put(ctx, nk, string(refData)); err != nil {
				return fmt.Errorf("record approval post %s/%s: %w", id, pos, err)
			}
			return s.reconcileNotice(ctx, nf, log, seen, id, pos)
		}
		w, req, wrev = now, nreq, kvs[0].ModRevision
	}
}
