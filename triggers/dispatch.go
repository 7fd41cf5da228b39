package triggers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/starbook/starbook"
	sbruntime "github.com/starbook/starbook/runtime"
)

// Dispatcher turns Alertmanager notifications and webhook requests into
// executions of the runbooks whose triggers they match.
type Dispatcher struct {
	Index    Index
	Starter  Starter
	Resolver Resolver // nil: resolved alerts reach no run
	// Env reads webhook secrets; os.LookupEnv when nil.
	Env func(string) (string, bool)
	// DefaultPolicy bounds the alert and webhook runs of a runbook whose
	// triggers declare no max_concurrent= or rate= (a node-wide default,
	// e.g. a rate, so that no runbook starts without bound in a storm).
	DefaultPolicy Policy
	Logger        *slog.Logger
	// DeadLetters keeps the events that started nothing (firing alerts no
	// runbook matches); nil keeps none.
	DeadLetters DeadLetterer
	// Counted, when set, is told what each alert did for each runbook it
	// matched: a Started status (StatusStarted, StatusCoalesced, ...), or
	// "refused" by the runbook's input schema. In a storm it says how many
	// alerts started runs and how many were coalesced into them.
	Counted func(runbook, status string)
}

// StatusRefused is the outcome Counted is told of an alert a runbook's input
// schema refused.
const StatusRefused = "refused"

// count tells Counted of an outcome.
func (d *Dispatcher) count(runbook, status string) {
	if d.Counted != nil {
		d.Counted(runbook, status)
	}
}

// policy is the policy a runbook's triggered starts follow.
func (d *Dispatcher) policy(declared Policy) Policy {
	if declared.Limited() || !d.DefaultPolicy.Limited() {
		return declared
	}
	return d.DefaultPolicy
}

// Result is what one notification or request did.
type Result struct {
	Executions []Started  `json:"executions"`
	Resolved   []Resolved `json:"resolved,omitempty"`
	// Refused are the runbooks whose input schema refused the event: it
	// started nothing there and is kept as a dead letter.
	Refused []Refusal `json:"refused,omitempty"`
	// Paused are the runbooks the event would have started but for their
	// pause: it is kept as a dead letter, to be replayed.
	Paused []Refusal `json:"paused,omitempty"`
}

// StatusPaused is the outcome Counted is told of an alert whose runbook is
// paused.
const StatusPaused = "paused"

// paused returns nil, or the event as a dead letter (starbook.ReasonPaused)
// when rb is paused.
func paused(rb Runbook, source, dedupKey string, input json.RawMessage) *Unstarted {
	if rb.Pause == nil {
		return nil
	}
	return &Unstarted{Source: source, Reason: starbook.ReasonPaused, Runbook: rb.Name,
		Detail: PauseDetail(rb.Pause), DedupKey: dedupKey, Payload: input}
}

// PauseDetail says who paused a runbook and why, for a dead letter.
func PauseDetail(p *starbook.PauseState) string {
	s := "runbook " + p.Runbook + " is paused"
	if p.All {
		s += " (every runbook is)"
	}
	if p.By != "" {
		s += " by " + p.By
	}
	if p.Reason != "" {
		s += ": " + strconv.Quote(p.Reason)
	}
	return s
}

// Refusal is a runbook's input schema refusing an event.
type Refusal struct {
	Runbook string `json:"runbook"`
	Detail  string `json:"detail"` // the JSON pointer and the rule
}

// refuse checks input against rb's schema: it returns nil, or the event as
// a dead letter (starbook.ReasonRefused) with the schema's reason.
func refuse(rb Runbook, source, dedupKey string, input json.RawMessage) *Unstarted {
	if rb.Input == nil {
		return nil
	}
	err := rb.Input.Validate(input)
	if err == nil {
		return nil
	}
	return &Unstarted{Source: source, Reason: starbook.ReasonRefused, Runbook: rb.Name,
		Detail: "runbook " + rb.Name + " refuses its " + err.Error(), DedupKey: dedupKey, Payload: input}
}

