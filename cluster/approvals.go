package cluster

import (
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

// SetDirectory makes Decide resolve Slack users and groups through d. Call
// it before the store serves decisions.
func (s *Store) SetDirectory(d starbook.ChatDirectory) { s.dir = d }

// Decide records d on the pending approval at (id, pos); pos "" means the
// execution's only pending approval. The decision must come from an
// authorised approver. A reject resolves the approval at once; approvals
// accumulate per distinct user until the wait's required count, then resolve
// it as approved. The first resolving decision wins atomically: a later one
// fails with an error wrapping sbruntime.ErrConflict that says who decided.
// Durable on return.
func (s *Store) Decide(ctx context.Context, id, pos string, d sbruntime.Decision) (*sbruntime.ApprovalState, error) {
	d.User = strings.TrimSpace(d.User)
	if d.User == "" {
		return nil, sbruntime.Inputf("a decision needs the deciding user")
	}
	switch d.Via {
	case sbruntime.ViaSlack, sbruntime.ViaCLI, sbruntime.ViaAPI:
	default:
		return nil, sbruntime.Inputf("decision via %q: want slack, cli or api", d.Via)
	}
	if len(d.Comment) > 4096 {
		return nil, sbruntime.Inputf("comment is %d bytes, over the 4096-byte limit", len(d.Comment))
	}
	if pos == "" {
		p, err := s.onlyPendingApproval(ctx, id)
		if err != nil {
			return nil, err
		}
		pos = p
	}
	wk := s.k.wait(id, pos)
	for {
		resp, err := s.cli.Txn(ctx).Then(append([]clientv3.Op{
			clientv3.OpGet(s.k.execution(id), clientv3.WithKeysOnly()),
			clientv3.OpGet(wk),
			clientv3.OpGet(s.k.approvals(id, pos), clientv3.WithPrefix())},
			s.k.eventAttempts(id, pos)...)...).Commit()
		if err != nil {
			return nil, fmt.Errorf("read approval %s/%s: %w", id, pos, err)
		}
		r := resp.Responses
		if len(r[0].GetResponseRange().Kvs) == 0 {
			return nil, fmt.Errorf("execution %q: %w", id, sbruntime.ErrNotFound)
		}
		wkvs := r[1].GetResponseRange().Kvs
		if len(wkvs) == 0 {
			return nil, decidedError(id, pos, latestEvent(r[3], r[4]))
		}
		w, err := s.k.decodeWait(wkvs[0])
		if err != nil {
			return nil, err
		}
		if w.Kind != sbruntime.KindApproval {
			what := w.Kind
			if w.Name != "" {
				what += " " + w.Name
			}
			return nil, sbruntime.Inputf("execution %s position %s waits for %s, not an approval", id, pos, what)
		}
		req, err := sbruntime.ParseApprovalRequest(w)
		if err != nil {
			return nil, fmt.Errorf("decode approval %s/%s: %w", id, pos, err)
		}
		ids, err := s.identities(ctx, d.User)
		if err != nil {
			return nil, err
		}
		ok, err := s.authorised(ctx, d.User, ids, req.Approvers)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, sbruntime.Forbiddenf("%s is not an approver of execution %s position %s (approvers: %s)",
				d.User, id, pos, strings.Join(req.Approvers, ", "))
		}
		received, err := decodeApprovals(r[2].GetResponseRange().Kvs)
		if err != nil {
			return nil, err
		}
		now := s.now().UTC()
		mine := sbruntime.ApprovalDecision{User: d.User, Decision: sbruntime.DecisionReject, Comment: d.Comment, Via: d.Via, At: now}
		state := &sbruntime.ApprovalState{Execution: id, Position: pos, Required: req.Required, Approvals: received}
		rev := wkvs[0].ModRevision
		if !d.Approve {
			res := &sbruntime.ApprovalResult{Approved: false, Decision: sbruntime.DecisionReject, By: []string{d.User},
				At: now, Comment: d.Comment, Via: d.Via, Decisions: append(slices.Clone(received), mine)}
			won, err := s.resolveApproval(ctx, w, rev, res.JSON(), "", now)
			if err != nil {
				return nil, err
			}
			if !won {
				continue
			}
			state.Resolved, state.Result = true, res
			return state, nil
		}
		mine.Decision = sbruntime.DecisionApprove
		if req.Required >= 2 && req.Requester != "" && ids[strings.ToLower(req.Requester)] {
			return nil, sbruntime.Forbiddenf("%s started execution %s: with required=%d their own approval does not count; other approvers must approve (two-person rule)",
				d.User, id, req.Required)
		}
		for _, a := range received {
			if strings.EqualFold(a.User, d.User) {
				state.Duplicate = true
				return state, nil
			}
		}
		if len(received)+1 >= req.Required {
			all := append(slices.Clone(received), mine)
			by := make([]string, len(all))
			for i, a := range all {
				by[i] = a.User
			}
			res := &sbruntime.ApprovalResult{Approved: true, Decision: sbruntime.DecisionApprove, By: by,
				At: now, Comment: d.Comment, Via: d.Via, Decisions: all}
			won, err := s.resolveApproval(ctx, w, rev, res.JSON(), "", now)
			if err != nil {
				return nil, err
			}
			if !won {
				continue
			}
			state.Resolved, state.Result, state.Approvals = true, res, all
			return state, nil
		}
		// Not enough yet: keep this approval, and rewrite the wait so that
		// its mod revision serialises every decision on it.
		ak := s.k.approval(id, pos, d.User)
		data, _ := json.Marshal(mine)
		tx, err := s.cli.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(wk), "=", rev),
				clientv3.Compare(clientv3.CreateRevision(ak), "=", 0)).
			Then(clientv3.OpPut(ak, string(data)), clientv3.OpPut(wk, string(wkvs[0].Value))).
			Commit()
		if err != nil {
			return nil, fmt.Errorf("record approval %s/%s: %w", id, pos, err)
		}
		if tx.Succeeded {
			state.Approvals = append(received, mine)
			return state, nil
		}
	}
}

