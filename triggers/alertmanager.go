package triggers

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	sbruntime "github.com/starbook/starbook/runtime"
)

// AlertTrigger starts its runbook for every firing alert whose labels match
// all its matchers. The alert's resolution is delivered to that run as the
// signal "resolved".
//
// With Coalesce, the alerts whose GroupBy labels have the same values form
// a group, and a group has at most one run that has not ended: a new alert
// of a live group starts nothing and is delivered to that run as the
// signal "alert", its resolution as the signal "resolved".
type AlertTrigger struct {
	Matchers Matchers `json:"matchers"`
	Policy   Policy   `json:"policy,omitzero"`
	GroupBy  []string `json:"group_by,omitempty"` // label names that make an alert's group
	Coalesce bool     `json:"coalesce,omitempty"` // one run per group (needs GroupBy)
	Where    string   `json:"where,omitempty"`    // file:line of the declaration
}

// Matches reports whether the alert's labels match the trigger.
func (t *AlertTrigger) Matches(labels map[string]string) bool { return t.Matchers.Matches(labels) }

// Alertmanager payload limits and dedup lifetime.
const (
	// MaxAlertmanagerBody is the largest notification accepted, in bytes.
	MaxAlertmanagerBody = 4 << 20
	// AlertDedupTTL is how long a firing alert (fingerprint and startsAt)
	// is remembered: a re-sent notification within it starts nothing.
	AlertDedupTTL = 7 * 24 * time.Hour
)

// Notification is an Alertmanager webhook payload, version 4.
type Notification struct {
	Version           string            `json:"version"`
	GroupKey          string            `json:"groupKey"`
	TruncatedAlerts   int               `json:"truncatedAlerts"`
	Status            string            `json:"status"`
	Receiver          string            `json:"receiver"`
	GroupLabels       map[string]string `json:"groupLabels"`
	CommonLabels      map[string]string `json:"commonLabels"`
	CommonAnnotations map[string]string `json:"commonAnnotations"`
	ExternalURL       string            `json:"externalURL"`
	Alerts            []*Alert          `json:"alerts"`
}

// Alert is one alert of a notification.
type Alert struct {
	Status       string            `json:"status"`
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL"`
	Fingerprint  string            `json:"fingerprint"`
}

// Alert statuses.
const (
	AlertFiring   = "firing"
	AlertResolved = "resolved"
)

// wireAlert keeps the timestamps as text so that errors can name them.
type wireAlert struct {
	Status       *string           `json:"status"`
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     *string           `json:"startsAt"`
	EndsAt       *string           `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL"`
	Fingerprint  *string           `json:"fingerprint"`
}

type wireNotification struct {
	Version           *string           `json:"version"`
	GroupKey          string            `json:"groupKey"`
	TruncatedAlerts   int               `json:"truncatedAlerts"`
	Status            *string           `json:"status"`
	Receiver          string            `json:"receiver"`
	GroupLabels       map[string]string `json:"groupLabels"`
	CommonLabels      map[string]string `json:"commonLabels"`
	CommonAnnotations map[string]string `json:"commonAnnotations"`
	ExternalURL       string            `json:"externalURL"`
	Alerts            *[]*wireAlert     `json:"alerts"`
}

// DecodeNotification decodes and validates an Alertmanager webhook payload:
// version "4", a status, at least one alert, each with a status, labels, a
// fingerprint and valid RFC 3339 timestamps. Unknown fields are ignored (newer
// Alertmanagers add some). The error is an *InputError saying what is wrong.
func DecodeNotification(body []byte) (*Notification, error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, sbruntime.Inputf("empty body: want an Alertmanager webhook payload (JSON, version 4)")
	}
	var w wireNotification
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&w); err != nil {
		return nil, sbruntime.Inputf("invalid Alertmanager payload: %s", jsonError(err))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, sbruntime.Inputf("invalid Alertmanager payload: unexpected data after the JSON object")
	}
	switch {
	case w.Version == nil:
		return nil, sbruntime.Inputf("invalid Alertmanager payload: missing \"version\" (want \"4\")")
	case *w.Version != "4":
		return nil, sbruntime.Inputf("unsupported Alertmanager payload version %q: want \"4\"", *w.Version)
	case w.Status == nil:
		return nil, sbruntime.Inputf("invalid Alertmanager payload: missing \"status\"")
	case *w.Status != AlertFiring && *w.Status != AlertResolved:
		return nil, sbruntime.Inputf("invalid Alertmanager payload: status %q: want \"firing\" or \"resolved\"", *w.Status)
	case w.Alerts == nil:
		return nil, sbruntime.Inputf("invalid Alertmanager payload: missing \"alerts\"")
	case len(*w.Alerts) == 0:
		return nil, sbruntime.Inputf("invalid Alertmanager payload: \"alerts\" is empty")
	}
	n := &Notification{Version: *w.Version, GroupKey: w.GroupKey, TruncatedAlerts: w.TruncatedAlerts,
		Status: *w.Status, Receiver: w.Receiver, GroupLabels: w.GroupLabels, CommonLabels: w.CommonLabels,
		CommonAnnotations: w.CommonAnnotations, ExternalURL: w.ExternalURL, Alerts: make([]*Alert, len(*w.Alerts))}
	for i, wa := range *w.Alerts {
		a, err := decodeAlert(wa)
		if err != nil {
			return nil, sbruntime.Inputf("invalid Alertmanager payload: alerts[%d]: %v", i, err)
		}
		n.Alerts[i] = a
	}
	return n, nil
}

