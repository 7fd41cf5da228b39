package cluster

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// TestEmbeddedCompactsAsHistoryGrows: once the history passes twice the
// margin, the member compacts it down to the margin by itself; the last
// Margin revisions stay readable, so a watch that far behind still resumes.
func TestEmbeddedCompactsAsHistoryGrows(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const margin = 100
	emb, err := StartEmbedded(ctx, EmbeddedConfig{Dir: t.TempDir(), Fast: true, NoFsync: true,
		Compaction: Compaction{Margin: margin, Interval: 10 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	defer emb.Close()
	var first, last int64
	for i := range 3 * margin {
		resp, err := emb.Client.Put(ctx, "/churn", "x")
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = resp.Header.Revision
		}
		last = resp.Header.Revision
	}
	awaitCompacted(ctx, t, emb.Client, first, fmt.Sprintf("revision %d of %d, with a margin of %d", first, last, margin))
	if _, err := emb.Client.Get(ctx, "/churn", clientv3.WithRev(last-margin+1)); err != nil {
		t.Errorf("read %d revisions behind: %v", margin-1, err)
	}
	wctx, wcancel := context.WithCancel(ctx)
	defer wcancel()
	wr := <-emb.Client.Watch(wctx, "/churn", clientv3.WithRev(last-margin+1))
	if wr.Err() != nil || len(wr.Events) == 0 {
		t.Errorf("watch from %d revisions behind: %v, %d events", margin-1, wr.Err(), len(wr.Events))
	}
}

// TestCompactionTarget: the history is compacted down to Margin once it
// passes twice Margin, whatever is Window old is compacted however little
// came after it, and whatever is Quiet old once at most QuietRevisions came
// after it.
func TestCompactionTarget(t *testing.T) {
	c := Compaction{Margin: 100, Window: time.Minute, Quiet: 3 * time.Second, QuietRevisions: 5, QuietMin: 25, Gap: 5 * time.Second}
	t0 := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name      string
		now       time.Time
		last      time.Time // of the last compaction
		rev       int64
		compacted int64
		seen      []revisionAt
		want      int64
		wantQuiet bool
		wantSeen  int // samples kept, the new one included
	}{
		{name: "young and short", now: t0, rev: 150, want: 0, wantSeen: 1},
		{name: "past twice the margin", now: t0, rev: 200, want: 100, wantSeen: 1},
		{name: "grown by less than the margin since", now: t0, rev: 280, compacted: 200, want: 0, wantSeen: 1},
		{name: "grown by the margin since", now: t0, rev: 400, compacted: 200, want: 300, wantSeen: 1},
		{name: "grown by the margin within the gap", now: t0, last: t0.Add(-time.Second), rev: 400, compacted: 200,
			want: 0, wantSeen: 1},
		{name: "idle past the window", now: t0.Add(time.Minute), rev: 150,
			seen: []revisionAt{{t0, 150}, {t0.Add(30 * time.Second), 150}}, want: 150, wantQuiet: true, wantSeen: 2},
		{name: "window older than the margin's target", now: t0.Add(time.Minute), rev: 1000, compacted: 0,
			seen: []revisionAt{{t0, 950}, {t0.Add(30 * time.Second), 990}}, want: 950, wantSeen: 2},
		{name: "already compacted past the window", now: t0.Add(2 * time.Minute), rev: 160, compacted: 150,
			seen: []revisionAt{{t0, 150}}, want: 0, wantSeen: 1},
		{name: "quiet after a burst", now: t0.Add(4 * time.Second), rev: 1503, compacted: 1000,
			seen: []revisionAt{{t0, 1400}, {t0.Add(time.Second), 1500}, {t0.Add(2 * time.Second), 1502}},
			want: 1500, wantQuiet: true, wantSeen: 4},
		{name: "quiet after a few writes", now: t0.Add(4 * time.Second), rev: 1510, compacted: 1490,
			seen: []revisionAt{{t0, 1490}, {t0.Add(time.Second), 1505}, {t0.Add(2 * time.Second), 1510}},
			want: 0, wantSeen: 4},
		{name: "still busy", now: t0.Add(4 * time.Second), rev: 1540, compacted: 1450,
			seen: []revisionAt{{t0, 1400}, {t0.Add(time.Second), 1500}, {t0.Add(2 * time.Second), 1520}},
			want: 0, wantSeen: 4},
		{name: "not quiet for long enough", now: t0.Add(2 * time.Second), rev: 1500, compacted: 1450,
			seen: []revisionAt{{t0, 1400}, {t0.Add(time.Second), 1500}},
			want: 0, wantSeen: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, quiet, seen := c.compactionTarget(tt.now, tt.last, tt.rev, tt.compacted, tt.seen)
			if got != tt.want || quiet != tt.wantQuiet {
				t.Errorf("target %d (quiet %v), want %d (quiet %v)", got, quiet, tt.want, tt.wantQuiet)
			}
			if len(seen) != tt.wantSeen || seen[len(seen)-1].rev != tt.rev {
				t.Errorf("kept %v, want %d samples ending with revision %d", seen, tt.wantSeen, tt.rev)
			}
		})
	}
}

