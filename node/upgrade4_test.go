package node_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/starbook/starbook"
	"github.com/starbook/starbook/cluster"
	sbruntime "github.com/starbook/starbook/runtime"
)

// format3Fixture is testdata/store/format3.json: what the format 3 store
// holds (node/format3_fixture_test.go wrote both).
type format3Fixture struct {
	Prefix     string    `json:"prefix"`
	Clock      time.Time `json:"clock"`
	Signal     string    `json:"signal"`
	Approval   string    `json:"approval"`
	Sleep      string    `json:"sleep"`
	SleepDue   time.Time `json:"sleep_due"`
	Executions []struct {
		ID      string           `json:"id"`
		Runbook string           `json:"runbook"`
		Status  sbruntime.Status `json:"status"`
	} `json:"executions"` // oldest first
	Keys int64 `json:"keys"`
}

// openFormat3 unpacks the format 3 store into a new data dir.
func openFormat3(t *testing.T) (dir string, m format3Fixture) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "store", "format3.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	if len(m.Executions) < 30 {
		t.Fatalf("the fixture holds %d executions; want 30 or more", len(m.Executions))
	}
	dir = t.TempDir()
	if err := untar(filepath.Join("testdata", "store", "format3.tar.gz"), dir); err != nil {
		t.Fatal(err)
	}
	return dir, m
}

// newestFirst are the ids of the fixture's executions that match f (its
// status and runbook), newest first: what a listing must return.
func (m format3Fixture) newestFirst(f starbook.Filter) []string {
	var ids []string
	for _, x := range slices.Backward(m.Executions) {
		if (f.Status == "" || x.Status == f.Status) && (f.Runbook == "" || x.Runbook == f.Runbook) {
			ids = append(ids, x.ID)
		}
	}
	return ids
}

