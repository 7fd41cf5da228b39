package cluster

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	sbruntime "github.com/starbook/starbook/runtime"
)

// TestExecutionsAfter pages through executions in embedded etcd with
// ListFilter.After: each page holds the executions older than the cursor,
// newest first, and following the last id of each page visits every match
// once, in order.
func TestExecutionsAfter(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s := NewStore(startSuiteEtcd(t).Client, "/after/")
	defer s.Close()
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	// 40 executions a second apart; every third one cancelled; one runbook
	// in ten is "rare".
	var all []*sbruntime.Execution // newest first, as listed
	for i := range 40 {
		runbook := []string{"a", "b"}[i%2]
		if i%10 == 3 {
			runbook = "rare"
		}
		at := t0.Add(time.Duration(i) * time.Second)
		e := &sbruntime.Execution{ID: fmt.Sprintf("01J%04d", i), Runbook: runbook, Version: "v1",
			Status: sbruntime.StatusPending, CreatedAt: at, UpdatedAt: at}
		if err := s.CreateExecution(ctx, e); err != nil {
			t.Fatal(err)
		}
		if i%3 == 0 {
			if _, err := s.Cancel(ctx, e.ID); err != nil {
				t.Fatal(err)
			}
			e.Status = sbruntime.StatusCancelled
		}
		all = append([]*sbruntime.Execution{e}, all...)
	}
	match := func(f ListFilter) []string {
		var ids []string
		for _, e := range all {
			if (f.Status == "" || e.Status == f.Status) && (f.Runbook == "" || e.Runbook == f.Runbook) &&
				(f.After == "" || e.ID < f.After) {
				ids = append(ids, e.ID)
			}
		}
		return ids
	}

	tests := []struct {
		name string
		f    ListFilter
	}{
		{"everything a page at a time", ListFilter{Limit: 1}},
		{"everything", ListFilter{Limit: 7}},
		{"from a cursor", ListFilter{Limit: 7, After: "01J0025"}},
		{"from a cursor no execution has", ListFilter{Limit: 6, After: "01J0025x"}},
		{"from past the newest", ListFilter{Limit: 9, After: "01K"}},
		{"from before the oldest", ListFilter{Limit: 9, After: "01J"}},
		{"runbook", ListFilter{Runbook: "a", Limit: 4}},
		{"status", ListFilter{Status: sbruntime.StatusCancelled, Limit: 5}},
		{"status and runbook", ListFilter{Status: sbruntime.StatusPending, Runbook: "b", Limit: 3}},
		{"sparse", ListFilter{Runbook: "rare", Limit: 2}},
		{"no match", ListFilter{Runbook: "none", Limit: 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := match(tt.f)
			f := tt.f
			var got []string
			for range len(all) + 1 {
				page, err := s.Executions(ctx, f)
				if err != nil {
					t.Fatal(err)
				}
				for _, e := range page {
					got = append(got, e.ID)
				}
				// Only the last page may be short.
				if len(page) < f.Limit {
					break
				}
				f.After = page[len(page)-1].ID
			}
			if !slices.Equal(got, want) {
				t.Errorf("paged %v\nwant  %v", got, want)
			}
		})
	}
}
