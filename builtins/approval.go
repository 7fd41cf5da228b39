package builtins

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	sltime "go.starlark.net/lib/time"
	"go.starlark.net/starlark"
	"go.starlark.net/syntax"

	sbruntime "github.com/starbook/starbook/runtime"
)

// maxApprovers bounds the approvers list and required=.
const maxApprovers = 100

// waitForApprovalBuiltin implements
// wait_for_approval(message, approvers=[], channel=None, timeout=None,
// on_timeout="reject", required=1): park until enough authorised people
// approve, one rejects, or the deadline applies on_timeout; return an
// approval value that is truthy iff approved.
func waitForApprovalBuiltin(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var (
		message   string
		approvers *starlark.List
		channel   starlark.Value = starlark.None
		timeout   durationArg
		onTimeout starlark.Value = starlark.String(sbruntime.OnTimeoutReject)
		required                 = 1
	)
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "message", &message, "approvers?", &approvers,
		"channel?", &channel, "timeout?", &timeout, "on_timeout?", &onTimeout, "required?", &required); err != nil {
		return nil, err
	}
	if strings.TrimSpace(message) == "" {
		return nil, fmt.Errorf("%s: message must not be empty", b.Name())
	}
	req := sbruntime.ApprovalRequest{Message: message, Required: required}
	var err error
	if req.Approvers, err = stringList(b.Name()+": approvers", approvers); err != nil {
		return nil, err
	}
	if req.Channel, err = optionalString(b.Name()+": channel", channel); err != nil {
		return nil, err
	}
	if required < 1 || required > maxApprovers {
		return nil, fmt.Errorf("%s: required must be between 1 and %d, got %d", b.Name(), maxApprovers, required)
	}
	if n := len(req.Approvers); n > 0 && required > n && !anyGroup(req.Approvers) {
		return nil, fmt.Errorf("%s: required=%d but only %d approvers are listed", b.Name(), required, n)
	}
	if timeout.set && timeout.d == 0 {
		return nil, fmt.Errorf("%s: timeout must be positive", b.Name())
	}
	switch x := onTimeout.(type) {
	case starlark.String:
		switch s := string(x); s {
		case sbruntime.OnTimeoutReject, sbruntime.OnTimeoutApprove, sbruntime.OnTimeoutFail:
			req.OnTimeout = s
		default:
			return nil, fmt.Errorf(`%s: on_timeout must be "reject", "approve", "fail" or escalate(...), got %q`, b.Name(), s)
		}
	case *escalation:
		if !timeout.set {
			return nil, fmt.Errorf("%s: on_timeout=escalate(...) needs a timeout= for the first round", b.Name())
		}
		req.OnTimeout = sbruntime.OnTimeoutEscalate
		e := x.e
		req.Escalation = &e
	default:
		return nil, fmt.Errorf("%s: on_timeout must be a string or escalate(...), got %s", b.Name(), onTimeout.Type())
	}
	if timeout.set {
		req.Timeout = timeout.d.String()
	}
	if e := sbruntime.ExecutionFrom(th); e != nil {
		req.Runbook = e.Runbook
		// Who started the run by hand (or through the API with a token):
		// the two-person rule does not count their approval.
		if e.Trigger.Type == "manual" || e.Trigger.Type == "api" {
			req.Requester = e.Trigger.Source
		}
	}
	detail, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	spec := sbruntime.WaitSpec{
		StepSpec: sbruntime.StepSpec{Kind: sbruntime.KindApproval, Name: firstLineOf(message), Args: args, Kwargs: kwargs},
		Timeout:  timeout.d,
		Detail:   detail,
	}
	if timeout.set {
		// The deadline Await sets is now+timeout on the engine clock; the
		// timeout outcome records that moment.
		first := timeoutOutcome(req.OnTimeout)
		if req.Escalation != nil {
			first = req.Escalation.Then
		}
		deadline := sbruntime.Now(th).Add(timeout.d)
		if first == sbruntime.OnTimeoutFail {
			spec.TimeoutError = sbruntime.ApprovalTimeoutError(message, timeout.d)
		} else {
			spec.OnTimeout = sbruntime.ApprovalTimeout(first, deadline)
		}
	}
	v, err := sbruntime.Await(th, spec)
	if err != nil {
		return nil, err
	}
	return approvalFromValue(v)
}

