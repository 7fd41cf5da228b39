package cluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/starbook/starbook"
	sbruntime "github.com/starbook/starbook/runtime"
)

// parkOnSignal records one step at position 1 and parks the fixture's
// execution on wait_for_signal("go") at position 2.
func (f *fencingFixture) parkOnSignal(t *testing.T) {
	t.Helper()
	c := f.claim(t, f.s, "a", f.grant(t))
	now := time.Now().UTC()
	if err := c.Append(f.ctx, &sbruntime.Event{Position: "1", Kind: sbruntime.KindCall, Name: "one",
		Result: json.RawMessage(`1`), StartedAt: now, EndedAt: now}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Wait(f.ctx, signalWait(f.id, "2", "go")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Finish(f.ctx, sbruntime.Outcome{Status: sbruntime.StatusWaiting}); err != nil {
		t.Fatal(err)
	}
}

// TestRepinFences: a re-pin commits only on the execution as its read saw
// it; a step, a resolved wait, a cancel or a claim since the read leaves the
// record as it was, and reports moved or owned.
func TestRepinFences(t *testing.T) {
	emb := startSuiteEtcd(t)
	tests := []struct {
		name    string
		before  func(t *testing.T, f *fencingFixture) // after parking, before the read
		between func(t *testing.T, f *fencingFixture) // after the read, before the re-pin
		status  sbruntime.Status                      // as read
		want    error                                 // nil: re-pinned
	}{
		{name: "parked and untouched", status: sbruntime.StatusWaiting},
		{name: "a signal resolves its wait", status: sbruntime.StatusWaiting, want: ErrMoved,
			between: func(t *testing.T, f *fencingFixture) {
				if err := f.s.Signal(f.ctx, f.id, "go", json.RawMessage(`1`), "test"); err != nil {
					t.Fatal(err)
				}
			}},
		{name: "cancelled", status: sbruntime.StatusWaiting, want: ErrMoved,
			between: func(t *testing.T, f *fencingFixture) {
				if _, err := f.s.Cancel(f.ctx, f.id); err != nil {
					t.Fatal(err)
				}
			}},
		{name: "runnable and unclaimed", status: sbruntime.StatusPending,
			before: func(t *testing.T, f *fencingFixture) {
				if err := f.s.Signal(f.ctx, f.id, "go", json.RawMessage(`1`), "test"); err != nil {
					t.Fatal(err)
				}
			}},
		{name: "claimed after the read", status: sbruntime.StatusPending, want: ErrOwned,
			before: func(t *testing.T, f *fencingFixture) {
				if err := f.s.Signal(f.ctx, f.id, "go", json.RawMessage(`1`), "test"); err != nil {
					t.Fatal(err)
				}
			},
			between: func(t *testing.T, f *fencingFixture) { f.claim(t, f.s, "b", f.grant(t)) }},
		{name: "claimed, stepped and let go", status: sbruntime.StatusPending, want: ErrMoved,
			before: func(t *testing.T, f *fencingFixture) {
				if err := f.s.Signal(f.ctx, f.id, "go", json.RawMessage(`1`), "test"); err != nil {
					t.Fatal(err)
				}
			},
			// Only the history tells: the release keeps the record and
			// the runnable key as they were.
			between: func(t *testing.T, f *fencingFixture) {
				c := f.claim(t, f.s, "b", f.grant(t))
				now := time.Now().UTC()
				if err := c.Append(f.ctx, &sbruntime.Event{Position: "3", Kind: sbruntime.KindCall, Name: "three",
					Result: json.RawMessage(`3`), StartedAt: now, EndedAt: now}); err != nil {
					t.Fatal(err)
				}
				if _, err := c.Finish(f.ctx, sbruntime.Outcome{}); err != nil {
					t.Fatal(err)
				}
			}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFencingFixture(t, emb, fmt.Sprintf("/repin/%d/", i))
			defer f.s.Close()
			f.parkOnSignal(t)
			if tt.before != nil {
				tt.before(t, f)
			}
			st, err := f.s.ReadMigration(f.ctx, f.id)
			if err != nil {
				t.Fatal(err)
			}
			if st.Status != tt.status || st.Record.Version != "v1" || len(st.History) == 0 {
				t.Fatalf("read %s on %s with %d events, want %s on v1", st.Status, st.Record.Version, len(st.History), tt.status)
			}
			if tt.between != nil {
				tt.between(t, f)
			}
			before := f.get(t, f.s.k.execution(f.id)).Kvs[0]
			next := *st.Record
			next.Version = "v2"
			next.Migrations = []sbruntime.Migration{{From: "v1", To: "v2", At: time.Now().UTC(), By: "alice"}}
			rec := &starbook.AuditRecord{Actor: "alice", Action: "execution.migrate", Execution: f.id, Outcome: starbook.AuditOK}
			err = f.s.Repin(f.ctx, st, &next, rec)
			after := f.get(t, f.s.k.execution(f.id)).Kvs[0]
			audit := f.get(t, f.s.k.auditRecord(rec.ID))
			if tt.want != nil {
				if !errors.Is(err, tt.want) {
					t.Fatalf("re-pin: %v, want %v", err, tt.want)
				}
				if after.ModRevision != before.ModRevision || len(audit.Kvs) != 0 {
					t.Errorf("a refused re-pin wrote: record revision %d -> %d, %d audit records",
						before.ModRevision, after.ModRevision, len(audit.Kvs))
				}
				return
			}
			if err != nil {
				t.Fatalf("re-pin: %v", err)
			}
			got, err := f.s.k.decodeExecution(after)
			if err != nil {
				t.Fatal(err)
			}
			if got.Version != "v2" || len(got.Migrations) != 1 || got.Migrations[0].From != "v1" || len(audit.Kvs) != 1 {
				t.Errorf("re-pinned record on %s, migrations %+v, %d audit records", got.Version, got.Migrations, len(audit.Kvs))
			}
		})
	}
}

// TestInFlight: only the runbook's executions that have not ended and run
// another version are migration candidates, oldest first.
func TestInFlight(t *testing.T) {
	emb := startSuiteEtcd(t)
	f := newFencingFixture(t, emb, "/inflight/")
	defer f.s.Close()
	now := time.Now().UTC()
	for _, e := range []*sbruntime.Execution{
		{ID: "b-old", Runbook: "r", Version: "v1", Status: sbruntime.StatusWaiting},
		{ID: "c-ended", Runbook: "r", Version: "v1", Status: sbruntime.StatusCompleted, EndedAt: &now},
		{ID: "d-stuck", Runbook: "r", Version: "v1", Status: sbruntime.StatusStuck, EndedAt: &now},
		{ID: "e-new", Runbook: "r", Version: "v2", Status: sbruntime.StatusPending},
		{ID: "f-other", Runbook: "other", Version: "v1", Status: sbruntime.StatusPending},
	} {
		e.Trigger, e.CreatedAt, e.UpdatedAt = sbruntime.Trigger{Type: "manual"}, now, now
		if err := f.s.CreateExecution(f.ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	ids, err := f.s.InFlight(f.ctx, "r", "v2")
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(ids) != "[b-old race]" {
		t.Errorf("in flight: %v, want [b-old race]", ids)
	}
}
