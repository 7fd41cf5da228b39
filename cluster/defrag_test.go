package cluster

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// grow writes n values of size bytes under prefix, deletes the first del of
// them and compacts etcd's history, so that their pages are free.
func grow(t *testing.T, cli *clientv3.Client, prefix string, n, size, del int) {
	t.Helper()
	ctx := context.Background()
	value := strings.Repeat("x", size)
	for i := range n {
		if _, err := cli.Put(ctx, fmt.Sprintf("%s%04d", prefix, i), value); err != nil {
			t.Fatal(err)
		}
	}
	for i := range del {
		if _, err := cli.Delete(ctx, fmt.Sprintf("%s%04d", prefix, i)); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := cli.Get(ctx, prefix, clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Compact(ctx, resp.Header.Revision, clientv3.WithCompactPhysical()); err != nil {
		t.Fatal(err)
	}
}

// waitUntilFree writes a little, as a live node does, until at least free
// bytes of etcd's db file are free: the pages a compaction frees count once
// two more backend commits (every 100 ms, and only with writes) have passed
// the reads that could still see them.
func waitUntilFree(t *testing.T, cli *clientv3.Client, free int64) {
	t.Helper()
	ctx := context.Background()
	for deadline := time.Now().Add(20 * time.Second); ; {
		if _, err := cli.Put(ctx, "/nudge", time.Now().String()); err != nil {
			t.Fatal(err)
		}
		st, err := cli.Status(ctx, cli.Endpoints()[0])
		if err != nil {
			t.Fatal(err)
		}
		if st.DbSize-st.DbSizeInUse >= free {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("db %d bytes with %d in use after 20s, want %d free", st.DbSize, st.DbSizeInUse, free)
		}
		time.Sleep(60 * time.Millisecond) // polling the condition above
	}
}

// TestEmbeddedMaintainDefragments: a db file of at least MinSize that is
// mostly free pages after a compaction is defragmented and shrinks; a small
// one, or one mostly in use, is left alone. What was kept survives.
func TestEmbeddedMaintainDefragments(t *testing.T) {
	const minSize = 4 << 20
	tests := []struct {
		name       string
		n, deleted int // 64 KiB values written, and deleted before the compaction
		defrag     bool
	}{
		{name: "mostly free", n: 128, deleted: 120, defrag: true},
		{name: "mostly in use", n: 128, deleted: 4},
		{name: "under the minimum size", n: 32, deleted: 30},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			// bbolt's own overhead leaves a file of 64 KiB values about
			// 87% in use, near the default MaxInUse (0.9): the cases stay
			// clear of a threshold of one half.
			emb, err := StartEmbedded(ctx, EmbeddedConfig{Dir: t.TempDir(), Fast: true, NoFsync: true,
				Defrag: Defrag{Interval: -1, MinSize: minSize, MaxInUse: 0.5}})
			if err != nil {
				t.Fatal(err)
			}
			defer emb.Close()
			grow(t, emb.Client, "/grow/", tt.n, 64<<10, tt.deleted)
			if tt.defrag {
				// Freed pages count once etcd's backend has committed and
				// no read holds them: wait for that, as the member's
				// periodic check would.
				waitUntilFree(t, emb.Client, minSize)
			}
			r, err := emb.Maintain(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if got := r.After > 0; got != tt.defrag {
				t.Fatalf("defragmented %v (size %d, in use %d), want %v", got, r.Size, r.InUse, tt.defrag)
			}
			if tt.defrag && r.After > r.Size/2 {
				t.Errorf("db %d bytes after defragmenting, was %d with %d in use: want under half", r.After, r.Size, r.InUse)
			}
			resp, err := emb.Client.Get(ctx, "/grow/", clientv3.WithPrefix(), clientv3.WithCountOnly())
			if err != nil || resp.Count != int64(tt.n-tt.deleted) {
				t.Fatalf("%d keys after maintenance, %v; want %d", resp.Count, err, tt.n-tt.deleted)
			}
		})
	}
}

// TestEmbeddedDefragmentsPeriodically: the member runs the same check by
// itself every Interval, and Close stops it.
func TestEmbeddedDefragmentsPeriodically(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	checks := make(chan DefragResult, 100)
	emb, err := StartEmbedded(ctx, EmbeddedConfig{Dir: t.TempDir(), Fast: true, NoFsync: true,
		Compaction: Compaction{Quiet: 20 * time.Millisecond},
		Defrag: Defrag{Interval: 10 * time.Millisecond, MinSize: 4 << 20, OnCheck: func(r DefragResult, err error) {
			if err != nil {
				t.Errorf("check: %v", err)
			}
			select {
			case checks <- r:
			default:
			}
		}}})
	if err != nil {
		t.Fatal(err)
	}
	defer emb.Close()
	grow(t, emb.Client, "/grow/", 128, 64<<10, 120)
	nudge := time.NewTicker(50 * time.Millisecond) // a live node's writes (see waitUntilFree)
	defer nudge.Stop()
	var last DefragResult
	for {
		select {
		case <-nudge.C:
			if _, err := emb.Client.Put(ctx, "/nudge", time.Now().String()); err != nil {
				t.Fatal(err)
			}
		case r := <-checks:
			// A check that ran while grow was still writing may defragment a
			// file bbolt had grown ahead of its data (in use well below its
			// size, nothing to give back): only the compacted db must shrink.
			if r.After > 0 {
				last = r
				if r.After <= r.Size/2 {
					return
				}
			}
		case <-ctx.Done():
			t.Fatalf("no periodic check defragmented the db to half its size (last: %d bytes after, was %d)", last.After, last.Size)
		}
	}
}

// TestEmbeddedBusy: a member that takes more than QuietRevisions revisions
// over its Quiet period is busy (its periodic defragmentation waits); one
// that takes none is not.
func TestEmbeddedBusy(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	emb, err := StartEmbedded(ctx, EmbeddedConfig{Dir: t.TempDir(), Fast: true, NoFsync: true,
		Compaction: Compaction{Quiet: 200 * time.Millisecond, QuietRevisions: 5, Interval: -1},
		Defrag:     Defrag{Interval: -1}})
	if err != nil {
		t.Fatal(err)
	}
	defer emb.Close()
	if busy, err := emb.busy(ctx); err != nil || busy {
		t.Fatalf("an idle member: busy %v, %v", busy, err)
	}
	wctx, stop := context.WithCancel(ctx)
	writes := make(chan error, 1)
	go func() {
		for i := 0; ; i++ {
			if _, err := emb.Client.Put(wctx, "/busy", fmt.Sprint(i)); err != nil {
				writes <- err
				return
			}
		}
	}()
	busy, err := emb.busy(ctx)
	stop()
	<-writes
	if err != nil || !busy {
		t.Fatalf("a member written to all along: busy %v, %v", busy, err)
	}
}
