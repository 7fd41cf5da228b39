package quota

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/starbook/starbook"
	sbruntime "github.com/starbook/starbook/runtime"
	"github.com/starbook/starbook/triggers"
)

type admit struct{ err error }

func (a admit) Admit() error { return a.err }

type kept struct{ events []triggers.Unstarted }

func (k *kept) DeadLetter(_ context.Context, events []triggers.Unstarted) error {
	k.events = append(k.events, events...)
	return nil
}

type fakeStarts struct {
	triggers.CronStore
	starts int
	fired  int
}

func (f *fakeStarts) Start(_ context.Context, s []triggers.Start) ([]triggers.Started, error) {
	f.starts += len(s)
	return make([]triggers.Started, len(s)), nil
}

func (f *fakeStarts) FireTick(context.Context, time.Time, triggers.Start) (*triggers.Started, error) {
	f.fired++
	return &triggers.Started{}, nil
}

var full = &FullError{Size: 95, Quota: 100, FullAt: 0.9}

func TestStarterKeepsRefusedStartsAsDeadLetters(t *testing.T) {
	starts := []triggers.Start{
		{Runbook: "crash", Input: []byte(`{"a":1}`), Trigger: sbruntime.Trigger{Type: triggers.TypeAlert, Source: "fp1"},
			Dedup: &triggers.Dedup{Scope: triggers.TypeAlert, Key: "crash/fp1/1"}},
		{Runbook: "crash", Trigger: sbruntime.Trigger{Type: triggers.TypeAlert, Source: "fp2"},
			Group: &triggers.Group{Key: "g", DeliverOnly: true}}, // a resolved alert: nothing to keep
		{Runbook: "deploy", Input: []byte(`{}`), Trigger: sbruntime.Trigger{Type: triggers.TypeWebhook, Source: "deploy"}},
	}
	f, k := &fakeStarts{}, &kept{}
	s := &Starter{Starter: f, Guard: admit{}, DeadLetters: k}
	if _, err := s.Start(context.Background(), starts); err != nil || f.starts != 3 || len(k.events) != 0 {
		t.Fatalf("with room: %v, %d started, %d kept", err, f.starts, len(k.events))
	}
	s.Guard = admit{full}
	_, err := s.Start(context.Background(), starts)
	if !errors.Is(err, sbruntime.ErrStorageFull) || f.starts != 3 {
		t.Fatalf("full: %v, %d started; want ErrStorageFull and nothing more started", err, f.starts)
	}
	if len(k.events) != 2 {
		t.Fatalf("kept %+v, want the alert and the webhook", k.events)
	}
	a, w := k.events[0], k.events[1]
	if a.Reason != starbook.ReasonStorage || a.Source != "alertmanager" || a.Fingerprint != "fp1" || a.DedupKey != "storage/alert/crash/fp1/1" ||
		a.Runbook != "crash" || string(a.Payload) != `{"a":1}` || a.Detail != "runbook crash: not started: "+full.Error() {
		t.Errorf("alert's dead letter %+v", a)
	}
	if w.Reason != starbook.ReasonStorage || w.Source != "webhook:deploy" || w.DedupKey != "" || w.Runbook != "deploy" {
		t.Errorf("webhook's dead letter %+v", w)
	}
}

func TestCronStoreKeepsRefusedTicksAsDeadLetters(t *testing.T) {
	f, k := &fakeStarts{}, &kept{}
	c := &CronStore{CronStore: f, Guard: admit{}, DeadLetters: k}
	at := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	s := triggers.Start{Runbook: "nightly", Trigger: sbruntime.Trigger{Type: triggers.TypeCron, Source: "0 12 * * *"}}
	if st, err := c.FireTick(context.Background(), at, s); err != nil || st == nil || f.fired != 1 {
		t.Fatalf("with room: %v, %v, fired %d", st, err, f.fired)
	}
	c.Guard = admit{full}
	st, err := c.FireTick(context.Background(), at, s)
	if err != nil || st != nil || f.fired != 1 {
		t.Fatalf("full: %v, %v, fired %d; want the tick handled, not fired", st, err, f.fired)
	}
	if len(k.events) != 1 || k.events[0].Reason != starbook.ReasonStorage || k.events[0].Source != "cron" ||
		k.events[0].DedupKey != "storage/cron/nightly/2026-12-07T12:00:00Z" {
		t.Fatalf("kept %+v", k.events)
	}
}