// keep stores refused events as dead letters, best effort: a store error
// loses them, not the notification or request.
func (d *Dispatcher) keep(ctx context.Context, refused []Unstarted, res *Result) {
	for _, u := range refused {
		r := Refusal{Runbook: u.Runbook, Detail: u.Detail}
		if u.Reason == starbook.ReasonPaused {
			res.Paused = append(res.Paused, r)
		} else {
			res.Refused = append(res.Refused, r)
		}
	}
	if d.DeadLetters == nil || len(refused) == 0 {
		return
	}
	if err := d.DeadLetters.DeadLetter(ctx, refused); err != nil {
		d.logger().Warn("refused events not kept as dead letters", "events", len(refused), "err", err)
	}
}

// Resolved records an alert's resolution delivered to the runs it started.
type Resolved struct {
	Fingerprint string   `json:"fingerprint"`
	Executions  []string `json:"executions"`
}

// ErrUnknownHook is a webhook name no runbook declares.
var ErrUnknownHook = errors.New("no runbook declares this webhook")

func (d *Dispatcher) logger() *slog.Logger {
	if d.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return d.Logger
}

// Alertmanager starts one execution per firing alert and matching runbook,
// deduplicated on (runbook, fingerprint, startsAt), and delivers each resolved
// alert to the runs it started. For a runbook whose first matching trigger
// coalesces, an alert whose group has a live run is delivered to it as the
// signal "alert" ("resolved" once resolved), once per (fingerprint,
// startsAt); one over the run's bound is kept as a dead letter
// (starbook.ReasonOverflow). An alert a matching runbook's input schema
// refuses starts nothing there and is kept as a dead letter
// (starbook.ReasonRefused); it is no error, so that Alertmanager does not
// retry it. Every execution is durable on return.
func (d *Dispatcher) Alertmanager(ctx context.Context, n *Notification) (*Result, error) {
	runbooks, err := d.Index.Runbooks(ctx)
	if err != nil {
		return nil, err
	}
	res := &Result{Executions: []Started{}}
	var starts []Start
	var refused []Unstarted
	keys := map[string]bool{} // a notification may repeat an alert: start it once
	for _, a := range n.Alerts {
		var input json.RawMessage
		for _, rb := range runbooks {
			t := firstMatch(rb.Set.Alerts, a.Labels)
			if t == nil || (a.Status != AlertFiring && !t.Coalesce) {
				continue
			}
			key := rb.Name + "/" + a.Fingerprint + "/" + strconv.FormatInt(a.StartsAt.Unix(), 10)
			if a.Status != AlertFiring {
				key = "resolved/" + key
			}
			if keys[key] {
				continue
			}
			keys[key] = true
			if input == nil {
				input = n.Event(a)
			}
			if a.Status != AlertFiring {
				// A coalescing group's resolved alert: to its live run, if any.
				starts = append(starts, Start{Runbook: rb.Name, Version: rb.Version,
					Trigger: sbruntime.Trigger{Type: TypeAlert, Source: a.Fingerprint},
					Dedup:   &Dedup{Scope: TypeAlert, TTL: AlertDedupTTL, Key: key},
					Group:   &Group{Key: GroupKey(t.GroupBy, a.Labels), Signal: SignalResolved, Data: input, DeliverOnly: true}})
				continue
			}
			// Alertmanager repeats a firing alert: one dead letter per
			// runbook, alert and startsAt.
			if u := paused(rb, "alertmanager", "paused/"+key, input); u != nil {
				u.Fingerprint = a.Fingerprint
				refused = append(refused, *u)
				d.count(rb.Name, StatusPaused)
				continue
			}
			if u := refuse(rb, "alertmanager", "refused/"+key, input); u != nil {
				u.Fingerprint = a.Fingerprint
				refused = append(refused, *u)
				d.count(rb.Name, StatusRefused)
				continue
			}
			s := Start{
				Runbook: rb.Name, Version: rb.Version, Input: input,
				Trigger: sbruntime.Trigger{Type: TypeAlert, Source: a.Fingerprint, Attrs: map[string]string{
					"alertname": a.Labels["alertname"], "startsAt": a.StartsAt.UTC().Format(time.RFC3339Nano), "receiver": n.Receiver}},
				Dedup:       &Dedup{Scope: TypeAlert, TTL: AlertDedupTTL, Key: key},
				Policy:      d.policy(rb.Set.Policy),
				Fingerprint: a.Fingerprint,
			}
			if t.Coalesce {
				// Its resolution reaches the group's run through the group,
				// not the fingerprint's index.
				g := GroupKey(t.GroupBy, a.Labels)
				s.Trigger.Attrs[AttrGroup], s.Fingerprint = g, ""
				s.Group = &Group{Key: g, Signal: SignalAlert, Data: input}
			}
			starts = append(starts, s)
		}
	}
	var resolvedInGroups []Resolved
	if len(starts) > 0 {
		started, err := d.Starter.Start(ctx, starts)
		if err != nil {
			return nil, err
		}
		for i, st := range started {
			s := &starts[i]
			d.count(st.Runbook, st.Status)
			switch {
			case s.Group != nil && s.Group.DeliverOnly:
				if st.Status == StatusCoalesced {
					resolvedInGroups = append(resolvedInGroups, Resolved{Fingerprint: s.Trigger.Source, Executions: []string{st.ID}})
				}
			case st.Status == StatusOverflow:
				// Not lost: kept as a dead letter, with the alert.
				refused = append(refused, Unstarted{Source: "alertmanager", Reason: starbook.ReasonOverflow,
					Runbook: st.Runbook, Detail: "runbook " + st.Runbook + ": alert not delivered: " + st.Reason,
					Fingerprint: s.Trigger.Source, DedupKey: "overflow/" + s.Dedup.Key, Payload: s.Input})
				res.Executions = append(res.Executions, st)
			default:
				res.Executions = append(res.Executions, st)
			}
		}
	}
	// A refused alert is answered 200 all the same: Alertmanager would
	// retry it forever. The refusals are in the dead letters.
	d.keep(ctx, refused, res)
	if d.DeadLetters != nil {
		if lost := unmatched(n, runbooks); len(lost) > 0 {
			// Best effort and bounded: a store error loses the dead letters,
			// not the notification (whose runs are stored).
			if err := d.DeadLetters.DeadLetter(ctx, lost); err != nil {
				d.logger().Warn("unmatched alerts not kept as dead letters", "alerts", len(lost), "err", err)
			}
		}
	}
	res.Resolved = append(res.Resolved, resolvedInGroups...)
	if d.Resolver == nil {
		return res, nil
	}
	// Resolutions are independent: deliver them a few at a time.
	resolved := make([]Resolved, len(n.Alerts))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for i, a := range n.Alerts {
		if a.Status != AlertResolved {
			continue
		}
		g.Go(func() error {
			ids, err := d.Resolver.Resolve(gctx, a.Fingerprint, a.StartsAt, n.Event(a))
			if err != nil {
				return fmt.Errorf("deliver resolved alert %s: %w", a.Fingerprint, err)
			}
			resolved[i] = Resolved{Fingerprint: a.Fingerprint, Executions: ids}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	for _, r := range resolved {
		if len(r.Executions) > 0 {
			res.Resolved = append(res.Resolved, r)
		}
	}
	return res, nil
}

// firstMatch returns the first of ts that matches labels, or nil: it
// decides whether the alert coalesces.
func firstMatch(ts []*AlertTrigger, labels map[string]string) *AlertTrigger {
	for _, t := range ts {
		if t.Matches(labels) {
			return t
		}
	}
	return nil
}

func matchesAny(ts []*AlertTrigger, labels map[string]string) bool {
	for _, t := range ts {
		if t.Matches(labels) {
			return true
		}
	}
	return false
}

// Webhook starts the runbooks that declare the webhook name and accept the
// request's authentication, with the JSON body as input. A request with an
// Idempotency-Key starts each runbook at most once per key (for
// WebhookDedupTTL). A runbook whose input schema refuses the body starts
// nothing and the body is kept as a dead letter (starbook.ReasonRefused);
// when every runbook refused it, the error says why. Errors: ErrUnknownHook
// (404), *AuthError (401), *ConfigError (500), *TooLargeError (413),
// *runtime.InputError (400: a bad key, a body that is not JSON, or one every
// schema refused).
func (d *Dispatcher) Webhook(ctx context.Context, name string, h http.Header, body []byte) (*Result, error) {
	runbooks, err := d.Index.Runbooks(ctx)
	if err != nil {
		return nil, err
	}
	type target struct {
		rb Runbook
		t  *WebhookTrigger
	}
	var targets []target
	for _, rb := range runbooks {
		for _, t := range rb.Set.Webhooks {
			if t.Name == name {
				targets = append(targets, target{rb, t})
				break
			}
		}
	}
	if len(targets) == 0 {
		return nil, fmt.Errorf("webhook %q: %w", name, ErrUnknownHook)
	}
	env := d.Env
	if env == nil {
		env = os.LookupEnv
	}
	key := h.Get(IdempotencyHeader)
	if key != "" && !validIdempotencyKey(key) {
		return nil, sbruntime.Inputf("invalid %s: want 1 to %d printable ASCII characters", IdempotencyHeader, MaxIdempotencyKey)
	}
	var starts []Start
	var of []Runbook // the runbook of each start
	var firstErr error
	for _, tg := range targets {
		if limit := tg.t.Limit(); int64(len(body)) > limit {
			if firstErr == nil {
				firstErr = &TooLargeError{Limit: limit}
			}
			continue
		}
		method, err := tg.t.Authenticate(h, body, env)
		if err != nil {
			var ce *ConfigError
			if errors.As(err, &ce) {
				d.logger().Error("webhook cannot be authenticated", "hook", name, "runbook", tg.rb.Name, "env", ce.Env)
			} else {
				d.logger().Info("webhook refused", "hook", name, "runbook", tg.rb.Name, "reason", err)
			}
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		attrs := map[string]string{"auth": method}
		s := Start{Runbook: tg.rb.Name, Version: tg.rb.Version, Policy: d.policy(tg.rb.Set.Policy),
			Trigger: sbruntime.Trigger{Type: TypeWebhook, Source: name, Attrs: attrs}}
		if key != "" {
			attrs["idempotency_key"] = key
			s.Dedup = &Dedup{Scope: TypeWebhook, TTL: WebhookDedupTTL, Key: name + "/" + tg.rb.Name + "/" + keySegment(key)}
		}
		starts = append(starts, s)
		of = append(of, tg.rb)
	}
	if len(starts) == 0 {
		return nil, firstErr
	}
	input, err := webhookInput(body)
	if err != nil {
		return nil, err
	}
	res := &Result{Executions: []Started{}}
	var refused []Unstarted
	accepted := starts[:0]
	for i, s := range starts {
		dedup, pausedDedup := "", ""
		if s.Dedup != nil {
			dedup = "refused/" + s.Dedup.Scope + "/" + s.Dedup.Key
			pausedDedup = "paused/" + s.Dedup.Scope + "/" + s.Dedup.Key
		}
		if u := paused(of[i], "webhook:"+name, pausedDedup, input); u != nil {
			refused = append(refused, *u)
			continue
		}
		if u := refuse(of[i], "webhook:"+name, dedup, input); u != nil {
			refused = append(refused, *u)
			continue
		}
		s.Input = input
		accepted = append(accepted, s)
	}
	d.keep(ctx, refused, res)
	if len(accepted) == 0 && len(res.Refused) == 0 {
		// Every runbook is paused: the body is kept, nothing to retry.
		return res, nil
	}
	if len(accepted) == 0 {
		// Every runbook refused the body: the caller can fix it (400).
		details := make([]string, len(res.Refused))
		for i, r := range res.Refused {
			details[i] = r.Detail
		}
		return nil, sbruntime.Inputf("webhook %s: %s", name, strings.Join(details, "; "))
	}
	started, err := d.Starter.Start(ctx, accepted)
	if err != nil {
		return nil, err
	}
	res.Executions = started
	return res, nil
}

// webhookInput checks that the body is one JSON value; empty means no input.
func webhookInput(body []byte) (json.RawMessage, error) {
	if len(body) == 0 {
		return nil, nil
	}
	if !json.Valid(body) {
		return nil, sbruntime.Inputf("the body is not valid JSON: a webhook's body becomes the run's input")
	}
	return json.RawMessage(body), nil
}

// TooLargeError is a body over the webhook's max_body_bytes (HTTP 413).
type TooLargeError struct{ Limit int64 }

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("request body too large: this webhook accepts at most %d bytes", e.Limit)
}
