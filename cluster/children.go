package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	sbruntime "github.com/starbook/starbook/runtime"
)

// Child runbooks (run_runbook): a step of a parent execution starts another
// runbook as its child, and the parent may wait for the child's end.
//
//   - The child's create txn writes children/<parent>/<position>@<attempt>
//     (its id) if no execution did: a step that runs again (its node died
//     before its event was recorded) finds its child there instead of
//     starting a second one.
//   - The child's record names its parent: Trigger{Type: "runbook", Source:
//     the parent, Attrs: position, depth}.
//   - Its end txn writes childends/<child> (its outcome), and the leader
//     delivers that as the signal child.<child> to the parent (ChildEndsTask),
//     then deletes it. A signal is kept when it comes before the parent waits
//     for it, and delivered when it waits: a crash between the end and the
//     delivery loses nothing, a delivery twice leaves one kept signal the
//     parent never reads (deleted with it).

// TriggerRunbook is the trigger type of a child execution.
const TriggerRunbook = "runbook"

// Attributes of a child's trigger.
const (
	AttrPosition = "position" // the parent's step that started it
	AttrDepth    = "depth"    // 1 for a child of a top-level run, 2 for its child, ...
)

// ChildSignalPrefix starts the name of the signal a child's end is delivered
// as (ChildSignal): no one else may send one.
const ChildSignalPrefix = "child."

// ChildSignal is the name of the signal that tells a parent of child id's end.
func ChildSignal(id string) string { return ChildSignalPrefix + id }

// ChildEnd is a child's outcome, as its parent's wait receives it.
type ChildEnd struct {
	ID      string           `json:"id"`
	Runbook string           `json:"runbook"`
	Status  sbruntime.Status `json:"status"`
	Result  json.RawMessage  `json:"result,omitempty"`
	Error   string           `json:"error,omitempty"`
}

// childEnd is the value of childends/<child>.
type childEnd struct {
	Parent string   `json:"parent"`
	End    ChildEnd `json:"end"`
}

// childEndOps are the writes an end of e adds when e is a child: its outcome
// for the parent (none for another execution).
func (k Keys) childEndOps(e *sbruntime.Execution) []clientv3.Op {
	if e.Trigger.Type != TriggerRunbook || e.Trigger.Source == "" || !e.Status.Terminal() {
		return nil
	}
	end := childEnd{Parent: e.Trigger.Source, End: ChildEnd{ID: e.ID, Runbook: e.Runbook, Status: e.Status, Error: e.Error}}
	if e.Status == sbruntime.StatusCompleted {
		end.End.Result = e.Result
	}
	data, err := json.Marshal(end)
	if err != nil || len(data) > maxChildEndBytes {
		end.End.Result, end.End.Status = nil, sbruntime.StatusFailed
		end.End.Error = fmt.Sprintf("the child's result is over the %d bytes a parent receives", maxChildEndBytes)
		data, _ = json.Marshal(end)
	}
	return []clientv3.Op{clientv3.OpPut(k.childEnd(e.ID), string(data))}
}

// maxChildEndBytes bounds a child's outcome: a signal's data is at most
// 256 KiB.
const maxChildEndBytes = 250 << 10

// childFailure is the error a parent's wait records when the signal it
// takes (name, its SignalResult) is the end of a child that did not
// complete: a failed event, which a redrive from the failed step runs again
// (with a new child); "" for any other signal.
func childFailure(name string, signalResult json.RawMessage) string {
	if !strings.HasPrefix(name, ChildSignalPrefix) {
		return ""
	}
	var r struct {
		Data ChildEnd `json:"data"`
	}
	if json.Unmarshal(signalResult, &r) != nil || r.Data.Status == "" || r.Data.Status == sbruntime.StatusCompleted {
		return ""
	}
	return fmt.Sprintf("child %s (%s) ended %s: %s", r.Data.ID, r.Data.Runbook, r.Data.Status, r.Data.Error)
}

// childExists is a child already started at its parent's step.
type childExists struct{ id string }

func (e *childExists) Error() string { return "the step started child " + e.id + " already" }

