package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// storeRev returns the store's revision: unchanged means nothing was written.
func storeRev(t *testing.T, s *Store) int64 {
	t.Helper()
	resp, err := s.cli.Get(context.Background(), s.k.probe("rev"), clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	return resp.Header.Revision
}

func putMarker(t *testing.T, s *Store, value string) {
	t.Helper()
	if _, err := s.cli.Put(context.Background(), s.k.format(), value); err != nil {
		t.Fatal(err)
	}
}

func TestOpenFormat(t *testing.T) {
	emb := startSuiteEtcd(t)
	tests := []struct {
		name      string
		setup     func(t *testing.T, s *Store)
		want      int    // the format after OpenFormat
		err       string // the error's text, "" for none
		writes    bool   // whether OpenFormat writes
		writtenBy string
	}{
		{name: "empty store is marked current", want: CurrentFormat, writes: true, writtenBy: buildName()},
		{name: "data without a marker is format 1, migrated", setup: func(t *testing.T, s *Store) {
			if _, err := s.cli.Put(context.Background(), s.k.execution("x"), `{"id":"x"}`); err != nil {
				t.Fatal(err)
			}
		}, want: CurrentFormat, writes: true, writtenBy: buildName()},
		{name: "current marker is only read", setup: func(t *testing.T, s *Store) {
			putMarker(t, s, fmt.Sprintf(`{"format":%d,"written_by":"starbook v2.0.0"}`, CurrentFormat))
		}, want: CurrentFormat, writtenBy: "starbook v2.0.0"},
		{name: "newer marker is refused", setup: func(t *testing.T, s *Store) {
			putMarker(t, s, `{"format":99,"written_by":"starbook v9.0.0"}`)
		}, want: 99, writtenBy: "starbook v9.0.0",
			err: fmt.Sprintf("store format 99 (written by starbook v9.0.0) is newer than this starbook understands (%d): upgrade starbook", CurrentFormat)},
		{name: "a marker that is no format is refused", setup: func(t *testing.T, s *Store) {
			putMarker(t, s, `"two"`)
		}, err: `store format marker /format-5/format: "\"two\"" is not a format`},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			s := NewStore(emb.Client, fmt.Sprintf("/format-%d/", i+1))
			defer s.Close()
			if tt.setup != nil {
				tt.setup(t, s)
			}
			before := storeRev(t, s)
			f, err := s.OpenFormat(ctx)
			if tt.err != "" {
				if err == nil || err.Error() != tt.err {
					t.Fatalf("got %v, want %q", err, tt.err)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if f.Format != tt.want || f.WrittenBy != tt.writtenBy {
				t.Errorf("format %+v, want %d written by %q", f, tt.want, tt.writtenBy)
			}
			if wrote := storeRev(t, s) != before; wrote != tt.writes {
				t.Errorf("wrote %v, want %v", wrote, tt.writes)
			}
			if tt.err != "" {
				return
			}
			// Opened, the store is current: the next open is a read.
			before = storeRev(t, s)
			if again, err := s.OpenFormat(ctx); err != nil || again.Format != CurrentFormat {
				t.Fatalf("second open: %+v, %v", again, err)
			}
			if storeRev(t, s) != before {
				t.Error("a second open wrote")
			}
			if got, err := s.ReadFormat(ctx); err != nil || got.Format != CurrentFormat {
				t.Errorf("read %+v, %v", got, err)
			}
		})
	}
}

// A newer store's error is a *FormatError callers can find.
func TestFormatErrorIsTyped(t *testing.T) {
	emb := startSuiteEtcd(t)
	s := NewStore(emb.Client, "/newer/")
	defer s.Close()
	putMarker(t, s, fmt.Sprintf(`{"format":%d,"written_by":"starbook v9"}`, CurrentFormat+1))
	_, err := s.OpenFormat(context.Background())
	var fe *FormatError
	if !errors.As(fmt.Errorf("node: %w", err), &fe) || fe.Store != CurrentFormat+1 || fe.Known != CurrentFormat {
		t.Fatalf("got %v", err)
	}
}

// Nodes starting at once on an old store run each migration once, in
// order, and all see the last format.
func TestMigrationsRunOnceInOrder(t *testing.T) {
	emb := startSuiteEtcd(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const prefix = "/migrate/"
	seed := NewStore(emb.Client, prefix)
	defer seed.Close()
	if _, err := seed.cli.Put(ctx, seed.k.execution("x"), `{"id":"x"}`); err != nil { // format 1
		t.Fatal(err)
	}
	var mu sync.Mutex
	var order []int
	runs := map[int]*atomic.Int32{2: {}, 3: {}, 4: {}}
	migs := make([]Migration, 0, 3)
	for to := 2; to <= 4; to++ {
		migs = append(migs, Migration{To: to, Name: fmt.Sprintf("to %d", to),
			Apply: func(ctx context.Context, s *Store, fence []clientv3.Cmp) error {
				runs[to].Add(1)
				mu.Lock()
				order = append(order, to)
				mu.Unlock()
				key := s.k.probe(fmt.Sprintf("migrated/%d", to))
				resp, err := s.cli.Txn(ctx).If(fence...).Then(clientv3.OpPut(key, "done")).Commit()
				if err == nil && !resp.Succeeded {
					err = errors.New("fence failed")
				}
				return err
			}})
	}
	var wg sync.WaitGroup
	errs := make([]error, 5)
	formats := make([]int, 5)
	for i := range 5 {
		wg.Go(func() {
			s := NewStore(emb.Client, prefix)
			defer s.Close()
			f, err := s.openFormat(ctx, 4, migs)
			errs[i], formats[i] = err, f.Format
		})
	}
	wg.Wait()
	for i := range 5 {
		if errs[i] != nil || formats[i] != 4 {
			t.Errorf("node %d: format %d, %v", i, formats[i], errs[i])
		}
	}
	for to, n := range runs {
		if n.Load() != 1 {
			t.Errorf("migration to %d ran %d times, want once", to, n.Load())
		}
	}
	if fmt.Sprint(order) != "[2 3 4]" {
		t.Errorf("migrations ran in order %v", order)
	}
	resp, err := seed.cli.Get(ctx, seed.k.probe("migrated/"), clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil || resp.Count != 3 {
		t.Errorf("%d fenced migration writes, %v; want 3", resp.Count, err)
	}
	var f Format
	got, err := seed.cli.Get(ctx, seed.k.format())
	if err != nil || len(got.Kvs) != 1 || json.Unmarshal(got.Kvs[0].Value, &f) != nil || f.Format != 4 || f.WrittenBy != buildName() {
		t.Fatalf("marker %v, %v", got.Kvs, err)
	}
}

// A migration that fails half way leaves the store at the format it
// reached; the next start runs the failed one again and goes on.
func TestFailedMigrationResumes(t *testing.T) {
	emb := startSuiteEtcd(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s := NewStore(emb.Client, "/halfway/")
	defer s.Close()
	putMarker(t, s, `{"format":2,"written_by":"starbook v2"}`)
	var fail atomic.Bool
	fail.Store(true)
	ran := map[int]int{}
	migs := []Migration{
		{To: 3, Name: "three", Apply: func(context.Context, *Store, []clientv3.Cmp) error { ran[3]++; return nil }},
		{To: 4, Name: "four", Apply: func(context.Context, *Store, []clientv3.Cmp) error {
			ran[4]++
			if fail.Load() {
				return errors.New("disk on fire")
			}
			return nil
		}},
	}
	f, err := s.openFormat(ctx, 4, migs)
	if err == nil || err.Error() != "migrate store format 3 to 4 (four): disk on fire" || f.Format != 3 {
		t.Fatalf("got %+v, %v", f, err)
	}
	if got, err := s.ReadFormat(ctx); err != nil || got.Format != 3 {
		t.Fatalf("after the failure the store is %+v, %v; want format 3", got, err)
	}
	fail.Store(false)
	if f, err := s.openFormat(ctx, 4, migs); err != nil || f.Format != 4 {
		t.Fatalf("got %+v, %v", f, err)
	}
	if ran[3] != 1 || ran[4] != 2 {
		t.Errorf("ran %v; want three once, four twice", ran)
	}
}
