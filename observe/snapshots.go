package observe

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// backupMetrics are the leader's periodic snapshots (package snapshot).
// The gauge stays 0 on a node that never saved one: alert on
// time() - starbook_snapshot_last_success_timestamp_seconds with max() over
// the nodes.
type backupMetrics struct {
	lastSaved prometheus.Gauge
	failures  prometheus.Counter
}

func newBackupMetrics() backupMetrics {
	return backupMetrics{
		lastSaved: prometheus.NewGauge(prometheus.GaugeOpts{Name: "starbook_snapshot_last_success_timestamp_seconds",
			Help: "Unix time of the last periodic snapshot this node saved (as leader); 0 for none."}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{Name: "starbook_snapshot_failures_total",
			Help: "Periodic snapshots this node failed to save or prune (as leader)."}),
	}
}

// SnapshotSaved records a periodic snapshot saved at at (snapshot.Periodic.OnSaved).
func (m *Metrics) SnapshotSaved(_ string, _ int64, at time.Time) {
	m.backups.lastSaved.Set(float64(at.UnixNano()) / 1e9)
}

// SnapshotFailed counts a failed periodic snapshot (snapshot.Periodic.OnFailed).
func (m *Metrics) SnapshotFailed(error) { m.backups.failures.Inc() }
