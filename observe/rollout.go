package observe

import "github.com/starbook/starbook"

// RolloutSource tells of rollout transitions (*cluster.Store).
type RolloutSource interface {
	// OnRollout calls fn with each transition committed until stop is called.
	OnRollout(fn func(r *starbook.Rollout, transition string)) (stop func())
}

// CountRollouts counts in starbook_rollout_transitions_total every rollout
// transition committed through store (an apply --canary, a promote or abort
// served by this node, the leader's decisions while it leads), until stop is
// called. Summed over the nodes, the series count every transition once.
func (m *Metrics) CountRollouts(store RolloutSource) (stop func()) {
	return store.OnRollout(func(r *starbook.Rollout, transition string) {
		m.rollouts.WithLabelValues(label(r.Runbook), transition).Inc()
	})
}
