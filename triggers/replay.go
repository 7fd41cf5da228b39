package triggers

import (
	"encoding/json"
	"strings"
	"time"

	"github.com/starbook/starbook"
	sbruntime "github.com/starbook/starbook/runtime"
)

// AttrReplayOf is the trigger attribute of a run a replayed dead letter
// started: the dead letter's id.
const AttrReplayOf = "replay_of"

// ReplayStarts are the starts that dispatch trigger event dl (a dead letter
// of kind event) again over the current runbooks: to the runbook it names
// (an event a pause, a schema, a budget or a full store refused), or, for an
// alert no runbook matched, to every runbook whose alert triggers match it
// now. Each start has the event's trigger type and source (alert, webhook,
// cron), the runbook's policy and the stored payload as input. Nothing to
// start, a runbook paused (unless force: a *starbook.PausedError) or a
// schema still refusing the payload wraps sbruntime.ErrConflict; a dead
// letter that is not an event's, or whose payload was cut, is an
// *sbruntime.InputError.
func ReplayStarts(dl *starbook.DeadLetter, runbooks []Runbook, force bool) ([]Start, error) {
	switch {
	case dl.Kind != starbook.DeadEvent:
		return nil, sbruntime.Inputf("dead letter %s is an execution's: redrive it (starbook redrive %s)", dl.ID, dl.ID)
	case dl.PayloadTruncated:
		return nil, sbruntime.Inputf("dead letter %s: its payload was cut at %d bytes when kept: it cannot be dispatched as it came",
			dl.ID, starbook.MaxDeadLetterPayload)
	}
	trigger, fingerprint, labels, err := replayTrigger(dl)
	if err != nil {
		return nil, err
	}
	var targets []Runbook
	switch {
	case dl.Runbook != "":
		for _, rb := range runbooks {
			if rb.Name == dl.Runbook {
				targets = append(targets, rb)
			}
		}
		if len(targets) == 0 {
			return nil, sbruntime.Conflictf("dead letter %s: runbook %s declares no trigger now (or is gone): nothing to dispatch it to",
				dl.ID, dl.Runbook)
		}
	case trigger.Type == TypeAlert:
		for _, rb := range runbooks {
			if matchesAny(rb.Set.Alerts, labels) {
				targets = append(targets, rb)
			}
		}
		if len(targets) == 0 {
			return nil, sbruntime.Conflictf("dead letter %s: no runbook's trigger.alert matches alert %s yet: nothing started",
				dl.ID, labels["alertname"])
		}
	default:
		return nil, sbruntime.Conflictf("dead letter %s names no runbook: nothing to dispatch it to", dl.ID)
	}
	starts := make([]Start, 0, len(targets))
	for _, rb := range targets {
		if rb.Pause != nil && !force {
			return nil, &starbook.PausedError{State: *rb.Pause}
		}
		if rb.Input != nil {
			if err := rb.Input.Validate(dl.Payload); err != nil {
				return nil, sbruntime.Conflictf("dead letter %s: runbook %s still refuses its %s", dl.ID, rb.Name, err)
			}
		}
		t := trigger
		t.Attrs = map[string]string{}
		for k, v := range trigger.Attrs {
			t.Attrs[k] = v
		}
		starts = append(starts, Start{Runbook: rb.Name, Version: rb.Version, Input: dl.Payload, Trigger: t,
			Policy: rb.Set.Policy, Fingerprint: fingerprint})
	}
	return starts, nil
}

// replayTrigger is the trigger a run of dl records, from its source; for an
// alert, also its fingerprint and labels.
func replayTrigger(dl *starbook.DeadLetter) (sbruntime.Trigger, string, map[string]string, error) {
	attrs := map[string]string{AttrReplayOf: dl.ID}
	switch {
	case dl.Source == "alertmanager":
		var a alertEvent
		if err := json.Unmarshal(dl.Payload, &a); err != nil {
			return sbruntime.Trigger{}, "", nil, sbruntime.Inputf("dead letter %s: its alert is unreadable: %v", dl.ID, err)
		}
		attrs["alertname"], attrs["startsAt"], attrs["receiver"] = a.Labels["alertname"], a.StartsAt.UTC().Format(time.RFC3339Nano), a.Receiver
		return sbruntime.Trigger{Type: TypeAlert, Source: a.Fingerprint, Attrs: attrs}, a.Fingerprint, a.Labels, nil
	case strings.HasPrefix(dl.Source, "webhook:"):
		return sbruntime.Trigger{Type: TypeWebhook, Source: strings.TrimPrefix(dl.Source, "webhook:"), Attrs: attrs}, "", nil, nil
	case strings.HasPrefix(dl.Source, CronSource):
		var ev CronEvent
		if err := json.Unmarshal(dl.Payload, &ev); err == nil && !ev.Tick.IsZero() {
			attrs["tick"] = ev.Tick.UTC().Format(time.RFC3339)
		}
		return sbruntime.Trigger{Type: TypeCron, Source: strings.TrimPrefix(dl.Source, CronSource), Attrs: attrs}, "", nil, nil
	}
	return sbruntime.Trigger{}, "", nil, sbruntime.Inputf("dead letter %s: source %q is not a trigger this node can dispatch again", dl.ID, dl.Source)
}