// latestEvent is the event of the latest attempt among the reads of
// Keys.eventAttempts (the first attempt's key, then the later ones'), nil
// when none is recorded.
func latestEvent(first, later *etcdserverpb.ResponseOp) *mvccpb.KeyValue {
	var latest *mvccpb.KeyValue
	n := 0
	if kvs := first.GetResponseRange().Kvs; len(kvs) > 0 {
		latest, n = kvs[0], 1
	}
	for _, kv := range later.GetResponseRange().Kvs {
		key := string(kv.Key) // .../<pos>@<attempt>: neither ids nor positions hold an @
		if a, err := strconv.Atoi(key[strings.LastIndexByte(key, '@')+1:]); err == nil && a > n {
			latest, n = kv, a
		}
	}
	return latest
}

// decidedError explains why there is no pending approval at a position,
// from the event its latest attempt recorded (nil: none).
func decidedError(id, pos string, event *mvccpb.KeyValue) error {
	if event == nil {
		return fmt.Errorf("execution %s has no pending approval at position %s: %w", id, pos, sbruntime.ErrNotFound)
	}
	var ev sbruntime.Event
	if err := json.Unmarshal(event.Value, &ev); err != nil {
		return fmt.Errorf("decode event %s/%s: %w", id, pos, err)
	}
	if ev.Kind != sbruntime.KindApproval {
		return sbruntime.Inputf("execution %s position %s is a %s step, not an approval", id, pos, ev.Kind)
	}
	var res sbruntime.ApprovalResult
	_ = json.Unmarshal(ev.Result, &res)
	outcome := "rejected"
	if res.Approved {
		outcome = "approved"
	}
	switch {
	case res.Decision == sbruntime.DecisionTimeout || (ev.Failed() && len(res.By) == 0):
		outcome = "timed out (" + outcome + ")"
		if ev.Failed() {
			outcome = "timed out (failed)"
		}
		return sbruntime.Conflictf("execution %s position %s was already decided: %s at %s",
			id, pos, outcome, ev.EndedAt.UTC().Format(time.RFC3339))
	}
	return sbruntime.Conflictf("execution %s position %s was already decided: %s by %s via %s at %s",
		id, pos, outcome, strings.Join(res.By, ", "), res.Via, res.At.UTC().Format(time.RFC3339))
}

