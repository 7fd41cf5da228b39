package triggers

import (
	"context"
	"encoding/json"
	"strconv"
)

// Unstarted is a trigger event that started nothing: an alert no runbook's
// triggers match, or an event a schema or a budget refused. It is kept as a
// dead letter with its payload and reason.
type Unstarted struct {
	Source      string // "alertmanager", "webhook:<name>"
	Reason      string // starbook.ReasonNoRunbook or starbook.ReasonRefused
	Runbook     string // the runbook that refused it, if any
	Detail      string // why, for people
	Fingerprint string // an alert's
	// DedupKey, when set, keeps one dead letter per key (an alert's
	// fingerprint and startsAt: Alertmanager repeats a firing alert).
	DedupKey string
	Payload  json.RawMessage
}

// DeadLetterer keeps trigger events that started nothing, bounded: it may
// keep fewer than given (duplicates, a storm over its cap), never more.
type DeadLetterer interface {
	DeadLetter(ctx context.Context, events []Unstarted) error
}

// unmatched returns the firing alerts of n that no runbook matched, as dead
// letters.
func unmatched(n *Notification, runbooks []Runbook) []Unstarted {
	var out []Unstarted
	seen := map[string]bool{}
	for _, a := range n.Alerts {
		if a.Status != AlertFiring {
			continue
		}
		matched := false
		for _, rb := range runbooks {
			if matchesAny(rb.Set.Alerts, a.Labels) {
				matched = true
				break
			}
		}
		key := a.Fingerprint + "/" + strconv.FormatInt(a.StartsAt.Unix(), 10)
		if matched || seen[key] {
			continue
		}
		seen[key] = true
		out = append(out, Unstarted{Source: "alertmanager", Reason: "no_runbook", Fingerprint: a.Fingerprint,
			Detail: "no runbook's trigger.alert matches alert " + a.Labels["alertname"], DedupKey: key, Payload: n.Event(a)})
	}
	return out
}
