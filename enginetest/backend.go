package enginetest

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/starbook/starbook/runtime"
)

// Backend is the storage the suite runs executions against: what a node needs
// from a store to run executions by replay.
type Backend interface {
	// Create stores b (if new) and a new runnable execution of it with input,
	// and returns the execution's id.
	Create(ctx context.Context, b *runtime.Bundle, input json.RawMessage) (id string, err error)
	// Claim takes a runnable, unclaimed execution for one run. The run's Journal
	// is fenced on this claim; History and Waits are as stored at claim time.
	Claim(ctx context.Context, id string) (*runtime.Run, error)
	// Finish records o for r (as returned by Claim), with o.Checkpoint if
	// there is one, and ends the claim. An outcome without a status (an
	// aborted run) leaves the execution runnable.
	// It returns the execution as stored afterwards.
	Finish(ctx context.Context, r *runtime.Run, o runtime.Outcome) (*runtime.Execution, error)
	// Expire ends the current claim on id the way a lost lease would: its
	// holder is not told, and the execution stays runnable.
	Expire(ctx context.Context, id string) error
	// FireWaits resolves every pending wait of id with its timeout outcome, as
	// if all deadlines had passed, and makes the execution runnable. It
	// returns how many waits it resolved.
	FireWaits(ctx context.Context, id string) (int, error)
	// Signal delivers the signal name with data to id: it resolves the pending
	// wait for it, or is kept until the script waits for it.
	Signal(ctx context.Context, id, name string, data json.RawMessage) error
	// History reads back the execution, its events in position order, its
	// pending waits and how many times each position was written.
	History(ctx context.Context, id string) (*History, error)
}

// History is an execution's stored state as a backend reads it back.
type History struct {
	Execution *runtime.Execution
	Events    []*runtime.Event // position order
	Waits     []*runtime.Wait  // pending, position order
	Writes    map[string]int   // position -> times written
}

// Event returns the event at pos, or nil.
func (h *History) Event(pos string) *runtime.Event {
	for _, ev := range h.Events {
		if ev.Position == pos {
			return ev
		}
	}
	return nil
}

// Positions lists the recorded positions in order.
func (h *History) Positions() []string {
	out := make([]string, len(h.Events))
	for i, ev := range h.Events {
		out[i] = ev.Position
	}
	return out
}

// ErrNotClaimable is returned by MemBackend.Claim for an execution that is
// owned or not runnable.
var ErrNotClaimable = errors.New("enginetest: execution not claimable")