// onlyPendingApproval returns the position of execution id's single pending
// approval.
func (s *Store) onlyPendingApproval(ctx context.Context, id string) (string, error) {
	resp, err := s.cli.Txn(ctx).Then(
		clientv3.OpGet(s.k.execution(id), clientv3.WithKeysOnly()),
		clientv3.OpGet(s.k.waits(id), clientv3.WithPrefix()),
	).Commit()
	if err != nil {
		return "", fmt.Errorf("read waits of %s: %w", id, err)
	}
	if len(resp.Responses[0].GetResponseRange().Kvs) == 0 {
		return "", fmt.Errorf("execution %q: %w", id, sbruntime.ErrNotFound)
	}
	var found []string
	for _, kv := range resp.Responses[1].GetResponseRange().Kvs {
		if w, err := s.k.decodeWait(kv); err == nil && w.Kind == sbruntime.KindApproval {
			found = append(found, w.Position)
		}
	}
	switch len(found) {
	case 0:
		return "", s.noPendingApproval(ctx, id)
	case 1:
		return found[0], nil
	}
	slices.SortFunc(found, sbruntime.ComparePositions)
	return "", sbruntime.Conflictf("execution %s has %d pending approvals (positions %s): name one",
		id, len(found), strings.Join(found, ", "))
}

// noPendingApproval explains why execution id has no pending approval: its
// last approval was decided (a conflict that says by whom), or it never
// asked for one.
func (s *Store) noPendingApproval(ctx context.Context, id string) error {
	resp, err := s.cli.Get(ctx, s.k.history(id), clientv3.WithPrefix())
	if err != nil {
		return fmt.Errorf("read history of %s: %w", id, err)
	}
	var last *mvccpb.KeyValue
	lastPos, lastAttempt := "", 0
	for _, kv := range resp.Kvs {
		var ev sbruntime.Event
		if json.Unmarshal(kv.Value, &ev) != nil || ev.Kind != sbruntime.KindApproval {
			continue
		}
		attempt := max(ev.Attempt, 1)
		if c := sbruntime.ComparePositions(ev.Position, lastPos); last == nil || c > 0 || (c == 0 && attempt > lastAttempt) {
			last, lastPos, lastAttempt = kv, ev.Position, attempt
		}
	}
	if last == nil {
		return fmt.Errorf("execution %s has no pending approval: %w", id, sbruntime.ErrNotFound)
	}
	return decidedError(id, lastPos, last)
}

func decodeApprovals(kvs []*mvccpb.KeyValue) ([]sbruntime.ApprovalDecision, error) {
	out := make([]sbruntime.ApprovalDecision, 0, len(kvs))
	for _, kv := range kvs {
		var a sbruntime.ApprovalDecision
		if err := json.Unmarshal(kv.Value, &a); err != nil {
			return nil, fmt.Errorf("decode %s: %w", kv.Key, err)
		}
		out = append(out, a)
	}
	slices.SortStableFunc(out, func(a, b sbruntime.ApprovalDecision) int { return a.At.Compare(b.At) })
	return out, nil
}

