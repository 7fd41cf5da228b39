package cluster

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	clientv3 "go.etcd.io/etcd/client/v3"

	sbruntime "github.com/starbook/starbook/runtime"
)

// BenchmarkListPage times the listing's pages at several stored sizes, in
// the same run: a page should cost the same whatever is stored. Each size
// loads ended executions of four runbooks, one in ten failed, with their
// records and index keys as ends write them. STARBOOK_SCALE=100000 adds
// that size (about a minute to load).
//
//	go test ./cluster -run '^$' -bench ListPage -benchtime 200x
func BenchmarkListPage(b *testing.B) {
	sizes := []int{1_000, 10_000}
	if n, err := strconv.Atoi(os.Getenv("STARBOOK_SCALE")); err == nil && n > 0 {
		sizes = append(sizes, n)
	}
	for _, n := range sizes {
		s := NewStore(benchEtcd(b).Client, fmt.Sprintf("/listpage-%d/", n))
		loadEnded(b, s, n)
		for _, f := range []struct {
			name string
			f    ListFilter
		}{
			{"all/25", ListFilter{Limit: 25}},
			{"all/100", ListFilter{Limit: 100}},
			{"failed/25", ListFilter{Limit: 25, Status: sbruntime.StatusFailed}},
			{"runbook/25", ListFilter{Limit: 25, Runbook: "rb1"}},
			{"runbook+failed/25", ListFilter{Limit: 25, Runbook: "rb2", Status: sbruntime.StatusFailed}},
		} {
			b.Run(fmt.Sprintf("stored=%d/%s", n, f.name), func(b *testing.B) {
				ctx := context.Background()
				for b.Loop() {
					page, err := s.Executions(ctx, f.f)
					if err != nil || len(page) != f.f.Limit {
						b.Fatalf("page of %d: %v", len(page), err)
					}
				}
			})
		}
		s.Close()
	}
}

// loadEnded stores n ended executions as their ends leave them, 100 a txn.
func loadEnded(b *testing.B, s *Store, n int) {
	ctx := context.Background()
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	entropy := ulid.Monotonic(rand.Reader, 0)
	for i := 0; i < n; {
		var ops []clientv3.Op
		for j := 0; j < 100 && i < n; i, j = i+1, j+1 {
			at := t0.Add(time.Duration(i) * time.Second)
			e := &sbruntime.Execution{ID: ulid.MustNew(ulid.Timestamp(at), entropy).String(), Runbook: fmt.Sprintf("rb%d", i%4),
				Version: "v1", Status: sbruntime.StatusCompleted, CreatedAt: at, UpdatedAt: at, EndedAt: &at,
				Trigger: sbruntime.Trigger{Type: "alert", Source: "0123456789abcdef"}, Input: []byte(`{"labels":{"alertname":"Bench"}}`)}
			if i%10 == 0 {
				e.Status, e.Error = sbruntime.StatusFailed, "boom"
			}
			data, err := e.EncodeJSON()
			if err != nil {
				b.Fatal(err)
			}
			ops = append(append(ops, clientv3.OpPut(s.k.execution(e.ID), string(data))), s.k.indexOps(e)...)
		}
		if _, err := s.cli.Txn(ctx).Then(ops...).Commit(); err != nil {
			b.Fatal(err)
		}
	}
}