// ChildStart is what StartChild needs besides the execution.
type ChildStart struct {
	Runbook  string // the child's
	Parent   string // the parent execution
	Position string // the parent's step
	Attempt  int    // the parent's attempt (a redrive starts a new child)
}

// StartChild creates e, a child of c.Parent started at step c.Position, as
// StartCurrent creates any execution (input schema, budget, rollouts), unless
// that step started one already: then it returns that one, and nothing is
// created. e.Trigger must name the parent.
func (s *Store) StartChild(ctx context.Context, runner Runner, c ChildStart, newExecution func(version string) *sbruntime.Execution) (*sbruntime.Execution, error) {
	key := s.k.child(c.Parent, c.Position, c.Attempt)
	existing := func(id string) (*sbruntime.Execution, error) {
		e, _, err := s.Execution(ctx, id)
		if err != nil {
			return nil, fmt.Errorf("child %s of %s: %w", id, c.Parent, err)
		}
		return e, nil
	}
	resp, err := s.cli.Get(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("read the child of %s at %s: %w", c.Parent, c.Position, err)
	}
	if len(resp.Kvs) > 0 {
		return existing(string(resp.Kvs[0].Value))
	}
	e, err := s.startCurrent(ctx, c.Runbook, runner, key, newExecution)
	var exists *childExists
	if errors.As(err, &exists) {
		return existing(exists.id)
	}
	return e, err
}

// Children returns the ids of the children parent's steps started, in the
// order of their steps.
func (s *Store) Children(ctx context.Context, parent string) ([]string, error) {
	resp, err := s.cli.Get(ctx, s.k.children(parent), clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("children of %s: %w", parent, err)
	}
	type child struct{ pos, id string }
	var out []child
	for _, kv := range resp.Kvs {
		pos, _, _ := strings.Cut(strings.TrimPrefix(string(kv.Key), s.k.children(parent)), "@")
		out = append(out, child{pos, string(kv.Value)})
	}
	slices.SortStableFunc(out, func(a, b child) int { return sbruntime.ComparePositions(a.pos, b.pos) })
	ids := make([]string, len(out))
	for i, c := range out {
		ids[i] = c.id
	}
	return ids, nil
}

// DeliverChildEnds delivers every child end not delivered yet to its parent
// as signal child.<id>, and deletes each delivered one (also one whose
// parent has ended or is gone: nobody waits for it). It returns how many it
// delivered.
func (s *Store) DeliverChildEnds(ctx context.Context) (int, error) {
	resp, err := s.cli.Get(ctx, s.k.childEnds(), clientv3.WithPrefix(), clientv3.WithLimit(256))
	if err != nil {
		return 0, fmt.Errorf("read child ends: %w", err)
	}
	delivered := 0
	for _, kv := range resp.Kvs {
		var end childEnd
		if err := json.Unmarshal(kv.Value, &end); err == nil { // one that does not decode is dropped
			data, _ := json.Marshal(end.End)
			err := s.Signal(ctx, end.Parent, ChildSignal(end.End.ID), data, "runbook "+end.End.Runbook)
			var input *sbruntime.InputError
			switch {
			case err == nil:
				delivered++
			case errors.Is(err, sbruntime.ErrNotFound), errors.As(err, &input):
				// The parent is gone or has ended: nobody waits for it.
			default:
				return delivered, fmt.Errorf("deliver the end of child %s to %s: %w", end.End.ID, end.Parent, err)
			}
		}
		if _, err := s.cli.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(string(kv.Key)), "=", kv.ModRevision)).
			Then(clientv3.OpDelete(string(kv.Key))).Commit(); err != nil {
			return delivered, fmt.Errorf("delete child end %s: %w", kv.Key, err)
		}
	}
	return delivered, nil
}

// ChildEndsTask returns a leader task that delivers child ends every
// interval (default 250ms) while the node leads.
func (s *Store) ChildEndsTask(interval time.Duration, logger *slog.Logger) func(ctx context.Context) {
	if interval <= 0 {
		interval = 250 * time.Millisecond
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return func(ctx context.Context) {
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			if _, err := s.DeliverChildEnds(ctx); err != nil && ctx.Err() == nil {
				logger.Warn("child runbooks: deliver ends", "err", err)
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}
}
