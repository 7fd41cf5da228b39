package cluster

import (
	"context"
	"errors"
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
	for {
		_, err := emb.Client.Get(ctx, "/churn", clientv3.WithRev(first))
		if errors.Is(err, rpctypes.ErrCompacted) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("revision %d of %d not compacted with a margin of %d", first, last, margin)
		case <-time.After(20 * time.Millisecond): // polling the condition above
		}
	}
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