func decodeAlert(w *wireAlert) (*Alert, error) {
	if w == nil {
		return nil, errors.New("null alert")
	}
	switch {
	case w.Status == nil:
		return nil, errors.New("missing \"status\"")
	case *w.Status != AlertFiring && *w.Status != AlertResolved:
		return nil, fmt.Errorf("status %q: want \"firing\" or \"resolved\"", *w.Status)
	case len(w.Labels) == 0:
		return nil, errors.New("missing \"labels\"")
	case w.Fingerprint == nil || *w.Fingerprint == "":
		return nil, errors.New("missing \"fingerprint\"")
	case !isHex(*w.Fingerprint) || len(*w.Fingerprint) > 64:
		return nil, fmt.Errorf("fingerprint %q: want hexadecimal digits", *w.Fingerprint)
	case w.StartsAt == nil:
		return nil, errors.New("missing \"startsAt\"")
	}
	a := &Alert{Status: *w.Status, Labels: w.Labels, Annotations: w.Annotations,
		GeneratorURL: w.GeneratorURL, Fingerprint: strings.ToLower(*w.Fingerprint)}
	var err error
	if a.StartsAt, err = time.Parse(time.RFC3339Nano, *w.StartsAt); err != nil {
		return nil, fmt.Errorf("startsAt %q: want an RFC 3339 time", *w.StartsAt)
	}
	if a.StartsAt.IsZero() || a.StartsAt.Unix() <= 0 {
		return nil, fmt.Errorf("startsAt %q: want the time the alert started", *w.StartsAt)
	}
	if w.EndsAt != nil && *w.EndsAt != "" {
		if a.EndsAt, err = time.Parse(time.RFC3339Nano, *w.EndsAt); err != nil {
			return nil, fmt.Errorf("endsAt %q: want an RFC 3339 time", *w.EndsAt)
		}
	}
	if a.Status == AlertResolved && a.EndsAt.IsZero() {
		return nil, errors.New("resolved alert without \"endsAt\"")
	}
	return a, nil
}

func isHex(s string) bool {
	for _, r := range s {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'f' || r >= 'A' && r <= 'F') {
			return false
		}
	}
	return true
}

// jsonError rewords a decoding error without Go type names.
func jsonError(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		if te.Field == "" {
			return fmt.Sprintf("got a JSON %s where an object was expected", te.Value)
		}
		return fmt.Sprintf("field %q: got a JSON %s", te.Field, te.Value)
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return "unexpected end of JSON"
	}
	return strings.TrimPrefix(err.Error(), "json: ")
}

// alertEvent is a run's input, and the data of its "resolved" signal: the
// alert with its notification's context, in Alertmanager's field names.
type alertEvent struct {
	Status       string            `json:"status"`
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL"`
	Fingerprint  string            `json:"fingerprint"`
	Receiver     string            `json:"receiver"`
	GroupKey     string            `json:"groupKey"`
	GroupLabels  map[string]string `json:"groupLabels"`
	ExternalURL  string            `json:"externalURL"`
}

// Event returns the JSON a run started by alert a receives as its event.
func (n *Notification) Event(a *Alert) json.RawMessage {
	b, _ := json.Marshal(alertEvent{Status: a.Status, Labels: nonNilMap(a.Labels), Annotations: nonNilMap(a.Annotations),
		StartsAt: a.StartsAt, EndsAt: a.EndsAt, GeneratorURL: a.GeneratorURL, Fingerprint: a.Fingerprint,
		Receiver: n.Receiver, GroupKey: n.GroupKey, GroupLabels: nonNilMap(n.GroupLabels), ExternalURL: n.ExternalURL})
	return b
}

func nonNilMap(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}
