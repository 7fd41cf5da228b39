package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/starbook/starbook"
	"github.com/starbook/starbook/cluster"
	"github.com/starbook/starbook/policy"
	sbruntime "github.com/starbook/starbook/runtime"
)

// loadPolicies reads the stored policy set and makes it the node's.
func (n *Node) loadPolicies(ctx context.Context) error {
	stored, _, err := n.store.Policies(ctx)
	if err != nil {
		return err
	}
	n.setPolicies(stored)
	return nil
}

// watchPolicies follows the stored policy set until ctx is done.
func (n *Node) watchPolicies(ctx context.Context) {
	for ctx.Err() == nil {
		err := n.store.WatchPolicies(ctx, n.setPolicies)
		if ctx.Err() != nil {
			return
		}
		n.log.Warn("watch policies", "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// setPolicies loads stored as the node's policy set. A set that does not
// load here (PolicyApply checked it, so another version of starbook wrote
// it) leaves the previous one in force.
func (n *Node) setPolicies(stored *cluster.PolicySet) {
	if stored == nil || len(stored.Files) == 0 {
		n.policies.Store(nil)
		return
	}
	if cur := n.policies.Load(); cur != nil && cur.Version == stored.Version {
		return
	}
	set, err := policy.Load(stored.Files)
	if err != nil {
		n.log.Error("policy set does not load: the previous one stays in force", "version", stored.Version, "err", err)
		return
	}
	n.policies.Store(set)
	n.log.Info("policies loaded", "version", set.Version, "effect_policies", set.HasEffectPolicy())
}

// runPolicy returns the run-time policy of a run of e, nil when no policy
// defines on_effect (the engine then keeps no history for it).
func (n *Node) runPolicy(log *slog.Logger) sbruntime.Policy {
	set := n.policies.Load()
	if !set.HasEffectPolicy() {
		return nil
	}
	return &effectPolicy{set: set, judge: set.NewRun(), audit: n.store.RecordAudit, log: log}
}

// effectPolicy evaluates on_effect for the effects of one run's new steps
// (runtime.Policy: never for replayed ones). A refusal is audited.
type effectPolicy struct {
	set   *policy.Set
	judge *policy.Run
	audit func(context.Context, *starbook.AuditRecord) error
	log   *slog.Logger
}

var _ sbruntime.Policy = (*effectPolicy)(nil)

// Decide refuses with a *runtime.PolicyError on a denial, and when a
// policy fails (fail closed: a broken policy stops effects, not guards).
func (p *effectPolicy) Decide(ctx context.Context, e *sbruntime.Execution, pos string, eff sbruntime.Effect, history []*sbruntime.Event) error {
	d, err := p.judge.OnEffect(ctx, &policy.Effect{Kind: eff.Kind, Method: eff.Method, Host: eff.Host, User: eff.User, Name: eff.Runbook, URL: eff.URL,
		Channel: eff.Channel, Runbook: e.Runbook, Execution: e.ID, Position: pos}, history)
	var refusal *sbruntime.PolicyError
	var pe *policy.Error
	switch {
	case errors.As(err, &pe):
		refusal = &sbruntime.PolicyError{Policy: pe.Pos, Why: pe.Msg}
	case err != nil:
		return err // ctx done: the run is stopping and records nothing
	case d != nil:
		refusal = &sbruntime.PolicyError{Policy: d.Policy, Why: d.Why}
	default:
		return nil
	}
	what := eff.Kind + " " + eff.Method + " " + eff.URL
	if eff.Kind == "slack" {
		what = "slack " + eff.Channel
	}
	rec := &starbook.AuditRecord{Actor: "policy", Action: "policy.deny", Runbook: e.Runbook, Execution: e.ID,
		Detail: fmt.Sprintf("position %s: %s (policy set %s)", pos, what, p.set.Version), Outcome: starbook.AuditRefused,
		Error: refusal.Error()}
	if err := p.audit(ctx, rec); err != nil {
		p.log.Warn("audit a policy refusal", "position", pos, "err", err)
	}
	return refusal
}

// PolicyVersion is the version of the policy set this node enforces; ""
// for none.
func (n *Node) PolicyVersion() string {
	if set := n.policies.Load(); set != nil {
		return set.Version
	}
	return ""
}
