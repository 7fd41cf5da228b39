package triggers_test

import (
	"context"
	"encoding/json"
	"sync"
	"testing"

	"github.com/starbook/starbook"
	"github.com/starbook/starbook/triggers"
	"github.com/starbook/starbook/triggers/triggerstest"
)

// notedDeadLetters keeps the dead letters it is given and notes each.
type notedDeadLetters struct{ note chan triggers.Unstarted }

func (k notedDeadLetters) DeadLetter(_ context.Context, events []triggers.Unstarted) error {
	for _, u := range events {
		k.note <- u
	}
	return nil
}

// pausableIndex is one runbook whose pause the test lifts.
type pausableIndex struct {
	mu sync.Mutex
	rb triggers.Runbook
}

func (x *pausableIndex) Runbooks(context.Context) ([]triggers.Runbook, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	return []triggers.Runbook{x.rb}, nil
}

func (x *pausableIndex) resume() {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.rb.Pause = nil
}

// TestSchedulerPausedTicks: a paused runbook's tick fires nothing, is kept
// as a paused dead letter with its cron event, and counts as handled, so
// that it is not caught up once the runbook resumes; the next tick fires.
func TestSchedulerPausedTicks(t *testing.T) {
	clock := triggerstest.NewClock(utc("2026-01-15T09:59:00Z"))
	store := newMemCronStore()
	set := &triggers.Set{}
	if err := set.AddCron(mustCronX(t, "*/15 * * * *", "", "", 0), "x.star:1:1"); err != nil {
		t.Fatal(err)
	}
	idx := &pausableIndex{rb: triggers.Runbook{Name: "report", Version: "v1", Since: utc("2026-01-15T09:50:00Z"), Set: set,
		Pause: &starbook.PauseState{Runbook: "report", Paused: true, By: "alice", Reason: "quiet week"}}}
	dead := notedDeadLetters{note: make(chan triggers.Unstarted, 10)}
	startScheduler(t, &triggers.Scheduler{Clock: clock, Store: store, Index: idx, DeadLetters: dead})

	clock.WaitTimers(1)
	clock.Set(utc("2026-01-15T10:00:00Z"))
	u := <-dead.note
	var ev triggers.CronEvent
	if u.Reason != starbook.ReasonPaused || u.Runbook != "report" || u.Source != "cron:*/15 * * * *" ||
		u.DedupKey != "paused/cron/report/1768471200" || json.Unmarshal(u.Payload, &ev) != nil ||
		!ev.Tick.Equal(utc("2026-01-15T10:00:00Z")) || ev.Schedule != "*/15 * * * *" {
		t.Fatalf("paused tick %+v (payload %s)", u, u.Payload)
	}
	clock.WaitTimers(1) // parked again: the tick is handled
	if last, _ := store.LastTick(context.Background(), "report"); !last.Equal(utc("2026-01-15T10:00:00Z")) {
		t.Fatalf("last tick %s, want 10:00 handled", last)
	}
	if got := store.firedTicks("report"); len(got) != 0 {
		t.Fatalf("a paused runbook fired %v", got)
	}
	idx.resume()
	clock.Set(utc("2026-01-15T10:15:00Z"))
	<-store.note
	if got := store.firedTicks("report"); len(got) != 1 || got[0] != "10:15" {
		t.Fatalf("fired %v after the resume, want 10:15 alone (10:00 is not caught up)", got)
	}
	select {
	case u := <-dead.note:
		t.Fatalf("a dead letter after the resume: %+v", u)
	default:
	}
}
