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
	"time"

	"golang.org/x/sync/errgroup"

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
// alert to the runs it started. Every execution is durable on return.
func (d *Dispatcher) Alertmanager(ctx context.Context, n *Notification) (*Result, error) {
	runbooks, err := d.Index.Runbooks(ctx)
	if err != nil {
		return nil, err
	}
	res := &Result{Executions: []Started{}}
	var starts []Start
	keys := map[string]bool{} // a notification may repeat an alert: start it once
	for _, a := range n.Alerts {
		if a.Status != AlertFiring {
			continue
		}
		var input json.RawMessage
		for _, rb := range runbooks {
			if !matchesAny(rb.Set.Alerts, a.Labels) {
				continue
			}
			key := rb.Name + "/" + a.Fingerprint + "/" + strconv.FormatInt(a.StartsAt.Unix(), 10)
			if keys[key] {
				continue
			}
			keys[key] = true
			if input == nil {
				input = n.Event(a)
			}
			starts = append(starts, Start{
				Runbook: rb.Name, Version: rb.Version, Input: input,
				Trigger: sbruntime.Trigger{Type: TypeAlert, Source: a.Fingerprint, Attrs: map[string]string{
					"alertname": a.Labels["alertname"], "startsAt": a.StartsAt.UTC().Format(time.RFC3339Nano), "receiver": n.Receiver}},
				Dedup:       &Dedup{Scope: TypeAlert, TTL: AlertDedupTTL, Key: key},
				Policy:      d.policy(rb.Set.Policy),
				Fingerprint: a.Fingerprint,
			})
		}
	}
	if len(starts) > 0 {
		started, err := d.Starter.Start(ctx, starts)
		if err != nil {
			return nil, err
		}
		res.Executions = started
	}
	if d.DeadLetters != nil {
		if lost := unmatched(n, runbooks); len(lost) > 0 {
			// Best effort and bounded: a store error loses the dead letters,
			// not the notification (whose runs are stored).
			if err := d.DeadLetters.DeadLetter(ctx, lost); err != nil {
				d.logger().Warn("unmatched alerts not kept as dead letters", "alerts", len(lost), "err", err)
			}
		}
	}
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
// WebhookDedupTTL). Errors: ErrUnknownHook (404), *AuthError (401),
// *ConfigError (500), *TooLargeError (413), *runtime.InputError (400).
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
	}
	if len(starts) == 0 {
		return nil, firstErr
	}
	input, err := webhookInput(body)
	if err != nil {
		return nil, err
	}
	for i := range starts {
		starts[i].Input = input
	}
	started, err := d.Starter.Start(ctx, starts)
	if err != nil {
		return nil, err
	}
	return &Result{Executions: started}, nil
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
