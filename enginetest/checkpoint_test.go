package enginetest_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"go.starlark.net/starlark"

	"github.com/starbook/starbook/enginetest"
	"github.com/starbook/starbook/runtime"
)

// recorder is a journal that reports each append on appended.
type recorder struct {
	runtime.Journal
	mu       sync.Mutex
	appended []string
	notify   chan string
}

func (r *recorder) Append(ctx context.Context, ev *runtime.Event) error {
	if err := r.Journal.Append(ctx, ev); err != nil {
		return err
	}
	r.mu.Lock()
	r.appended = append(r.appended, ev.Position)
	r.mu.Unlock()
	select {
	case r.notify <- ev.Position:
	default:
	}
	return nil
}

// runDeferred runs src once on a fresh execution with DeferCheckpoint and
// returns the outcome, the positions appended during the run, and the
// history after Finish.
func runDeferred(t *testing.T, f *enginetest.Fixture, mem *enginetest.MemBackend, src string, rec *recorder) (runtime.Outcome, *enginetest.History) {
	t.Helper()
	p := f.Source("deferred", src)
	id := f.Start(p, "")
	r, err := mem.Claim(f.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	run := *r
	rec.Journal = r.Journal
	run.Journal, run.DeferCheckpoint = rec, true
	o := f.Engine.Execute(f.Context(), p, &run)
	if _, err := mem.Finish(f.Context(), r, o); err != nil {
		t.Fatal(err)
	}
	return o, f.History(id)
}

// TestDeferredCheckpointGoesWithTheOutcome: with DeferCheckpoint, each step's
// event is appended before the next step starts, and the last one, followed
// only by computing, comes back in the outcome and is recorded with it.
func TestDeferredCheckpointGoesWithTheOutcome(t *testing.T) {
	mem := enginetest.NewMem()
	f := enginetest.NewFixture(t, mem, enginetest.Options{})
	rec := &recorder{notify: make(chan string, 1)}
	o, h := runDeferred(t, f, mem, `
def main(event):
    a = call(effect, "a")
    b = call(effect, "b")
    return [a, b]
`, rec)
	if o.Status != runtime.StatusCompleted {
		t.Fatalf("status %q (err %v, error %q)", o.Status, o.Err, o.Error)
	}
	if len(rec.appended) != 1 || rec.appended[0] != "1" {
		t.Errorf("appended during the run %v, want [1]", rec.appended)
	}
	if o.Checkpoint == nil || o.Checkpoint.Position != "2" {
		t.Fatalf("outcome checkpoint %+v, want the event at 2", o.Checkpoint)
	}
	if got := h.Positions(); len(got) != 2 || h.Event("2") == nil {
		t.Errorf("history %v after finish, want 1 and 2", got)
	}
	if n := f.Effects.Total(); n != 2 {
		t.Errorf("%d effects, want 2", n)
	}
}

// TestDeferredCheckpointIsBounded: a step's event held while the script
// computes is appended within checkpointHold, not at the end of the run: the
// script blocks in flushed() until the journal has it.
func TestDeferredCheckpointIsBounded(t *testing.T) {
	mem := enginetest.NewMem()
	f := enginetest.NewFixture(t, mem, enginetest.Options{})
	rec := &recorder{notify: make(chan string, 1)}
	f.Predeclared["flushed"] = starlark.NewBuiltin("flushed", func(*starlark.Thread, *starlark.Builtin, starlark.Tuple, []starlark.Tuple) (starlark.Value, error) {
		select {
		case pos := <-rec.notify:
			return starlark.String(pos), nil
		case <-time.After(10 * time.Second):
			return nil, errors.New("the held event was not appended while the script computed")
		}
	})
	o, h := runDeferred(t, f, mem, `
def main(event):
    call(effect, "a")
    return flushed()
`, rec)
	if o.Status != runtime.StatusCompleted {
		t.Fatalf("status %q (err %v, error %q)", o.Status, o.Err, o.Error)
	}
	if o.Checkpoint != nil {
		t.Errorf("outcome checkpoint %+v, want none: it was appended", o.Checkpoint)
	}
	if string(o.Result) != `"1"` {
		t.Errorf("result %s, want the position flushed, \"1\"", o.Result)
	}
	if h.Event("1") == nil {
		t.Errorf("history %v, want 1", h.Positions())
	}
}
