package quota

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/starbook/starbook"
	"github.com/starbook/starbook/triggers"
)

// Admitter says whether new runs may start: nil, or why not (a
// *FullError). *Guard is one.
type Admitter interface {
	Admit() error
}

// Starter puts a guard in front of the triggers' starts (alerts and
// webhooks): while the store is full it starts nothing, keeps each start as
// a dead letter (reason storage) and returns the *FullError, which the API
// answers with 507 so that Alertmanager or the webhook's sender tries again
// later.
type Starter struct {
	triggers.Starter
	Guard       Admitter
	DeadLetters triggers.DeadLetterer
}

// Start implements triggers.Starter.
func (s *Starter) Start(ctx context.Context, starts []triggers.Start) ([]triggers.Started, error) {
	err := s.Guard.Admit()
	if err == nil {
		return s.Starter.Start(ctx, starts)
	}
	var refused []triggers.Unstarted
	for _, st := range starts {
		if st.Group != nil && st.Group.DeliverOnly {
			continue // a resolved alert for a group's run: it would start nothing
		}
		refused = append(refused, refusal(st, err))
	}
	return nil, keep(ctx, s.DeadLetters, refused, err)
}

// CronStore puts a guard in front of cron's starts: while the store is full
// a due tick starts nothing and is kept as a dead letter (reason storage);
// the tick counts as handled, so that a store full for hours does not fire
// every missed tick at once when it has room again.
type CronStore struct {
	triggers.CronStore
	Guard       Admitter
	DeadLetters triggers.DeadLetterer
}

// FireTick implements triggers.CronStore.
func (c *CronStore) FireTick(ctx context.Context, at time.Time, s triggers.Start) (*triggers.Started, error) {
	err := c.Guard.Admit()
	if err == nil {
		return c.CronStore.FireTick(ctx, at, s)
	}
	u := refusal(s, err)
	u.DedupKey = "storage/cron/" + s.Runbook + "/" + at.UTC().Format(time.RFC3339)
	if c.DeadLetters != nil {
		if err := c.DeadLetters.DeadLetter(ctx, []triggers.Unstarted{u}); err != nil {
			return nil, fmt.Errorf("keep the refused tick as a dead letter: %w", err) // tried again
		}
	}
	return nil, nil // handled: SkipTo records it with the next ticks
}

// refusal is st kept as a dead letter, refused by err.
func refusal(st triggers.Start, err error) triggers.Unstarted {
	u := triggers.Unstarted{Source: source(st), Reason: starbook.ReasonStorage, Runbook: st.Runbook,
		Detail: "runbook " + st.Runbook + ": not started: " + err.Error(), Payload: st.Input}
	if st.Trigger.Type == triggers.TypeAlert {
		u.Fingerprint = st.Trigger.Source
	}
	if st.Dedup != nil {
		// Alertmanager repeats a notification it could not deliver: one
		// dead letter per alert.
		u.DedupKey = "storage/" + st.Dedup.Scope + "/" + st.Dedup.Key
	}
	return u
}

func source(st triggers.Start) string {
	switch st.Trigger.Type {
	case triggers.TypeAlert:
		return "alertmanager"
	case triggers.TypeWebhook:
		return "webhook:" + st.Trigger.Source
	}
	return st.Trigger.Type
}

// keep stores refused as dead letters and returns full, or the store's
// error joined to it when they could not be kept.
func keep(ctx context.Context, dl triggers.DeadLetterer, refused []triggers.Unstarted, full error) error {
	if dl == nil || len(refused) == 0 {
		return full
	}
	if err := dl.DeadLetter(ctx, refused); err != nil {
		return errors.Join(full, err)
	}
	return full
}
