package cluster

import (
	"errors"
	"fmt"
	"testing"

	sbruntime "github.com/starbook/starbook/runtime"
)

// TestFinishRecordsTheCheckpoint: a step's event left in the outcome
// (Outcome.Checkpoint) is written in the outcome's own txn, whether the run
// ended, was aborted (the claim is released and the event kept), or lost
// its claim (nothing is written). An event that an earlier, seemingly failed
// write already recorded is not written twice.
func TestFinishRecordsTheCheckpoint(t *testing.T) {
	emb := startSuiteEtcd(t)
	tests := []struct {
		name     string
		outcome  sbruntime.Outcome
		before   func(t *testing.T, f *fencingFixture, c *Claim) // between the claim and Finish
		wantErr  error
		recorded bool   // the event at 2 is stored afterwards
		status   string // of the stored record
		sameTxn  bool   // the event and the record share a revision
		writes   int64  // of the event's key
	}{
		{name: "completed", outcome: sbruntime.Outcome{Status: sbruntime.StatusCompleted},
			recorded: true, status: "completed", sameTxn: true, writes: 1},
		{name: "failed", outcome: sbruntime.Outcome{Status: sbruntime.StatusFailed, Error: "boom"},
			recorded: true, status: "failed", sameTxn: true, writes: 1},
		{name: "aborted", outcome: sbruntime.Outcome{Err: errors.New("node stopping")},
			recorded: true, status: "pending", writes: 1},
		{name: "already recorded", outcome: sbruntime.Outcome{Status: sbruntime.StatusCompleted},
			before: func(t *testing.T, f *fencingFixture, c *Claim) {
				if err := c.Append(f.ctx, event("2", "a")); err != nil {
					t.Fatal(err)
				}
			}, recorded: true, status: "completed", writes: 1},
		{name: "claim lost", outcome: sbruntime.Outcome{Status: sbruntime.StatusCompleted},
			before: func(t *testing.T, f *fencingFixture, c *Claim) {
				if _, err := f.s.cli.Delete(f.ctx, f.s.k.owner(f.id)); err != nil {
					t.Fatal(err)
				}
			}, wantErr: sbruntime.ErrNotOwner, status: "pending"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFencingFixture(t, emb, fmt.Sprintf("/checkpoint/%d/", i))
			c := f.claim(t, f.s, "a", f.grant(t))
			if err := c.Append(f.ctx, event("1", "a")); err != nil {
				t.Fatal(err)
			}
			if tt.before != nil {
				tt.before(t, f, c)
			}
			o := tt.outcome
			o.Checkpoint = event("2", "a")
			if _, err := c.Finish(f.ctx, o); !errors.Is(err, tt.wantErr) {
				t.Fatalf("finish: %v, want %v", err, tt.wantErr)
			}
			_, writes := f.events(t)
			if got := writes["2"] > 0; got != tt.recorded {
				t.Fatalf("event 2 recorded %v, want %v", got, tt.recorded)
			}
			if writes["2"] != tt.writes {
				t.Errorf("event 2 written %d times, want %d", writes["2"], tt.writes)
			}
			rec := f.get(t, f.s.k.execution(f.id)).Kvs[0]
			x, err := f.s.k.decodeExecution(rec)
			if err != nil {
				t.Fatal(err)
			}
			if string(x.Status) != tt.status {
				t.Errorf("stored status %s, want %s", x.Status, tt.status)
			}
			if tt.sameTxn && len(f.get(t, f.s.k.event(f.id, "2")).Kvs) > 0 { // else folded into the record
				ev := f.get(t, f.s.k.event(f.id, "2")).Kvs[0]
				if ev.ModRevision != rec.ModRevision {
					t.Errorf("event written at revision %d, outcome at %d: want one txn", ev.ModRevision, rec.ModRevision)
				}
			}
			if tt.outcome.Status == "" && len(f.get(t, f.s.k.owner(f.id)).Kvs) != 0 {
				t.Error("an aborted run's claim is still held")
			}
		})
	}
}