// resolveApproval records the approval wait w's outcome if the wait is still
// at mod revision rev and the position empty, and makes the execution
// runnable. It reports whether it won.
func (s *Store) resolveApproval(ctx context.Context, w *sbruntime.Wait, rev int64, result json.RawMessage, errMsg string, now time.Time, extra ...clientv3.Op) (bool, error) {
	id, pos := w.Execution, w.Position
	ev := sbruntime.Event{Position: pos, Kind: w.Kind, Name: w.Name, ArgsHash: w.ArgsHash,
		Result: result, Error: errMsg, StartedAt: w.Since, EndedAt: now, Attempt: w.Attempt}
	data, err := json.Marshal(ev)
	if err != nil {
		return false, err
	}
	ek := s.k.eventAt(id, pos, w.Attempt)
	ops := append([]clientv3.Op{
		clientv3.OpPut(ek, string(data)),
		clientv3.OpDelete(s.k.wait(id, pos)),
		clientv3.OpPut(s.k.runnable(id), ""),
		clientv3.OpDelete(s.k.approvals(id, pos), clientv3.WithPrefix()),
	}, extra...)
	if w.Deadline != nil {
		ops = append(ops, clientv3.OpDelete(s.k.timer(*w.Deadline, id, pos)))
	}
	tx, err := s.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(s.k.wait(id, pos)), "=", rev),
			clientv3.Compare(clientv3.CreateRevision(ek), "=", 0)).
		Then(ops...).Commit()
	if err != nil {
		return false, fmt.Errorf("resolve approval %s/%s: %w", id, pos, err)
	}
	return tx.Succeeded, nil
}

// identities returns the lower-cased names a user is known by: the given
// one and, for a Slack user id, its name and email from the directory.
func (s *Store) identities(ctx context.Context, user string) (map[string]bool, error) {
	ids := map[string]bool{strings.ToLower(user): true}
	if s.dir != nil && sbruntime.IsSlackUser(user) {
		p, err := s.dir.User(ctx, user)
		if err != nil {
			return nil, fmt.Errorf("look up Slack user %s: %w", user, err)
		}
		for _, n := range []string{p.Name, p.Email} {
			if n != "" {
				ids[strings.ToLower(n)] = true
			}
		}
	}
	return ids, nil
}

// authorised reports whether a user known by ids is one of approvers: by
// Slack user id, user group membership, email or name. An empty list means
// anyone.
func (s *Store) authorised(ctx context.Context, user string, ids map[string]bool, approvers []string) (bool, error) {
	if len(approvers) == 0 {
		return true, nil
	}
	slackUser := sbruntime.IsSlackUser(user)
	// person matches a Slack user id against ids: directly, or through its
	// name and email for a user who is not deciding from Slack.
	person := func(uid string) (bool, error) {
		if ids[strings.ToLower(uid)] {
			return true, nil
		}
		if s.dir == nil || slackUser {
			return false, nil
		}
		p, err := s.dir.User(ctx, uid)
		if err != nil {
			return false, fmt.Errorf("look up Slack user %s: %w", uid, err)
		}
		return (p.Name != "" && ids[strings.ToLower(p.Name)]) || (p.Email != "" && ids[strings.ToLower(p.Email)]), nil
	}
	for _, a := range approvers {
		switch {
		case sbruntime.IsSlackGroup(a):
			if ids[strings.ToLower(a)] {
				return true, nil
			}
			if s.dir == nil {
				continue
			}
			members, err := s.dir.GroupMembers(ctx, a)
			if err != nil {
				return false, fmt.Errorf("resolve user group %s: %w", a, err)
			}
			for _, m := range members {
				if ok, err := person(m); err != nil || ok {
					return ok, err
				}
			}
		case sbruntime.IsSlackUser(a):
			if ok, err := person(a); err != nil || ok {
				return ok, err
			}
		default:
			if ids[strings.ToLower(a)] {
				return true, nil
			}
		}
	}
	return false, nil
}