// TestCompactionQuiet: a member is quiet once it has been looked at for a
// whole Quiet period and took at most QuietRevisions over it.
func TestCompactionQuiet(t *testing.T) {
	c := Compaction{Quiet: 3 * time.Second, QuietRevisions: 5}
	t0 := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		now  time.Time
		rev  int64
		seen []revisionAt
		want bool
	}{
		{name: "nothing seen yet", now: t0, rev: 10, want: false},
		{name: "not looked at for a period", now: t0.Add(2 * time.Second), rev: 10, seen: []revisionAt{{t0, 10}}, want: false},
		{name: "idle for a period", now: t0.Add(3 * time.Second), rev: 10, seen: []revisionAt{{t0, 10}}, want: true},
		{name: "a few writes", now: t0.Add(4 * time.Second), rev: 15,
			seen: []revisionAt{{t0, 5}, {t0.Add(time.Second), 10}, {t0.Add(2 * time.Second), 12}}, want: true},
		{name: "writing", now: t0.Add(4 * time.Second), rev: 16,
			seen: []revisionAt{{t0, 5}, {t0.Add(time.Second), 10}, {t0.Add(2 * time.Second), 12}}, want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := c.quiet(tt.now, tt.rev, tt.seen); got != tt.want {
				t.Errorf("quiet = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestEmbeddedCompactsWhenQuiet: a burst shorter than the margin is
// compacted, but for at most QuietMin revisions, once the member has been
// quiet for Quiet.
func TestEmbeddedCompactsWhenQuiet(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const quietMin = 20
	emb, err := StartEmbedded(ctx, EmbeddedConfig{Dir: t.TempDir(), Fast: true, NoFsync: true,
		Compaction: Compaction{Margin: 1000, Quiet: 200 * time.Millisecond, QuietMin: quietMin, Interval: 10 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	defer emb.Close()
	var last int64
	for range 300 {
		resp, err := emb.Client.Put(ctx, "/churn", "x")
		if err != nil {
			t.Fatal(err)
		}
		last = resp.Header.Revision
	}
	awaitCompacted(ctx, t, emb.Client, last-quietMin, fmt.Sprintf("revision %d of %d of a quiet member", last-quietMin, last))
}

// awaitCompacted waits until revision rev of cli's member is compacted, and
// fails the test with what when ctx ends first.
func awaitCompacted(ctx context.Context, t *testing.T, cli *clientv3.Client, rev int64, what string) {
	t.Helper()
	for {
		_, err := cli.Get(ctx, "/churn", clientv3.WithRev(rev))
		if errors.Is(err, rpctypes.ErrCompacted) {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s not compacted", what)
		case <-time.After(20 * time.Millisecond): // polling the condition above
		}
	}
}
