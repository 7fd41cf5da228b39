package cluster

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/starbook/starbook"
)

func TestAuditLogStore(t *testing.T) {
	emb := startSuiteEtcd(t)
	s := NewStore(emb.Client, "/audit-test/")
	defer s.Close()
	ctx := context.Background()
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	var ids []string
	for i := range 5 {
		rec := &starbook.AuditRecord{Time: t0.Add(time.Duration(i) * time.Hour), Actor: fmt.Sprint("u", i), Action: "execution.start", Outcome: starbook.AuditOK}
		if err := s.RecordAudit(ctx, rec); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, rec.ID)
	}
	newest, err := s.Audit(ctx, "", 2)
	if err != nil || len(newest) != 2 || newest[0].Actor != "u3" || newest[1].Actor != "u4" {
		t.Fatalf("newest 2: %+v, %v", newest, err)
	}
	after, err := s.Audit(ctx, ids[1], 10)
	if err != nil || len(after) != 3 || after[0].ID != ids[2] || after[2].ID != ids[4] {
		t.Fatalf("after %s: %+v, %v", ids[1], after, err)
	}
	before, err := s.AuditBefore(ctx, ids[3], 2)
	if err != nil || len(before) != 2 || before[0].ID != ids[1] || before[1].ID != ids[2] {
		t.Fatalf("2 before %s: %+v, %v", ids[3], before, err)
	}
	if first, err := s.AuditBefore(ctx, ids[0], 10); err != nil || len(first) != 0 {
		t.Fatalf("before the first: %+v, %v", first, err)
	}
	n, err := s.PruneAudit(ctx, t0.Add(150*time.Minute))
	if err != nil || n != 3 {
		t.Fatalf("pruned %d, %v", n, err)
	}
	left, _ := s.Audit(ctx, "", 10)
	if len(left) != 2 || left[0].ID != ids[3] {
		t.Fatalf("left %+v", left)
	}
}
