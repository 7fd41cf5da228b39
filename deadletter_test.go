package starbook_test

import (
	"testing"

	"github.com/starbook/starbook"
	sbruntime "github.com/starbook/starbook/runtime"
)

// TestDeadLetterReason: each way an execution ends maps to its reason; a
// completed run, a user's cancel and a run not ended are no dead letter.
func TestDeadLetterReason(t *testing.T) {
	for _, tc := range []struct {
		status sbruntime.Status
		err    string
		want   string
	}{
		{sbruntime.StatusFailed, "boom", starbook.ReasonFailed},
		{sbruntime.StatusFailed, "compensation_failed: undo broke\noriginal error: boom", starbook.ReasonCompensationFailed},
		{sbruntime.StatusStuck, "[SB1001] position 2 ...", starbook.ReasonStuck},
		{sbruntime.StatusCancelled, "dropped: max_concurrent 1 reached", starbook.ReasonDropped},
		{sbruntime.StatusCancelled, "budget: steps_per_day 10000 reached", starbook.ReasonBudget},
		{sbruntime.StatusCancelled, "cancelled", ""},
		{sbruntime.StatusCompleted, "", ""},
		{sbruntime.StatusWaiting, "", ""},
		{sbruntime.StatusPending, "queued: rate 10/m reached", ""},
	} {
		e := &sbruntime.Execution{Status: tc.status, Error: tc.err}
		if got := starbook.DeadLetterReason(e); got != tc.want {
			t.Errorf("%s %q: reason %q, want %q", tc.status, tc.err, got, tc.want)
		}
	}
}
