package api_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/starbook/starbook"
	"github.com/starbook/starbook/api"
	"github.com/starbook/starbook/builtins"
	"github.com/starbook/starbook/cluster"
	sbruntime "github.com/starbook/starbook/runtime"
	"github.com/starbook/starbook/service"
)

// TestExecutionsCursor pages GET /api/v1/executions with ?after= and next
// over 1,100 executions in a real embedded etcd: every page but the last is
// full and names the next cursor, the last names none, and the pages hold
// every matching execution once, newest first.
func TestExecutionsCursor(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	emb, err := cluster.StartEmbedded(ctx, cluster.EmbeddedConfig{Dir: t.TempDir(), Fast: true, NoFsync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer emb.Close()
	store := cluster.NewStore(emb.Client, "/cursor/")
	defer store.Close()
	svc := service.New(store, builtins.New(builtins.Options{}))
	srv := httptest.NewServer(api.NewHandler(svc, nil))
	defer srv.Close()
	c := &api.Client{BaseURL: srv.URL, HTTP: srv.Client()}

	// 1,100 executions, ids in creation order; every seventh cancelled;
	// runbooks a and b alternate, but every 250th is "rare" (5 of them, more
	// than one etcd read apart).
	const n = 1100
	all := make([]*sbruntime.Execution, n) // oldest first
	for i := range all {
		runbook := []string{"a", "b"}[i%2]
		if i%250 == 0 {
			runbook = "rare"
		}
		all[i] = &sbruntime.Execution{ID: svc.NewID(), Runbook: runbook, Version: "v1", Status: sbruntime.StatusPending}
		if i%7 == 0 {
			all[i].Status = sbruntime.StatusCancelled
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, n)
	sem := make(chan struct{}, 32) // concurrent creates share etcd txns
	for _, e := range all {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			rec := *e // created pending; cancelled after, as a caller would
			rec.Status = sbruntime.StatusPending
			err := store.CreateExecution(ctx, &rec)
			if err == nil && e.Status == sbruntime.StatusCancelled {
				_, err = store.Cancel(ctx, e.ID)
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	slices.Reverse(all) // newest first, as listed
	match := func(f starbook.Filter) []string {
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
		name  string
		f     starbook.Filter
		pages int // how many requests it takes
	}{
		{"past the newest 1000", starbook.Filter{Limit: 1000}, 2},
		{"the last page is full", starbook.Filter{Limit: 100}, 11},
		{"the server's default limit", starbook.Filter{}, 11},
		{"runbook", starbook.Filter{Runbook: "a", Limit: 97}, 6},                     // 545 match
		{"status", starbook.Filter{Status: sbruntime.StatusCancelled, Limit: 25}, 7}, // 158 match
		{"status and runbook", starbook.Filter{Status: sbruntime.StatusPending, Runbook: "b", Limit: 300}, 2},
		{"sparse", starbook.Filter{Runbook: "rare", Limit: 2}, 3},
		{"from a cursor", starbook.Filter{Runbook: "b", Limit: 200, After: all[333].ID}, 2},
		{"from a cursor no execution has", starbook.Filter{Limit: 500, After: all[99].ID + "0"}, 3},
		{"no match", starbook.Filter{Runbook: "none", Limit: 10}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := match(tt.f)
			limit := tt.f.Limit
			if limit == 0 {
				limit = api.DefaultLimit
			}
			f := tt.f
			var got []string
			requests := 0
			for {
				requests++
				page, next, err := c.ExecutionsPage(ctx, f)
				if err != nil {
					t.Fatal(err)
				}
				for _, e := range page {
					got = append(got, e.ID)
				}
				if next == "" {
					break
				}
				if len(page) != limit || next != page[len(page)-1].ID {
					t.Fatalf("page %d: %d executions, next %q; want a full page of %d and its last id", requests, len(page), next, limit)
				}
				if requests > len(want)/limit+1 {
					t.Fatalf("still paging after %d requests", requests)
				}
				f.After = next
			}
			if !slices.Equal(got, want) {
				t.Errorf("paged %d executions, want %d (in order, each once):\ngot  %.200v\nwant %.200v", len(got), len(want), got, want)
			}
			if requests != tt.pages {
				t.Errorf("%d requests, want %d", requests, tt.pages)
			}
		})
	}

	t.Run("bad after", func(t *testing.T) {
		for _, after := range []string{"../owners/x", strings.Repeat("0", 65), "01J 1"} {
			_, _, err := c.ExecutionsPage(ctx, starbook.Filter{After: after})
			var ae *api.Error
			if !errors.As(err, &ae) || ae.Status != 400 || !strings.HasPrefix(ae.Message, "invalid after ") {
				t.Errorf("after %q: %v, want a 400 naming after", after, err)
			}
		}
	})
}
