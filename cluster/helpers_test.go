package cluster

import (
	"context"
	"errors"
	"testing"
	"time"

	sbruntime "github.com/starbook/starbook/runtime"
)

func positions(history []*sbruntime.Event) []string {
	var ps []string
	for _, ev := range history {
		ps = append(ps, ev.Position)
	}
	return ps
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 20s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestActiveIndexOnlyWithALimit(t *testing.T) {
	emb := startSuiteEtcd(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s := NewStore(emb.Client, "/activeindex/")
	defer s.Close()
	create := func(id string) error {
		now := time.Now().UTC()
		return s.CreateExecution(ctx, &sbruntime.Execution{ID: id, Runbook: "r", Version: "v1",
			Status: sbruntime.StatusPending, Trigger: sbruntime.Trigger{Type: "manual"}, CreatedAt: now, UpdatedAt: now})
	}
	steps := []struct {
		limit  int
		id     string
		active int // counted after the create
		refuse bool
	}{
		{limit: 0, id: "a", active: 0},
		{limit: 0, id: "b", active: 0},
		{limit: 2, id: "c", active: 1}, // a and b are not counted
		{limit: 2, id: "d", active: 2},
		{limit: 2, id: "e", active: 2, refuse: true},
		{limit: 0, id: "f", active: 2},
	}
	for _, st := range steps {
		s.SetActiveLimit(st.limit)
		err := create(st.id)
		var le *sbruntime.LimitError
		if st.refuse != errors.As(err, &le) || !st.refuse && err != nil {
			t.Fatalf("create %s with limit %d: %v, want refused %v", st.id, st.limit, err, st.refuse)
		}
		if n, err := s.ActiveExecutions(ctx, "r"); err != nil || n != st.active {
			t.Fatalf("after creating %s with limit %d: %d active, %v; want %d", st.id, st.limit, n, err, st.active)
		}
	}
}
