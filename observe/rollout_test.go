package observe_test

import (
	"context"
	"testing"
	"time"

	"github.com/starbook/starbook"
	"github.com/starbook/starbook/cluster"
	"github.com/starbook/starbook/observe"
	sbruntime "github.com/starbook/starbook/runtime"
)

func TestRolloutTransitionsAreCounted(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	emb, err := cluster.StartEmbedded(ctx, cluster.EmbeddedConfig{Dir: t.TempDir(), Fast: true, NoFsync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer emb.Close()
	store := cluster.NewStore(emb.Client, "/metrics/")
	defer store.Close()
	m := observe.NewMetrics()
	defer m.CountRollouts(store)()
	bundle := func(tag string) *sbruntime.Bundle {
		files := map[string]string{"rb.star": "def main(event):\n    return \"" + tag + "\"\n"}
		return &sbruntime.Bundle{Name: "rb", Main: "rb.star", Files: files, Version: sbruntime.BundleVersion(files)}
	}
	if _, _, err := store.PutBundles(ctx, []*sbruntime.Bundle{bundle("1")}); err != nil {
		t.Fatal(err)
	}
	spec := starbook.CanarySpec{Percent: 10, Runs: 1}
	for i, end := range []string{starbook.TransitionPromoted, starbook.TransitionAborted} {
		if _, _, err := store.PutCanary(ctx, []*sbruntime.Bundle{bundle(string(rune('a' + i)))}, spec, "test"); err != nil {
			t.Fatal(err)
		}
		if _, err := store.EndRollout(ctx, "rb", end, "test", "test", 0); err != nil {
			t.Fatal(err)
		}
	}
	mfs, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "starbook_rollout_transitions_total" {
			continue
		}
		for _, mt := range mf.GetMetric() {
			for _, l := range mt.GetLabel() {
				if l.GetName() == "transition" {
					got[l.GetValue()] = mt.GetCounter().GetValue()
				}
			}
		}
	}
	want := map[string]float64{"started": 2, "promoted": 1, "aborted": 1}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("transitions %v, want %v", got, want)
			break
		}
	}
}
