package policy

import (
	"encoding/json"
	"strings"

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
	File    string `json:"file"`
	Line    int    `json:"line"`
}

// Effect is what on_effect sees of the effect a step is about to perform.
type Effect struct {
	Kind      string `json:"kind"` // "http" or "slack"
	Method    string `json:"method"`
	Host      string `json:"host"`
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

// Steps converts recorded events to what on_effect sees.
func Steps(history []*sbruntime.Event) []*Step {
	out := make([]*Step, 0, len(history))
	for _, ev := range history {
		s := &Step{Position: ev.Position, Kind: ev.Kind, Name: ev.Name, Status: "ok", Error: ev.Error, Where: ev.Where}
		if ev.Failed() {
			s.Status = "failed"
		}
		if ev.Kind == sbruntime.KindApproval && len(ev.Result) > 0 {
			var r sbruntime.ApprovalResult
			if json.Unmarshal(ev.Result, &r) == nil {
				s.Approved, s.By = &r.Approved, r.By
			}
		}
		out = append(out, s)
	}
	return out
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
