package triggers_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/starbook/starbook/triggers"
	"github.com/starbook/starbook/triggers/triggerstest"
)

func mustCronX(t *testing.T, spec, tz, catchUp string, maxCatchUp int) *triggers.CronTrigger {
	t.Helper()
	c, err := triggers.NewCron(spec, tz, catchUp, maxCatchUp)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

// memCronStore is a CronStore in memory; the tick set makes racing
// schedulers fire each tick once, as the etcd transaction does.
type memCronStore struct {
	mu    sync.Mutex
	fired map[string][]time.Time
	ticks map[string]bool
	last  map[string]time.Time
	note  chan string
}

func newMemCronStore() *memCronStore {
	return &memCronStore{fired: map[string][]time.Time{}, ticks: map[string]bool{}, last: map[string]time.Time{}, note: make(chan string, 100)}
}

func (m *memCronStore) LastTick(_ context.Context, runbook string) (time.Time, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.last[runbook], nil
}

func (m *memCronStore) FireTick(_ context.Context, at time.Time, s triggers.Start) (*triggers.Started, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	key := fmt.Sprintf("%s/%d", s.Runbook, at.Unix())
	if m.ticks[key] {
		return nil, nil
	}
	m.ticks[key] = true
	m.fired[s.Runbook] = append(m.fired[s.Runbook], at)
	if at.After(m.last[s.Runbook]) {
		m.last[s.Runbook] = at
	}
	m.note <- key
	return &triggers.Started{Runbook: s.Runbook, ID: key, Status: triggers.StatusStarted}, nil
}

func (m *memCronStore) SkipTo(_ context.Context, runbook string, at time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if at.After(m.last[runbook]) {
		m.last[runbook] = at
	}
	return nil
}

func (m *memCronStore) firedTicks(runbook string) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for _, t := range m.fired[runbook] {
		out = append(out, t.UTC().Format("15:04"))
	}
	return out
}

type staticIndex []triggers.Runbook

func (s staticIndex) Runbooks(context.Context) ([]triggers.Runbook, error) { return s, nil }

func startScheduler(t *testing.T, s *triggers.Scheduler) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = s.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

func TestSchedulerFiresEachTickOnce(t *testing.T) {
	clock := triggerstest.NewClock(utc("2026-01-15T09:59:00Z"))
	store := newMemCronStore()
	set := &triggers.Set{}
	if err := set.AddCron(mustCronX(t, "*/15 * * * *", "", "", 0), "x.star:1:1"); err != nil {
		t.Fatal(err)
	}
	idx := staticIndex{{Name: "report", Version: "v1", Since: utc("2026-01-15T09:00:00Z"), Set: set}}
	// Two schedulers race on every tick, as two leaders in a split second would.
	startScheduler(t, &triggers.Scheduler{Clock: clock, Store: store, Index: idx})
	startScheduler(t, &triggers.Scheduler{Clock: clock, Store: store, Index: idx})
	clock.WaitTimers(2)
	// 09:00 .. 09:45 were before 09:59 but after Since: 09:45 is late (14 min),
	// so the default policy fired it once at start.
	<-store.note
	if got := store.firedTicks("report"); strings.Join(got, ",") != "09:45" {
		t.Fatalf("fired at start: %v", got)
	}
	for _, at := range []string{"10:00", "10:15", "10:30"} {
		clock.Set(utc("2026-01-15T" + at + ":00Z"))
		if key := <-store.note; !strings.HasSuffix(key, fmt.Sprint(utc("2026-01-15T"+at+":00Z").Unix())) {
			t.Fatalf("fired %s at %s", key, at)
		}
		clock.WaitTimers(2) // both loops parked again
	}
	if got := store.firedTicks("report"); strings.Join(got, ",") != "09:45,10:00,10:15,10:30" {
		t.Fatalf("fired %v", got)
	}
	select {
	case key := <-store.note:
		t.Fatalf("extra fire %s", key)
	default:
	}
}

func TestSchedulerCatchUpAfterOutage(t *testing.T) {
	for _, tt := range []struct {
		catchUp string
		max     int
		want    string
	}{
		{triggers.CatchUpSkip, 0, "12:00"},
		{triggers.CatchUpLast, 0, "11:00"},
		{triggers.CatchUpAll, 0, "07:00,08:00,09:00,10:00,11:00"},
		{triggers.CatchUpAll, 2, "10:00,11:00"},
	} {
		t.Run(fmt.Sprintf("%s-%d", tt.catchUp, tt.max), func(t *testing.T) {
			store := newMemCronStore()
			store.last["job"] = utc("2026-01-15T06:00:00Z") // fired before the outage
			set := &triggers.Set{}
			if err := set.AddCron(mustCronX(t, "0 * * * *", "", tt.catchUp, tt.max), "job.star:1:1"); err != nil {
				t.Fatal(err)
			}
			// A leader comes back at 11:30, after five missed hourly ticks.
			clock := triggerstest.NewClock(utc("2026-01-15T11:30:00Z"))
			startScheduler(t, &triggers.Scheduler{Clock: clock, Store: store,
				Index: staticIndex{{Name: "job", Version: "v1", Since: utc("2026-01-01T00:00:00Z"), Set: set}}})
			clock.WaitTimers(1)
			clock.Set(utc("2026-01-15T12:00:00Z"))
			for {
				if key := <-store.note; strings.HasSuffix(key, fmt.Sprint(utc("2026-01-15T12:00:00Z").Unix())) {
					break
				}
			}
			want := tt.want
			if want != "12:00" {
				want += ",12:00"
			}
			if got := strings.Join(store.firedTicks("job"), ","); got != want {
				t.Fatalf("fired %s, want %s", got, want)
			}
			if last, _ := store.LastTick(context.Background(), "job"); !last.Equal(utc("2026-01-15T12:00:00Z")) {
				t.Fatalf("last tick %s", last)
			}
		})
	}
}

func TestSchedulerNeverFiresBeforeSince(t *testing.T) {
	store := newMemCronStore()
	set := &triggers.Set{}
	if err := set.AddCron(mustCronX(t, "0 * * * *", "", triggers.CatchUpAll, 0), "job.star:1:1"); err != nil {
		t.Fatal(err)
	}
	clock := triggerstest.NewClock(utc("2026-01-15T11:30:00Z"))
	// Applied at 11:10: the 11:00 tick and earlier belong to no version of it.
	startScheduler(t, &triggers.Scheduler{Clock: clock, Store: store,
		Index: staticIndex{{Name: "job", Version: "v1", Since: utc("2026-01-15T11:10:00Z"), Set: set}}})
	clock.WaitTimers(1)
	clock.Set(utc("2026-01-15T12:00:00Z"))
	<-store.note
	if got := strings.Join(store.firedTicks("job"), ","); got != "12:00" {
		t.Fatalf("fired %s", got)
	}
}
