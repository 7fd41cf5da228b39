package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.opentelemetry.io/otel/trace"

	"github.com/starbook/starbook"
	sbruntime "github.com/starbook/starbook/runtime"
)

// Snapshot reads the runnable, owners, waits and queued indexes and counts
// the registered nodes in one txn.
func (s *Store) Snapshot(ctx context.Context) (*starbook.ClusterState, error) {
	k := s.k
	resp, err := s.cli.Txn(ctx).Then(
		clientv3.OpGet(k.Runnables(), clientv3.WithPrefix(), clientv3.WithKeysOnly()),
		clientv3.OpGet(k.Owners(), clientv3.WithPrefix()),
		clientv3.OpGet(k.allWaits(), clientv3.WithPrefix()),
		clientv3.OpGet(k.nodes(), clientv3.WithPrefix(), clientv3.WithCountOnly()),
		clientv3.OpGet(k.AllQueued(), clientv3.WithPrefix(), clientv3.WithKeysOnly()),
	).Commit()
	if err != nil {
		return nil, fmt.Errorf("read cluster state: %w", err)
	}
	snap := &starbook.ClusterState{Claims: map[string]int{}, Waits: map[string]int{}, OldestWait: map[string]time.Time{}}
	owned := map[string]bool{}
	for _, kv := range resp.Responses[1].GetResponseRange().Kvs {
		owned[k.IDUnder(string(kv.Key), k.Owners())] = true
		snap.Claims[string(kv.Value)]++
	}
	for _, kv := range resp.Responses[0].GetResponseRange().Kvs {
		if !owned[k.IDUnder(string(kv.Key), k.Runnables())] {
			snap.QueueDepth++
		}
	}
	for _, kv := range resp.Responses[2].GetResponseRange().Kvs {
		w, err := k.decodeWait(kv)
		if err != nil {
			continue
		}
		snap.Waits[w.Kind]++
		if old, ok := snap.OldestWait[w.Kind]; !ok || w.Since.Before(old) {
			snap.OldestWait[w.Kind] = w.Since
		}
	}
	snap.Nodes = int(resp.Responses[3].GetResponseRange().Count)
	snap.Queued = map[string]int{}
	for _, kv := range resp.Responses[4].GetResponseRange().Kvs {
		if rb, _, ok := strings.Cut(k.IDUnder(string(kv.Key), k.AllQueued()), "/"); ok {
			snap.Queued[rb]++
		}
	}
	return snap, nil
}

