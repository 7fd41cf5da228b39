package observe

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/starbook/starbook"
	"github.com/starbook/starbook/cluster"
)

// TestPausedGauge: the leader exports starbook_runbook_paused from the
// pauses stored: 1 for a paused runbook and for the pause of every runbook
// ("*", 0 when unset), 0 for a runbook once resumed; a node that does not
// lead exports none.
func TestPausedGauge(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	emb, err := cluster.StartEmbedded(ctx, cluster.EmbeddedConfig{Dir: t.TempDir(), Fast: true, NoFsync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer emb.Close()
	store := cluster.NewStore(emb.Client, "/g/")
	defer store.Close()
	if _, err := emb.Client.Put(ctx, "/g/runbooks/crash/current", "v1"); err != nil {
		t.Fatal(err)
	}
	audit := func() *starbook.AuditRecord { return &starbook.AuditRecord{Actor: "alice", Action: "runbook.pause"} }
	for _, rb := range []string{"crash", starbook.AllRunbooks} {
		if err := store.PutPause(ctx, &starbook.PauseState{Runbook: rb, Paused: true, By: "alice"}, audit()); err != nil {
			t.Fatal(err)
		}
	}
	m := NewMetrics()
	m.ReadPauses(store)
	if n := testutil.CollectAndCount(m.Registry, "starbook_runbook_paused"); n != 0 {
		t.Errorf("%d paused series before leading, want 0", n)
	}
	m.leading.Store(true)
	head := `
# HELP starbook_runbook_paused 1 while a runbook is paused by its own pause, 0 once resumed; runbook "*" is the pause of every runbook (leader only).
# TYPE starbook_runbook_paused gauge
`
	want := head + `starbook_runbook_paused{runbook="*"} 1
starbook_runbook_paused{runbook="crash"} 1
`
	if err := testutil.CollectAndCompare(m.Registry, strings.NewReader(want), "starbook_runbook_paused"); err != nil {
		t.Error(err)
	}
	for _, rb := range []string{"crash", starbook.AllRunbooks} {
		if _, err := store.DeletePause(ctx, rb, audit()); err != nil {
			t.Fatal(err)
		}
	}
	want = head + `starbook_runbook_paused{runbook="*"} 0
starbook_runbook_paused{runbook="crash"} 0
`
	if err := testutil.CollectAndCompare(m.Registry, strings.NewReader(want), "starbook_runbook_paused"); err != nil {
		t.Error(err)
	}
}
