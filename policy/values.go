package policy

import (
	"encoding/json"
	"strings"

	"go.starlark.net/starlark"

	sbruntime "github.com/starbook/starbook/runtime"
)

// Runbook is what on_apply sees of a runbook: its declarations and what
// check finds it can reach. It reaches a policy as a frozen record
// (runbook.name, runbook["effects"]).
type Runbook struct {
	Name string `json:"name"`
	File string `json:"file"` // its main file
	// Owner is declared by a "# owner: NAME" comment line in the main
	// file (the first one counts); "" when there is none.
	Owner string `json:"owner"`
	// Triggers are its trigger.* declarations, each with a kind ("alert",
	// "cron", "webhook") and the declaration's fields.
	Triggers []map[string]any `json:"triggers"`
	// Limits bound the runs its triggers start: max_concurrent, rate
	// ({runs, per}), on_excess; empty when unbounded.
	Limits map[string]any `json:"limits"`
	SLO    any            `json:"slo"`    // slo() as declared, or None
	Budget any            `json:"budget"` // budget() as declared, or None
	// Secrets are the literal names it reads with secret().
	Secrets []string `json:"secrets"`
	// Effects are what its steps can do, as far as literal arguments
	// tell: http calls by method and host ("*" when not literal), Slack
	// messages by channel ("*" likewise).
	Effects []Reach `json:"effects"`
	// TestsPresent is true when NAME_test.star came with the apply.
	TestsPresent bool `json:"tests_present"`
}

// Reach is one effect a runbook can perform, where its code says so.
type Reach struct {
	Kind    string `json:"kind"`              // "http" or "slack"
	Method  string `json:"method,omitempty"`  // HTTP method, upper case
	Host    string `json:"host,omitempty"`    // HTTP host, "*" when not literal
	Channel string `json:"channel,omitempty"` // Slack channel, "*" when not literal
	User    string `json:"user,omitempty"`    // SSH user, "*" when not literal
	Name    string `json:"name,omitempty"`    // the runbook run_runbook starts, "*" when not literal
	File    string `json:"file"`
	Line    int    `json:"line"`
}

// Effect is what on_effect sees of the effect a step is about to perform.
type Effect struct {
	Kind      string `json:"kind"` // "http", "slack" or "ssh"
	Method    string `json:"method"`
	Host      string `json:"host"`
	User      string `json:"user"` // an SSH command's remote user
	Name      string `json:"name"` // the runbook a child start ("runbook") names
	URL       string `json:"url"`
	Channel   string `json:"channel"`
	Runbook   string `json:"runbook"`
	Execution string `json:"execution"`
	Position  string `json:"position"`
}

// Step is one recorded event of an execution's history, as on_effect sees
// it (the history argument is a list of them, in position order).
type Step struct {
	Position string `json:"position"`
	Kind     string `json:"kind"` // call, fan_out, approval, signal, sleep, ...
	Name     string `json:"name"`
	Status   string `json:"status"` // "ok" or "failed"
	Error    string `json:"error"`
	// Approved, for an approval, says whether it was granted, and By who
	// decided.
	Approved *bool    `json:"approved"`
	By       []string `json:"by"`
	Where    string   `json:"where"`
}

// stepValue is what on_effect sees of a recorded event (a Step), frozen.
func stepValue(ev *sbruntime.Event) starlark.Value {
	status := "ok"
	if ev.Failed() {
		status = "failed"
	}
	var approved starlark.Value = starlark.None
	by := starlark.NewList(nil)
	if ev.Kind == sbruntime.KindApproval && len(ev.Result) > 0 {
		var r sbruntime.ApprovalResult
		if json.Unmarshal(ev.Result, &r) == nil {
			approved = starlark.Bool(r.Approved)
			for _, u := range r.By {
				_ = by.Append(starlark.String(u))
			}
		}
	}
	return record(
		"position", starlark.String(ev.Position), "kind", starlark.String(ev.Kind), "name", starlark.String(ev.Name),
		"status", starlark.String(status), "error", starlark.String(ev.Error), "approved", approved, "by", by,
		"where", starlark.String(ev.Where))
}

// effectValue is what on_effect sees of eff, frozen.
func effectValue(e *Effect) starlark.Value {
	return record("kind", starlark.String(e.Kind), "method", starlark.String(e.Method), "host", starlark.String(e.Host),
		"url", starlark.String(e.URL), "channel", starlark.String(e.Channel), "user", starlark.String(e.User), "name", starlark.String(e.Name), "runbook", starlark.String(e.Runbook),
		"execution", starlark.String(e.Execution), "position", starlark.String(e.Position))
}

// record makes a frozen record of key, value pairs.
func record(kv ...any) starlark.Value {
	d := starlark.NewDict(len(kv) / 2)
	for i := 0; i < len(kv); i += 2 {
		_ = d.SetKey(starlark.String(kv[i].(string)), kv[i+1].(starlark.Value))
	}
	r := sbruntime.NewRecord(d)
	r.Freeze()
	return r
}

// OwnerOf returns the owner a runbook's main source declares with a
// "# owner: NAME" comment line, or "".
func OwnerOf(src string) string {
	for line := range strings.Lines(src) {
		line = strings.TrimSpace(line)
		rest, ok := strings.CutPrefix(line, "#")
		if !ok {
			continue
		}
		rest = strings.TrimSpace(rest)
		if v, ok := strings.CutPrefix(rest, "owner:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// DescribeTriggers fills rb's triggers, limits, slo and budget from the
// declarations apply collected (runtime.Bundle.Triggers, a triggers.Set).
func (rb *Runbook) DescribeTriggers(raw json.RawMessage) error {
	rb.Triggers, rb.Limits = []map[string]any{}, map[string]any{}
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	var set struct {
		Alerts   []map[string]any `json:"alerts"`
		Crons    []map[string]any `json:"crons"`
		Webhooks []map[string]any `json:"webhooks"`
		Policy   map[string]any   `json:"policy"`
		SLO      any              `json:"slo"`
		Budget   any              `json:"budget"`
	}
	if err := json.Unmarshal(raw, &set); err != nil {
		return err
	}
	for _, k := range []struct {
		kind string
		ts   []map[string]any
	}{{"alert", set.Alerts}, {"cron", set.Crons}, {"webhook", set.Webhooks}} {
		for _, t := range k.ts {
			t["kind"] = k.kind
			rb.Triggers = append(rb.Triggers, t)
		}
	}
	if set.Policy != nil {
		rb.Limits = set.Policy
	}
	rb.SLO, rb.Budget = set.SLO, set.Budget
	return nil
}
