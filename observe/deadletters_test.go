package observe

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/starbook/starbook/cluster"
	"github.com/starbook/starbook/triggers"
)

// TestDeadLettersGauge: the leader exports starbook_dead_letters by runbook
// and reason from the dead letters stored; a node that does not lead
// exports none.
func TestDeadLettersGauge(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	emb, err := cluster.StartEmbedded(ctx, cluster.EmbeddedConfig{Dir: t.TempDir(), Fast: true, NoFsync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer emb.Close()
	store := cluster.NewStore(emb.Client, "/g/")
	defer store.Close()
	tr := cluster.NewTriggers(store, nil, nil)
	if err := tr.DeadLetter(ctx, []triggers.Unstarted{
		{Source: "alertmanager", Reason: "no_runbook", DedupKey: "aa/1", Payload: []byte(`{"a":1}`)},
		{Source: "alertmanager", Reason: "no_runbook", DedupKey: "bb/1", Payload: []byte(`{"a":2}`)},
		{Source: "alertmanager", Reason: "no_runbook", DedupKey: "aa/1", Payload: []byte(`{"a":1}`)}, // a repeat
		{Source: "webhook:deploy", Reason: "refused", Runbook: "deploy", Payload: []byte(`{}`)},
	}); err != nil {
		t.Fatal(err)
	}
	m := NewMetrics()
	if n := testutil.CollectAndCount(m.Registry, "starbook_dead_letters"); n != 0 {
		t.Errorf("%d dead-letter series before leading, want 0", n)
	}
	lctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	task := m.LeaderTask(store)
	go func() { defer close(done); task(lctx) }()
	defer func() { stop(); <-done }()
	want := `
# HELP starbook_dead_letters Dead letters not acknowledged, by runbook ("-" for an event no runbook matched) and reason (leader only).
# TYPE starbook_dead_letters gauge
starbook_dead_letters{reason="no_runbook",runbook="-"} 2
starbook_dead_letters{reason="refused",runbook="deploy"} 1
`
	for {
		err := testutil.CollectAndCompare(m.Registry, strings.NewReader(want), "starbook_dead_letters")
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("gauge never matched: %v", err)
		}
		time.Sleep(5 * time.Millisecond) // until the task marks the node leading
	}
}
