package service

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/starbook/starbook"
	"github.com/starbook/starbook/builtins"
	"github.com/starbook/starbook/cluster"
	sbruntime "github.com/starbook/starbook/runtime"
)

// TestMigrateMoved: an execution that takes a step between its replay and
// its re-pin is reported moved and keeps its record; applying again
// migrates it from where it now is.
func TestMigrateMoved(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	emb, err := cluster.StartEmbedded(ctx, cluster.EmbeddedConfig{Dir: t.TempDir(), Fast: true, NoFsync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer emb.Close()
	store := cluster.NewStore(emb.Client, "/moved/")
	defer store.Close()
	s := New(store, builtins.New(builtins.Options{}))
	v1 := "def one():\n    return 1\n\ndef main(event):\n    call(one)\n    return 1\n"
	v2 := "def one():\n    return 1\n\ndef main(event):\n    call(one)\n    return 2\n"
	if _, err := s.Apply(ctx, map[string]string{"mv.star": v1}); err != nil {
		t.Fatal(err)
	}
	// No node runs here: the execution stays pending, unclaimed.
	e, err := s.Start(ctx, "mv", nil, sbruntime.Trigger{Type: "manual"})
	if err != nil {
		t.Fatal(err)
	}
	// Between the replay and the re-pin a node claims it, records its
	// step and lets it go: its record and runnable key are as read.
	s.beforeRepin = func(ctx context.Context, id string) {
		lease, err := emb.Client.Grant(ctx, 60)
		if err != nil {
			t.Fatal(err)
		}
		c, err := store.Claim(ctx, id, "other", lease.ID)
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now().UTC()
		if err := c.Append(ctx, &sbruntime.Event{Position: "1", Kind: sbruntime.KindCall, Name: "one",
			ArgsHash: sbruntime.ArgsHash(sbruntime.KindCall, "one", nil, nil), Result: json.RawMessage(`1`), StartedAt: now, EndedAt: now}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Finish(ctx, sbruntime.Outcome{}); err != nil {
			t.Fatal(err)
		}
	}
	res, err := s.ApplyWith(ctx, map[string]string{"mv.star": v2}, starbook.ApplyOptions{Migrate: true, By: "bob"})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Migration) != 1 || res.Migration[0].Result != starbook.MigrationMoved {
		t.Fatalf("migration: %+v, want one moved", res.Migration)
	}
	got, history, err := store.Execution(ctx, e.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Version != e.Version || len(got.Migrations) != 0 || len(history) != 1 {
		t.Fatalf("moved execution: on %s, migrations %+v, %d events; want untouched on %s with its step",
			got.Version, got.Migrations, len(history), e.Version)
	}

	s.beforeRepin = nil
	res, err = s.ApplyWith(ctx, map[string]string{"mv.star": v2}, starbook.ApplyOptions{Migrate: true, By: "bob"})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Migration) != 1 || res.Migration[0].Result != starbook.MigrationMigrated || !res.Runbooks[0].Unchanged {
		t.Fatalf("applied again: %+v (runbooks %+v), want it migrated", res.Migration, res.Runbooks)
	}
	if got, _, err = store.Execution(ctx, e.ID); err != nil || got.Version != res.Runbooks[0].Version {
		t.Errorf("after the second apply: on %s, %v", got.Version, err)
	}
}