// fireApproval applies an approval's deadline: the first deadline of an
// escalating approval re-asks it (new approvers, channel, deadline and timer
// in one txn; it is notified again); any other applies on_timeout, with the
// approvals received so far in the result. A stale timer is just deleted.
func (s *Store) fireApproval(ctx context.Context, timerKey, id, pos string) error {
	wk := s.k.wait(id, pos)
	for {
		resp, err := s.cli.Txn(ctx).Then(
			clientv3.OpGet(wk),
			clientv3.OpGet(s.k.approvals(id, pos), clientv3.WithPrefix()),
		).Commit()
		if err != nil {
			return fmt.Errorf("read approval %s/%s: %w", id, pos, err)
		}
		wkvs := resp.Responses[0].GetResponseRange().Kvs
		w := &sbruntime.Wait{}
		if len(wkvs) > 0 {
			if w, err = s.k.decodeWait(wkvs[0]); err != nil {
				return err
			}
		}
		if len(wkvs) == 0 || w.Deadline == nil || s.k.timer(*w.Deadline, id, pos) != timerKey {
			if _, err := s.cli.Delete(ctx, timerKey); err != nil {
				return fmt.Errorf("delete timer %s: %w", timerKey, err)
			}
			return nil
		}
		rev := wkvs[0].ModRevision
		req, err := sbruntime.ParseApprovalRequest(w)
		if err != nil {
			return fmt.Errorf("decode approval %s/%s: %w", id, pos, err)
		}
		now := s.now().UTC()
		if esc := req.Escalation; esc != nil && req.Round == 0 {
			deadline := now.Add(esc.Timeout)
			req.Round = 1
			req.OnTimeout = esc.Then
			req.Timeout = esc.Timeout.String()
			req.Notified = nil
			if esc.Channel != "" {
				req.Channel = esc.Channel
			}
			if esc.Approvers != nil {
				req.Approvers = esc.Approvers
			}
			w.Detail, _ = json.Marshal(req)
			w.Deadline = &deadline
			w.OnTimeout, w.TimeoutError = nil, ""
			if esc.Then == sbruntime.OnTimeoutFail {
				w.TimeoutError = sbruntime.ApprovalTimeoutError(req.Message, esc.Timeout)
			} else {
				w.OnTimeout = sbruntime.ApprovalTimeout(esc.Then, deadline)
			}
			data, err := encodeWait(w)
			if err != nil {
				return err
			}
			tx, err := s.cli.Txn(ctx).
				If(clientv3.Compare(clientv3.ModRevision(wk), "=", rev)).
				Then(clientv3.OpPut(wk, string(data)), clientv3.OpDelete(timerKey),
					clientv3.OpPut(s.k.timer(deadline, id, pos), "")).
				Commit()
			if err != nil {
				return fmt.Errorf("escalate approval %s/%s: %w", id, pos, err)
			}
			if tx.Succeeded {
				return nil
			}
			continue
		}
		received, err := decodeApprovals(resp.Responses[1].GetResponseRange().Kvs)
		if err != nil {
			return err
		}
		result := w.OnTimeout
		var res sbruntime.ApprovalResult
		if len(result) > 0 && json.Unmarshal(result, &res) == nil {
			res.Decisions = received
			result = res.JSON()
		} else if len(received) > 0 {
			res = sbruntime.ApprovalResult{Decision: sbruntime.DecisionTimeout, At: now, Via: sbruntime.ViaTimeout, Decisions: received}
			result = res.JSON()
		}
		won, err := s.resolveApproval(ctx, w, rev, result, w.TimeoutError, now, clientv3.OpDelete(timerKey))
		if err != nil || won {
			return err
		}
	}
}

// PendingWait is a pending approval or signal wait, with what an approval
// received so far.
type PendingWait struct {
	Wait      *sbruntime.Wait
	Runbook   string
	Request   *sbruntime.ApprovalRequest // approvals only
	Approvals []sbruntime.ApprovalDecision
}

// PendingWaits lists the pending approval and signal waits of every
// execution, oldest first (by Since). It reads every wait: a listing that
// serves a person pages with PendingWaitsPage.
func (s *Store) PendingWaits(ctx context.Context) ([]*PendingWait, error) {
	out, err := s.PendingWaitsPage(ctx, 0, "")
	if err != nil {
		return nil, err
	}
	slices.SortStableFunc(out, func(a, b *PendingWait) int { return a.Wait.Since.Compare(b.Wait.Since) })
	return out, nil
}

// WaitCursor is where a wait sorts in PendingWaitsPage: its execution id
// and position ("01J.../4/2"), the key it is stored under after waits/.
func WaitCursor(execution, position string) string { return execution + "/" + position }