func timeoutOutcome(onTimeout string) string {
	if onTimeout == sbruntime.OnTimeoutEscalate {
		return sbruntime.OnTimeoutReject
	}
	return onTimeout
}

func firstLineOf(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	if r := []rune(s); len(r) > 60 {
		s = string(r[:57]) + "..."
	}
	return s
}

func anyGroup(list []string) bool {
	for _, a := range list {
		if sbruntime.IsSlackGroup(a) {
			return true
		}
	}
	return false
}

func stringList(what string, l *starlark.List) ([]string, error) {
	if l == nil {
		return nil, nil
	}
	if l.Len() > maxApprovers {
		return nil, fmt.Errorf("%s: at most %d entries", what, maxApprovers)
	}
	out := make([]string, 0, l.Len())
	for i := 0; i < l.Len(); i++ {
		s, ok := starlark.AsString(l.Index(i))
		if !ok || strings.TrimSpace(s) == "" {
			return nil, fmt.Errorf("%s[%d]: want a non-empty string, got %s", what, i, l.Index(i).String())
		}
		out = append(out, strings.TrimSpace(s))
	}
	return out, nil
}

func optionalString(what string, v starlark.Value) (string, error) {
	if v == nil || v == starlark.None {
		return "", nil
	}
	s, ok := starlark.AsString(v)
	if !ok {
		return "", fmt.Errorf("%s: want a string, got %s", what, v.Type())
	}
	return strings.TrimSpace(s), nil
}

// escalation is the value escalate(...) returns, for on_timeout=.
type escalation struct{ e sbruntime.Escalation }

var _ starlark.Value = (*escalation)(nil)

func (e *escalation) String() string {
	return fmt.Sprintf("escalate(channel=%q, approvers=%q, timeout=%q, then=%q)",
		e.e.Channel, e.e.Approvers, e.e.Timeout.String(), e.e.Then)
}
func (e *escalation) Type() string          { return "escalation" }
func (e *escalation) Freeze()               {}
func (e *escalation) Truth() starlark.Bool  { return true }
func (e *escalation) Hash() (uint32, error) { return starlark.String(e.String()).Hash() }

// escalateBuiltin implements escalate(channel=None, approvers=None, timeout,
// then="reject"): on_timeout= value that re-asks the approval in another
// channel or of other approvers, with a second deadline that applies then.
func escalateBuiltin(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var (
		channel   starlark.Value = starlark.None
		approvers *starlark.List
		timeout   durationArg
		then      = sbruntime.OnTimeoutReject
	)
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "channel?", &channel, "approvers?", &approvers,
		"timeout", &timeout, "then?", &then); err != nil {
		return nil, err
	}
	var e escalation
	var err error
	if e.e.Channel, err = optionalString(b.Name()+": channel", channel); err != nil {
		return nil, err
	}
	if e.e.Approvers, err = stringList(b.Name()+": approvers", approvers); err != nil {
		return nil, err
	}
	if e.e.Channel == "" && approvers == nil {
		return nil, fmt.Errorf("%s: name a channel= or approvers= to escalate to", b.Name())
	}
	if !timeout.set {
		return nil, fmt.Errorf("%s: timeout= is required: how long the second round waits", b.Name())
	}
	if timeout.d == 0 {
		return nil, fmt.Errorf("%s: timeout must be positive", b.Name())
	}
	e.e.Timeout = timeout.d
	switch then {
	case sbruntime.OnTimeoutReject, sbruntime.OnTimeoutApprove, sbruntime.OnTimeoutFail:
		e.e.Then = then
	default:
		return nil, fmt.Errorf(`%s: then must be "reject", "approve" or "fail", got %q`, b.Name(), then)
	}
	return &e, nil
}