// WatchChanges watches execution records and the waits index from now on and
// tells w, until ctx is done; ready (if not nil) is called once the first
// watch's start revision is chosen: every change after it is seen. The leader
// runs it (see observe.Metrics.LeaderTask), so cluster-wide counters are
// counted once. After a broken watch it resumes from the then current
// revision: changes in between are not counted.
func (s *Store) WatchChanges(ctx context.Context, w starbook.ChangeWatcher, ready func()) {
	if ready == nil {
		ready = func() {}
	}
	ready = sync.OnceFunc(ready)
	for ctx.Err() == nil {
		err := s.watchChangesOnce(ctx, w, ready)
		if err != nil && ctx.Err() == nil {
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}
}

func (s *Store) watchChangesOnce(ctx context.Context, w starbook.ChangeWatcher, ready func()) error {
	resp, err := s.cli.Get(ctx, s.k.probe("watch"), clientv3.WithCountOnly())
	if err != nil {
		return err
	}
	ready()
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	rev := resp.Header.Revision + 1
	execCh := s.cli.Watch(wctx, s.k.executions(), clientv3.WithPrefix(), clientv3.WithPrevKV(), clientv3.WithRev(rev))
	waitCh := s.cli.Watch(wctx, s.k.allWaits(), clientv3.WithPrefix(), clientv3.WithPrevKV(), clientv3.WithRev(rev))
	for {
		select {
		case <-ctx.Done():
			return nil
		case wr, ok := <-execCh:
			if !ok || wr.Err() != nil {
				return WatchErr(wr, ok)
			}
			for _, ev := range wr.Events {
				if ev.Type != clientv3.EventTypePut {
					continue
				}
				cur, err := s.k.decodeExecution(ev.Kv)
				if err != nil {
					continue
				}
				var prev *sbruntime.Execution
				if ev.PrevKv != nil {
					if prev, err = s.k.decodeExecution(ev.PrevKv); err != nil {
						continue
					}
				}
				w.ExecutionChanged(prev, cur)
			}
		case wr, ok := <-waitCh:
			if !ok || wr.Err() != nil {
				return WatchErr(wr, ok)
			}
			for _, ev := range wr.Events {
				if ev.Type == clientv3.EventTypeDelete && ev.PrevKv != nil {
					s.approvalResolved(ctx, ev.PrevKv, w)
				}
			}
		}
	}
}

// approvalResolved reports a deleted approval wait that was resolved (not one
// removed because its execution ended).
func (s *Store) approvalResolved(ctx context.Context, prev *mvccpb.KeyValue, w starbook.ChangeWatcher) {
	wt, err := s.k.decodeWait(prev)
	if err != nil || wt.Kind != sbruntime.KindApproval {
		return
	}
	resp, err := s.cli.Get(ctx, s.k.eventAt(wt.Execution, wt.Position, wt.Attempt))
	if err != nil || len(resp.Kvs) == 0 {
		return
	}
	var ev sbruntime.Event
	if json.Unmarshal(resp.Kvs[0].Value, &ev) != nil {
		return
	}
	decision := "error"
	var res sbruntime.ApprovalResult
	if !ev.Failed() && json.Unmarshal(ev.Result, &res) == nil && res.Decision != "" {
		decision = res.Decision
	}
	runbook := ""
	if req, err := sbruntime.ParseApprovalRequest(wt); err == nil {
		runbook = req.Runbook
	}
	w.ApprovalResolved(runbook, decision, ev.EndedAt.Sub(wt.Since))
}

// VersionInfo describes one stored version of a runbook.
type VersionInfo struct {
	Version   string          `json:"version"`
	CreatedAt time.Time       `json:"created_at"`
	Files     []string        `json:"files"`
	Current   bool            `json:"current,omitempty"`
	Triggers  json.RawMessage `json:"triggers,omitempty"`
	// Libraries names the release of each library whose modules the
	// version holds.
	Libraries map[string]string `json:"libraries,omitempty"`
}

// Versions lists a runbook's stored versions, newest first.
func (s *Store) Versions(ctx context.Context, name string) ([]VersionInfo, error) {
	resp, err := s.cli.Txn(ctx).Then(
		clientv3.OpGet(s.k.runbookCurrent(name)),
		clientv3.OpGet(s.k.runbookVersion(name, ""), clientv3.WithPrefix()),
	).Commit()
	if err != nil {
		return nil, fmt.Errorf("read runbook %s: %w", name, err)
	}
	current := ""
	if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) > 0 {
		current = string(kvs[0].Value)
	}
	var out []VersionInfo
	for _, kv := range resp.Responses[1].GetResponseRange().Kvs {
		var sb struct {
			storedBundle
			Triggers json.RawMessage `json:"triggers"` // collected at apply, opaque here
		}
		if err := json.Unmarshal(kv.Value, &sb); err != nil {
			return nil, fmt.Errorf("decode %s: %w", kv.Key, err)
		}
		out = append(out, VersionInfo{Version: sb.Version, CreatedAt: sb.CreatedAt, Files: sb.Bundle.FileNames(),
			Current: sb.Version == current, Triggers: sb.Triggers, Libraries: sb.Bundle.Libraries})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("runbook %q: %w", name, sbruntime.ErrNotFound)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].CreatedAt.After(out[j].CreatedAt) })
	return out, nil
}

// ExecutionWaits returns the pending waits of one execution in position order.
func (s *Store) ExecutionWaits(ctx context.Context, id string) ([]*sbruntime.Wait, error) {
	resp, err := s.cli.Get(ctx, s.k.waits(id), clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("read waits of %s: %w", id, err)
	}
	var out []*sbruntime.Wait
	for _, kv := range resp.Kvs {
		w, err := s.k.decodeWait(kv)
		if err != nil {
			return nil, err
		}
		out = append(out, w)
	}
	sort.Slice(out, func(i, j int) bool { return sbruntime.ComparePositions(out[i].Position, out[j].Position) < 0 })
	return out, nil
}

// TraceParent returns the W3C traceparent of the span in ctx ("" if none):
// an execution created under a request's span records it, so that its runs'
// traces continue the request's.
func TraceParent(ctx context.Context) string {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		return ""
	}
	return "00-" + sc.TraceID().String() + "-" + sc.SpanID().String() + "-" + sc.TraceFlags().String()
}

// WatchErr is the error that ended a watch: its response's, or "watch
// closed" when the channel closed (ok false).
func WatchErr(wr clientv3.WatchResponse, ok bool) error {
	if !ok {
		return errors.New("watch closed")
	}
	return wr.Err()
}
