package observe

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/starbook/starbook/cluster"
	"github.com/starbook/starbook/snapshot"
)

// The periodic snapshot task's outcomes reach the metrics: a saved snapshot
// sets the last-success gauge to its time, a failed one counts a failure.
func TestSnapshotMetrics(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	emb, err := cluster.StartEmbedded(ctx, cluster.EmbeddedConfig{Dir: t.TempDir(), Fast: true, NoFsync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer emb.Close()
	root := t.TempDir()
	notADir := filepath.Join(root, "file")
	if err := os.WriteFile(notADir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name         string
		dir          string
		wantSaved    bool
		wantFailures float64
		until        func(m *Metrics) bool
	}{
		{"saved", filepath.Join(root, "snapshots"), true, 0,
			func(m *Metrics) bool { return testutil.ToFloat64(m.backups.lastSaved) > 0 }},
		{"failed", filepath.Join(notADir, "snapshots"), false, 1,
			func(m *Metrics) bool { return testutil.ToFloat64(m.backups.failures) > 0 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := NewMetrics()
			start := time.Now()
			p := snapshot.Periodic{Dir: tt.dir, Every: time.Hour, Keep: 1, OnSaved: m.SnapshotSaved, OnFailed: m.SnapshotFailed}
			tctx, stop := context.WithCancel(ctx)
			var wg sync.WaitGroup
			wg.Go(func() { p.Task(emb.Client)(tctx) })
			deadline := time.Now().Add(20 * time.Second)
			for !tt.until(m) && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond)
			}
			stop()
			wg.Wait()
			last := testutil.ToFloat64(m.backups.lastSaved)
			if saved := last >= float64(start.Unix()); saved != tt.wantSaved {
				t.Errorf("last success %v, want saved=%v", last, tt.wantSaved)
			}
			if got := testutil.ToFloat64(m.backups.failures); got != tt.wantFailures {
				t.Errorf("failures %v, want %v", got, tt.wantFailures)
			}
		})
	}
}