// PendingWaitsPage lists up to limit (0: all) pending approval and signal
// waits after cursor after (a WaitCursor; "" for the first), in execution
// id order (ids sort by creation time), then position. It costs what it
// returns: the waits are read ascending with a limit (waits/<id>/<pos>,
// so in that order), then the approvals received of the page's approval
// waits and the records of its signal waits' executions, by key.
func (s *Store) PendingWaitsPage(ctx context.Context, limit int, after string) ([]*PendingWait, error) {
	from, end := s.k.allWaits(), clientv3.GetPrefixRangeEnd(s.k.allWaits())
	if after != "" {
		from = s.k.allWaits() + after + "\x00"
	}
	chunk := int64(listChunk)
	if limit > 0 {
		chunk = int64(min(limit, listChunk))
	}
	var out []*PendingWait
	for limit <= 0 || len(out) < limit {
		resp, err := s.cli.Get(ctx, from, clientv3.WithRange(end), clientv3.WithLimit(chunk))
		if err != nil {
			return nil, fmt.Errorf("list waits: %w", err)
		}
		for _, kv := range resp.Kvs {
			w, err := s.k.decodeWait(kv)
			if err != nil {
				return nil, err
			}
			if w.Kind != sbruntime.KindApproval && w.Kind != sbruntime.KindSignal {
				continue // sleeps wait for nobody
			}
			p := &PendingWait{Wait: w}
			if w.Kind == sbruntime.KindApproval {
				if p.Request, err = sbruntime.ParseApprovalRequest(w); err != nil {
					return nil, fmt.Errorf("decode %s: %w", kv.Key, err)
				}
				p.Runbook = p.Request.Runbook
			}
			out = append(out, p)
			if limit > 0 && len(out) == limit {
				break
			}
		}
		if !resp.More || len(resp.Kvs) == 0 || (limit > 0 && len(out) == limit) {
			break
		}
		from = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
	if err := s.pendingWaitDetails(ctx, out); err != nil {
		return nil, err
	}
	return out, nil
}

// pendingWaitDetails reads what ps received (approvals) and the runbook of
// those whose wait does not name it (signals), a txn of reads by key per
// defaultMaxTxnOps.
func (s *Store) pendingWaitDetails(ctx context.Context, ps []*PendingWait) error {
	var ops []clientv3.Op
	var apply []func(*etcdserverpb.ResponseOp) error
	runbooks := map[string][]*PendingWait{} // execution -> waits without a runbook
	flush := func() error {
		if len(ops) == 0 {
			return nil
		}
		resp, err := s.cli.Txn(ctx).Then(ops...).Commit()
		if err != nil {
			return fmt.Errorf("list waits: %w", err)
		}
		for i, r := range resp.Responses {
			if err := apply[i](r); err != nil {
				return err
			}
		}
		ops, apply = ops[:0], apply[:0]
		clear(runbooks) // the next txn reads the records it needs again
		return nil
	}
	for _, p := range ps {
		if p.Wait.Kind == sbruntime.KindApproval {
			ops = append(ops, clientv3.OpGet(s.k.approvals(p.Wait.Execution, p.Wait.Position), clientv3.WithPrefix()))
			apply = append(apply, func(r *etcdserverpb.ResponseOp) error {
				for _, kv := range r.GetResponseRange().Kvs {
					var a sbruntime.ApprovalDecision
					if json.Unmarshal(kv.Value, &a) == nil {
						p.Approvals = append(p.Approvals, a)
					}
				}
				slices.SortStableFunc(p.Approvals, func(a, b sbruntime.ApprovalDecision) int { return a.At.Compare(b.At) })
				return nil
			})
		}
		if p.Runbook == "" {
			id := p.Wait.Execution
			if runbooks[id] == nil {
				ops = append(ops, clientv3.OpGet(s.k.execution(id)))
				apply = append(apply, func(r *etcdserverpb.ResponseOp) error {
					kvs := r.GetResponseRange().Kvs
					if len(kvs) == 0 {
						return nil // deleted meanwhile: no runbook to show
					}
					e, err := s.k.decodeExecution(kvs[0])
					if err != nil {
						return nil
					}
					for _, q := range runbooks[id] {
						q.Runbook = e.Runbook
					}
					return nil
				})
			}
			runbooks[id] = append(runbooks[id], p)
		}
		if len(ops) >= defaultMaxTxnOps-1 {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	return flush()
}
