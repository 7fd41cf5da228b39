package observe

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	sbruntime "github.com/starbook/starbook/runtime"
)

// TestExecutionDurationHistogram: an execution that ends is observed once,
// ended_at - created_at, under its runbook and status.
func TestExecutionDurationHistogram(t *testing.T) {
	m := NewMetrics()
	t0 := time.Date(2031, 3, 10, 12, 0, 0, 0, time.UTC)
	end := func(status sbruntime.Status, d time.Duration) *sbruntime.Execution {
		at := t0.Add(d)
		return &sbruntime.Execution{ID: "e", Runbook: "deploy", Status: status, Trigger: sbruntime.Trigger{Type: "api"},
			CreatedAt: t0, EndedAt: &at}
	}
	running := &sbruntime.Execution{ID: "e", Runbook: "deploy", Status: sbruntime.StatusRunning, CreatedAt: t0}
	m.ExecutionChanged(running, end(sbruntime.StatusCompleted, 90*time.Second))
	m.ExecutionChanged(end(sbruntime.StatusCompleted, 90*time.Second), end(sbruntime.StatusCompleted, 90*time.Second)) // no new end
	m.ExecutionChanged(running, end(sbruntime.StatusFailed, 2*time.Hour))
	want := `
# HELP starbook_execution_duration_seconds Time from an execution's creation to its end, by runbook and terminal status (counted by the leader).
# TYPE starbook_execution_duration_seconds histogram
starbook_execution_duration_seconds_bucket{runbook="deploy",status="completed",le="1"} 0
starbook_execution_duration_seconds_bucket{runbook="deploy",status="completed",le="5"} 0
starbook_execution_duration_seconds_bucket{runbook="deploy",status="completed",le="15"} 0
starbook_execution_duration_seconds_bucket{runbook="deploy",status="completed",le="30"} 0
starbook_execution_duration_seconds_bucket{runbook="deploy",status="completed",le="60"} 0
starbook_execution_duration_seconds_bucket{runbook="deploy",status="completed",le="120"} 1
starbook_execution_duration_seconds_bucket{runbook="deploy",status="completed",le="300"} 1
starbook_execution_duration_seconds_bucket{runbook="deploy",status="completed",le="600"} 1
starbook_execution_duration_seconds_bucket{runbook="deploy",status="completed",le="1800"} 1
starbook_execution_duration_seconds_bucket{runbook="deploy",status="completed",le="3600"} 1
starbook_execution_duration_seconds_bucket{runbook="deploy",status="completed",le="7200"} 1
starbook_execution_duration_seconds_bucket{runbook="deploy",status="completed",le="21600"} 1
starbook_execution_duration_seconds_bucket{runbook="deploy",status="completed",le="43200"} 1
starbook_execution_duration_seconds_bucket{runbook="deploy",status="completed",le="86400"} 1
starbook_execution_duration_seconds_bucket{runbook="deploy",status="completed",le="+Inf"} 1
starbook_execution_duration_seconds_sum{runbook="deploy",status="completed"} 90
starbook_execution_duration_seconds_count{runbook="deploy",status="completed"} 1
starbook_execution_duration_seconds_bucket{runbook="deploy",status="failed",le="1"} 0
starbook_execution_duration_seconds_bucket{runbook="deploy",status="failed",le="5"} 0
starbook_execution_duration_seconds_bucket{runbook="deploy",status="failed",le="15"} 0
starbook_execution_duration_seconds_bucket{runbook="deploy",status="failed",le="30"} 0
starbook_execution_duration_seconds_bucket{runbook="deploy",status="failed",le="60"} 0
starbook_execution_duration_seconds_bucket{runbook="deploy",status="failed",le="120"} 0
starbook_execution_duration_seconds_bucket{runbook="deploy",status="failed",le="300"} 0
starbook_execution_duration_seconds_bucket{runbook="deploy",status="failed",le="600"} 0
starbook_execution_duration_seconds_bucket{runbook="deploy",status="failed",le="1800"} 0
starbook_execution_duration_seconds_bucket{runbook="deploy",status="failed",le="3600"} 0
starbook_execution_duration_seconds_bucket{runbook="deploy",status="failed",le="7200"} 1
starbook_execution_duration_seconds_bucket{runbook="deploy",status="failed",le="21600"} 1
starbook_execution_duration_seconds_bucket{runbook="deploy",status="failed",le="43200"} 1
starbook_execution_duration_seconds_bucket{runbook="deploy",status="failed",le="86400"} 1
starbook_execution_duration_seconds_bucket{runbook="deploy",status="failed",le="+Inf"} 1
starbook_execution_duration_seconds_sum{runbook="deploy",status="failed"} 7200
starbook_execution_duration_seconds_count{runbook="deploy",status="failed"} 1
`
	if err := testutil.GatherAndCompare(m.Registry, strings.NewReader(want), "starbook_execution_duration_seconds"); err != nil {
		t.Error(err)
	}
}