// TestUpgradeFromFormat3: a data dir the last format 3 release wrote opens
// with this build's node, which migrates it to format 4: the migration
// indexes every stored execution once, in its class, and is done
// (migrating/4 gone). Every listing then returns what the fixture holds,
// newest first, by status, runbook and both, a page at a time with the
// after cursor; the parked executions resume when their signal, approval
// and timer come, and the listings see them end.
func TestUpgradeFromFormat3(t *testing.T) {
	dir, m := openFormat3(t)
	clock := &fakeClock{t: m.Clock} // the timer stays pending until the test fires it
	tn := startNodeWith(t, dir, m.Prefix, clock.Now, nil)
	store := tn.svc.Store
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	f, err := store.ReadFormat(ctx)
	if err != nil || f.Format != 4 || cluster.CurrentFormat != 4 || !strings.HasPrefix(f.WrittenBy, "starbook ") {
		t.Fatalf("store format %+v, %v; want 4", f, err)
	}
	get := func(key string, opts ...clientv3.OpOption) *clientv3.GetResponse {
		t.Helper()
		resp, err := store.Client().Get(ctx, m.Prefix+key, opts...)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	if progress := get("migrating/4"); len(progress.Kvs) != 0 {
		t.Errorf("migrating/4 is %q after the migration; want it gone", progress.Kvs[0].Value)
	}
	// Two keys an ended execution, one a live one holding its runbook, each
	// once, in its class: what a listing reads.
	indexed := map[string]int{}
	liveRunbook := map[string]string{}
	for _, p := range []string{"ix/s/", "ix/r/"} {
		for _, kv := range get(p, clientv3.WithPrefix()).Kvs {
			indexed[string(kv.Key)]++
			liveRunbook[string(kv.Key)] = string(kv.Value)
		}
	}
	want := 0
	for _, x := range m.Executions {
		want += 2
		if !x.Status.Terminal() {
			want--
		}
	}
	if len(indexed) != want {
		t.Errorf("%d index keys; want %d: 2 for each of %d executions, 1 for a live one", len(indexed), want, len(m.Executions))
	}
	// Two keys a dead letter (of the fixture's failed and stuck runs): a
	// listing of them, a page at a time, is every one, newest first.
	dead := get("deadletters/", clientv3.WithPrefix(), clientv3.WithCountOnly()).Count
	dix := get("ix/d/", clientv3.WithPrefix(), clientv3.WithCountOnly()).Count + get("ix/dr/", clientv3.WithPrefix(), clientv3.WithCountOnly()).Count
	if dead == 0 || dix != 2*dead {
		t.Errorf("%d dead-letter index keys; want 2 for each of %d dead letters", dix, dead)
	}
	var cursors []string
	for after := ""; ; {
		page, err := tn.svc.DeadLetters(ctx, starbook.DeadLetterFilter{Limit: 4, After: after})
		if err != nil {
			t.Fatal(err)
		}
		for _, dl := range page {
			cursors = append(cursors, dl.Cursor())
		}
		if len(page) < 4 {
			break
		}
		after = page[len(page)-1].Cursor()
	}
	if int64(len(cursors)) != dead || !slices.IsSortedFunc(cursors, func(a, b string) int { return strings.Compare(b, a) }) {
		t.Errorf("dead letters paged: %d, newest first: %v; want %d", len(cursors), cursors, dead)
	}
	for _, x := range m.Executions {
		class := string(x.Status)
		if !x.Status.Terminal() {
			class = "live"
		}
		inv := invert(x.ID)
		keys := []string{m.Prefix + "ix/s/" + class + "/" + inv, m.Prefix + "ix/r/" + x.Runbook + "/" + class + "/" + inv}
		if class == "live" {
			keys = keys[:1]
			if got := liveRunbook[keys[0]]; got != x.Runbook {
				t.Errorf("%s (%s, live): index key holds %q; want its runbook", x.ID, x.Runbook, got)
			}
		}
		for _, key := range keys {
			if indexed[key] != 1 {
				t.Errorf("%s (%s, %s): index key %q is there %d times; want once", x.ID, x.Runbook, x.Status, key, indexed[key])
			}
		}
	}

	list := func(f starbook.Filter) []string {
		t.Helper()
		page, err := tn.svc.Executions(ctx, f)
		if err != nil {
			t.Fatalf("list %+v: %v", f, err)
		}
		ids := make([]string, len(page))
		for i, e := range page {
			ids[i] = e.ID
			if (f.Status != "" && e.Status != f.Status) || (f.Runbook != "" && e.Runbook != f.Runbook) {
				t.Errorf("list %+v: %s is %s of %s", f, e.ID, e.Status, e.Runbook)
			}
		}
		return ids
	}
	// checkListings lists every filter whole and a page at a time, and
	// compares each with the fixture as it is now.
	checkListings := func(t *testing.T) {
		runbooks := []string{"", "missing"}
		statuses := []sbruntime.Status{"", sbruntime.StatusRunning, sbruntime.StatusStuck}
		for _, x := range m.Executions {
			if !slices.Contains(runbooks, x.Runbook) {
				runbooks = append(runbooks, x.Runbook)
			}
			if !slices.Contains(statuses, x.Status) {
				statuses = append(statuses, x.Status)
			}
		}
		for _, rb := range runbooks {
			for _, st := range statuses {
				f := starbook.Filter{Runbook: rb, Status: st}
				want := m.newestFirst(f)
				if got := list(starbook.Filter{Runbook: rb, Status: st, Limit: 1000}); !slices.Equal(got, want) {
					t.Errorf("list %+v:\n got  %v\n want %v", f, got, want)
				}
				// Pages of 4 after the last id of the previous page, then
				// pages after an id no execution has (the first's, with a
				// "0" more: after it, before the next one).
				var paged []string
				for f.Limit = 4; ; f.After = paged[len(paged)-1] {
					page := list(f)
					if len(page) > f.Limit {
						t.Fatalf("list %+v: a page of %d", f, len(page))
					}
					if len(page) == 0 {
						break
					}
					paged = append(paged, page...)
				}
				if !slices.Equal(paged, want) {
					t.Errorf("list %+v a page at a time:\n got  %v\n want %v", starbook.Filter{Runbook: rb, Status: st}, paged, want)
				}
				for _, x := range m.Executions[:3] {
					f := starbook.Filter{Runbook: rb, Status: st, After: x.ID + "0", Limit: 2}
					var older []string
					for _, id := range want {
						if id <= x.ID && len(older) < 2 {
							older = append(older, id)
						}
					}
					if got := list(f); !slices.Equal(got, older) {
						t.Errorf("list %+v: got %v, want %v", f, got, older)
					}
				}
			}
		}
		// A runbook's migration reads its live index.
		for _, rb := range runbooks {
			var want []string
			for _, x := range m.Executions {
				if x.Runbook == rb && !x.Status.Terminal() {
					want = append(want, x.ID)
				}
			}
			got, err := store.InFlight(ctx, rb, "no such version")
			if err != nil || !slices.Equal(got, want) {
				t.Errorf("in flight of %q: %v, %v; want %v", rb, got, err, want)
			}
		}
	}
	t.Run("listings after the migration", checkListings)

	// Resume each: the signal its wait needs ("second" came before the upgrade),
	// alice's approval, and the sleep's timer as the leader fires it when due.
	if err := tn.svc.Signal(ctx, m.Signal, "first", json.RawMessage(`{"n": 1}`), "test"); err != nil {
		t.Fatal(err)
	}
	w := awaitPendingWait(t, store, m.Approval)
	if st, err := decide(store, w, "alice", true); err != nil || !st.Resolved {
		t.Fatalf("approve: %+v, %v", st, err)
	}
	sleepTimer := ""
	for _, kv := range get("timers/", clientv3.WithPrefix(), clientv3.WithKeysOnly()).Kvs {
		due, id, _, err := store.Keys().ParseTimer(string(kv.Key))
		if err != nil {
			t.Fatal(err)
		}
		if id == m.Sleep && due.Equal(m.SleepDue) {
			sleepTimer = string(kv.Key)
		}
	}
	if sleepTimer == "" {
		t.Fatalf("no timer of %s due at %v", m.Sleep, m.SleepDue)
	}
	clock.Add(m.SleepDue.Sub(m.Clock))
	if err := store.FireTimer(ctx, sleepTimer); err != nil {
		t.Fatal(err)
	}
	at := m.Clock.Format(time.RFC3339)
	// "second" was sent as the execution started (the fixture's clock
	// moves only at starts): its id's time.
	sentAt := time.UnixMilli(int64(ulid.MustParse(m.Signal).Time())).UTC().Format(time.RFC3339)
	resumed := map[string]string{
		m.Signal: `{"doubled":[2,4,6],"first":{"at":"` + at + `","by":"test","data":{"n":1},"name":"first","timed_out":false},` +
			`"host":"web-1","second":{"at":"` + sentAt + `","by":"fixture","data":{"n":2},"name":"second","timed_out":false}}`,
		m.Approval: `{"approved":true,"by":["alice"]}`,
		m.Sleep:    `"woke"`,
	}
	for id, want := range resumed {
		e, _ := endOf(t, tn, id)
		if e.Status != sbruntime.StatusCompleted || string(e.Result) != want {
			t.Errorf("%s: %s %s %s; want completed %s", id, e.Status, e.Result, e.Error, want)
		}
		// The migration's live keys moved to completed as they ended.
		for i := range m.Executions {
			if m.Executions[i].ID == id {
				m.Executions[i].Status = sbruntime.StatusCompleted
			}
		}
	}
	t.Run("listings after the parked ones ended", checkListings)
}

// invert is cluster's newestFirst, written again so that the test pins the
// index keys' bytes: each byte b becomes 0xff-b, and a 0xff ends it.
func invert(id string) string {
	b := make([]byte, 0, len(id)+1)
	for i := 0; i < len(id); i++ {
		b = append(b, 0xff-id[i])
	}
	return string(append(b, 0xff))
}