// Approval is the value wait_for_approval returns: truthy iff approved, with
// attributes approved, decision, by, at, comment, via and decisions. It is
// built from the recorded JSON, so a replay sees the same value.
type Approval struct {
	r         sbruntime.ApprovalResult
	raw       json.RawMessage
	decisions *starlark.List
}

var (
	_ starlark.HasAttrs   = (*Approval)(nil)
	_ starlark.Comparable = (*Approval)(nil)
	_ sbruntime.JSONValue = (*Approval)(nil)
)

// approvalFromValue turns the recorded result (decoded as a record) back
// into an Approval.
func approvalFromValue(v starlark.Value) (*Approval, error) {
	raw, err := sbruntime.Encode(v)
	if err != nil {
		return nil, fmt.Errorf("wait_for_approval: recorded result: %w", err)
	}
	return NewApproval(raw)
}

// NewApproval builds the Approval of a recorded result.
func NewApproval(raw json.RawMessage) (*Approval, error) {
	a := &Approval{raw: raw}
	if err := json.Unmarshal(raw, &a.r); err != nil {
		return nil, fmt.Errorf("wait_for_approval: recorded result: %w", err)
	}
	d, err := sbruntime.Decode(mustJSON(a.r.Decisions))
	if err != nil {
		return nil, err
	}
	l, ok := d.(*starlark.List)
	if !ok {
		l = starlark.NewList(nil)
	}
	l.Freeze()
	a.decisions = l
	return a, nil
}

func mustJSON(v any) json.RawMessage {
	if v == nil {
		return json.RawMessage("[]")
	}
	b, _ := json.Marshal(v)
	return b
}

func (a *Approval) String() string {
	return fmt.Sprintf("approval(approved=%s, decision=%q, by=%s, via=%q)",
		starlark.Bool(a.r.Approved), a.r.Decision, a.by().String(), a.r.Via)
}
func (a *Approval) Type() string          { return "approval" }
func (a *Approval) Freeze()               {}
func (a *Approval) Truth() starlark.Bool  { return starlark.Bool(a.r.Approved) }
func (a *Approval) Hash() (uint32, error) { return 0, fmt.Errorf("unhashable type: approval") }

// JSON implements sbruntime.JSONValue: the recorded result.
func (a *Approval) JSON() json.RawMessage { return a.raw }

func (a *Approval) by() *starlark.List {
	elems := make([]starlark.Value, len(a.r.By))
	for i, u := range a.r.By {
		elems[i] = starlark.String(u)
	}
	l := starlark.NewList(elems)
	l.Freeze()
	return l
}

var approvalAttrs = []string{"approved", "at", "by", "comment", "decision", "decisions", "via"}

// Attr implements starlark.HasAttrs.
func (a *Approval) Attr(name string) (starlark.Value, error) {
	switch name {
	case "approved":
		return starlark.Bool(a.r.Approved), nil
	case "decision":
		return starlark.String(a.r.Decision), nil
	case "by":
		return a.by(), nil
	case "at":
		return sltime.Time(a.r.At), nil
	case "comment":
		return starlark.String(a.r.Comment), nil
	case "via":
		return starlark.String(a.r.Via), nil
	case "decisions":
		return a.decisions, nil
	}
	return nil, nil
}

// AttrNames implements starlark.HasAttrs.
func (a *Approval) AttrNames() []string {
	names := append([]string(nil), approvalAttrs...)
	sort.Strings(names)
	return names
}

// CompareSameType compares approvals by their recorded JSON (== and != only).
func (a *Approval) CompareSameType(op syntax.Token, y starlark.Value, depth int) (bool, error) {
	eq := string(a.raw) == string(y.(*Approval).raw)
	switch op {
	case syntax.EQL:
		return eq, nil
	case syntax.NEQ:
		return !eq, nil
	}
	return false, fmt.Errorf("%s not supported for approvals", op)
}
