package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	sbruntime "github.com/starbook/starbook/runtime"
)

// TestPendingWaitsPage pages through pending waits in execution id order,
// then position, with every kind of cursor, compared with the full list;
// sleeps are left out, approvals come with what they received (only the
// page's are read) and signals with their execution's runbook.
func TestPendingWaitsPage(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s := NewStore(startSuiteEtcd(t).Client, "/waitpage/")
	defer s.Close()
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	put := func(key string, v any) {
		data, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.cli.Put(ctx, key, string(data)); err != nil {
			t.Fatal(err)
		}
	}
	var want []string // cursors, in order
	runbookOf := map[string]string{}
	for i := range 12 {
		id := fmt.Sprintf("01JW%02d", i)
		runbook := fmt.Sprintf("rb%d", i%4)
		runbookOf[id] = runbook
		e := &sbruntime.Execution{ID: id, Runbook: runbook, Version: "v1", Status: sbruntime.StatusPending, CreatedAt: t0, UpdatedAt: t0}
		if err := s.CreateExecution(ctx, e); err != nil {
			t.Fatal(err)
		}
		since := t0.Add(time.Duration(12-i) * time.Minute) // the newest execution waits longest
		approval := func(pos string) {
			req, _ := json.Marshal(sbruntime.ApprovalRequest{Message: "ok?", Required: 2, Runbook: runbook})
			put(s.k.wait(id, pos), &sbruntime.Wait{Execution: id, Position: pos, Kind: sbruntime.KindApproval, Detail: req, Since: since})
			want = append(want, WaitCursor(id, pos))
		}
		switch i % 3 {
		case 0:
			approval("1")
			put(s.k.approval(id, "1", "bob"), sbruntime.ApprovalDecision{User: "bob", Decision: sbruntime.DecisionApprove, At: t0.Add(2 * time.Second)})
			put(s.k.approval(id, "1", "ann"), sbruntime.ApprovalDecision{User: "ann", Decision: sbruntime.DecisionApprove, At: t0.Add(time.Second)})
		case 1:
			put(s.k.wait(id, "2"), &sbruntime.Wait{Execution: id, Position: "2", Kind: sbruntime.KindSignal, Name: "go", Since: since})
			want = append(want, WaitCursor(id, "2"))
		case 2:
			put(s.k.wait(id, "1"), &sbruntime.Wait{Execution: id, Position: "1", Kind: sbruntime.KindSleep, Since: since})
		}
		if i == 4 { // two waits of one execution
			approval("3/1")
		}
	}
	tests := []struct {
		name  string
		limit int
		after string
	}{
		{"a wait a page", 1, ""},
		{"pages of two", 2, ""},
		{"pages of five", 5, ""},
		{"one page", 100, ""},
		{"from a cursor", 2, want[3]},
		{"from between an execution's waits", 1, WaitCursor("01JW04", "2")},
		{"from a cursor no wait has", 3, "01JW05x/1"},
		{"from past the last", 3, "01JX"},
		{"all at once", 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var expect []string
			for _, c := range want {
				if c > tt.after {
					expect = append(expect, c)
				}
			}
			after := tt.after
			var got []string
			for range len(want) + 1 {
				page, err := s.PendingWaitsPage(ctx, tt.limit, after)
				if err != nil {
					t.Fatal(err)
				}
				for _, p := range page {
					got = append(got, WaitCursor(p.Wait.Execution, p.Wait.Position))
					if p.Runbook != runbookOf[p.Wait.Execution] {
						t.Errorf("%s: runbook %q, want %q", p.Wait.Execution, p.Runbook, runbookOf[p.Wait.Execution])
					}
					if p.Wait.Kind == sbruntime.KindApproval && p.Wait.Position == "1" {
						if len(p.Approvals) != 2 || p.Approvals[0].User != "ann" || p.Approvals[1].User != "bob" {
							t.Errorf("%s: approvals %+v, want ann's then bob's", p.Wait.Execution, p.Approvals)
						}
					}
				}
				if tt.limit == 0 || len(page) < tt.limit {
					break
				}
				after = WaitCursor(page[len(page)-1].Wait.Execution, page[len(page)-1].Wait.Position)
			}
			if !slices.Equal(got, expect) {
				t.Errorf("paged %q\nwant  %q", got, expect)
			}
		})
	}
	t.Run("all oldest first", func(t *testing.T) {
		all, err := s.PendingWaits(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(all) != len(want) || !slices.IsSortedFunc(all, func(a, b *PendingWait) int { return a.Wait.Since.Compare(b.Wait.Since) }) {
			t.Errorf("PendingWaits: %d waits, sorted by since %v", len(all), len(all) == len(want))
		}
	})
}
