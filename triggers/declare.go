package triggers

import (
	"fmt"
	"sort"
	"strings"
)

// NewAlert returns an alert trigger matching labels exactly and every matcher
// (Alertmanager syntax). It needs at least one matcher: a trigger matching
// every alert would start its runbook for any alert at all.
func NewAlert(labels map[string]string, matchers []string) (*AlertTrigger, error) {
	t := &AlertTrigger{}
	names := make([]string, 0, len(labels))
	for name := range labels {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		m, err := NewMatcher(name, MatchEqual, labels[name])
		if err != nil {
			return nil, err
		}
		t.Matchers = append(t.Matchers, m)
	}
	for _, s := range matchers {
		m, err := ParseMatcher(s)
		if err != nil {
			return nil, err
		}
		t.Matchers = append(t.Matchers, m)
	}
	if len(t.Matchers) == 0 {
		return nil, fmt.Errorf("no label matcher: give labels (alertname=\"...\") or matchers=[...]; a trigger matching every alert is refused")
	}
	return t, nil
}

// NewWebhook returns a webhook trigger. Exactly one of secretEnv (HMAC
// signature) and tokenEnv (bearer token) is required: an unauthenticated
// webhook is refused.
func NewWebhook(name, secretEnv, tokenEnv string, maxBodyBytes int64) (*WebhookTrigger, error) {
	if !validHookName(name) {
		return nil, fmt.Errorf("webhook name %q: want lower-case letters, digits, '-' or '_' (at most 100)", name)
	}
	if name == "alertmanager" {
		return nil, fmt.Errorf("webhook name %q is reserved for Alertmanager notifications: use trigger.alert", name)
	}
	switch {
	case secretEnv == "" && tokenEnv == "":
		return nil, fmt.Errorf("webhook %q has no authentication: give secret_env= (HMAC-SHA256 signature) or token_env= (bearer token)", name)
	case secretEnv != "" && tokenEnv != "":
		return nil, fmt.Errorf("webhook %q: give secret_env= or token_env=, not both", name)
	}
	for _, env := range []string{secretEnv, tokenEnv} {
		if env != "" && !validEnvName(env) {
			return nil, fmt.Errorf("webhook %q: %q is not an environment variable name", name, env)
		}
	}
	if maxBodyBytes < 0 || maxBodyBytes > MaxWebhookBody {
		return nil, fmt.Errorf("webhook %q: max_body_bytes=%d: want 1 to %d", name, maxBodyBytes, MaxWebhookBody)
	}
	return &WebhookTrigger{Name: name, SecretEnv: secretEnv, TokenEnv: tokenEnv, MaxBodyBytes: maxBodyBytes}, nil
}

// NewPolicy validates a trigger's policy arguments; zero values mean unset.
func NewPolicy(maxConcurrent int, rate, onExcess string) (Policy, error) {
	p := Policy{MaxConcurrent: maxConcurrent, OnExcess: onExcess}
	if maxConcurrent < 0 {
		return p, fmt.Errorf("max_concurrent=%d: want a positive number", maxConcurrent)
	}
	if rate != "" {
		r, err := ParseRate(rate)
		if err != nil {
			return p, err
		}
		p.Rate = r
	}
	switch onExcess {
	case "", OnExcessQueue, OnExcessDrop:
	default:
		return p, fmt.Errorf("on_excess=%q: want \"queue\" or \"drop\"", onExcess)
	}
	if onExcess != "" && !p.Limited() {
		return p, fmt.Errorf("on_excess=%q needs max_concurrent= or rate=", onExcess)
	}
	return p, nil
}

// AddAlert adds an alert trigger declared at where.
func (s *Set) AddAlert(t *AlertTrigger, where string) error {
	if err := s.Policy.merge(t.Policy); err != nil {
		return err
	}
	t.Where = where
	s.Alerts = append(s.Alerts, t)
	return nil
}

// AddCron adds a cron trigger declared at where.
func (s *Set) AddCron(t *CronTrigger, where string) error {
	if err := s.Policy.merge(t.Policy); err != nil {
		return err
	}
	t.Where = where
	s.Crons = append(s.Crons, t)
	return nil
}

// AddWebhook adds a webhook trigger declared at where; a runbook declares a
// webhook name once.
func (s *Set) AddWebhook(t *WebhookTrigger, where string) error {
	for _, o := range s.Webhooks {
		if o.Name == t.Name {
			return fmt.Errorf("webhook %q is already declared at %s", t.Name, o.Where)
		}
	}
	if err := s.Policy.merge(t.Policy); err != nil {
		return err
	}
	t.Where = where
	s.Webhooks = append(s.Webhooks, t)
	return nil
}

func validHookName(s string) bool {
	if s == "" || len(s) > 100 {
		return false
	}
	for i, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
		case (r == '-' || r == '_' || r == '.') && i > 0:
		default:
			return false
		}
	}
	return true
}

func validEnvName(s string) bool {
	return s != "" && !strings.ContainsAny(s, "= \t\n\x00")
}

// SetGrouping validates and sets t's group_by and coalesce arguments:
// group_by is a non-empty list of distinct label names, and coalesce=True
// needs it (a group is what a run coalesces).
func (t *AlertTrigger) SetGrouping(groupBy []string, coalesce bool) error {
	if groupBy != nil && len(groupBy) == 0 {
		return fmt.Errorf("group_by=[]: give at least one label name, such as group_by=[\"alertname\", \"service\"]")
	}
	seen := map[string]bool{}
	for i, name := range groupBy {
		if !validLabelName(name) {
			return fmt.Errorf("group_by[%d]=%q: want a label name (letters, digits and '_', not starting with a digit)", i, name)
		}
		if seen[name] {
			return fmt.Errorf("group_by[%d]=%q: the label is already in group_by", i, name)
		}
		seen[name] = true
	}
	if coalesce && len(groupBy) == 0 {
		return fmt.Errorf("coalesce=True needs group_by=[...]: the labels whose values make an alert's group")
	}
	t.GroupBy, t.Coalesce = groupBy, coalesce
	return nil
}
