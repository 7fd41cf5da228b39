package node_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/starbook/starbook"
	"github.com/starbook/starbook/cluster"
	sbruntime "github.com/starbook/starbook/runtime"
)

// TestEndFoldsHistory: an execution that never waited ends as one record,
// its history folded into it (cluster/fold.go), and reads back whole; one
// that waited keeps its history's keys; a folded one is listed like any
// other.
func TestEndFoldsHistory(t *testing.T) {
	tn := startTestNode(t, t.TempDir())
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("ok")) }))
	defer srv.Close()
	tn.apply(t, map[string]string{
		"steps.star": `
def main(event):
    a = call(http.get, "` + srv.URL + `/a")
    b = call(http.get, "` + srv.URL + `/b")
    return [a.body, b.body, uuid() != ""]
`,
		"naps.star": `
def main(event):
    call(http.get, "` + srv.URL + `/a")
    sleep("1ms")
    return "rested"
`})
	ctx := context.Background()
	cli := tn.svc.Store.Client()
	historyKeys := func(id string) int64 {
		resp, err := cli.Get(ctx, "/t/history/"+id+"/", clientv3.WithPrefix(), clientv3.WithCountOnly())
		if err != nil {
			t.Fatal(err)
		}
		return resp.Count
	}
	record := func(id string) string {
		resp, err := cli.Get(ctx, "/t/executions/"+id)
		if err != nil || len(resp.Kvs) == 0 {
			t.Fatalf("record of %s: %v", id, err)
		}
		record, err := cluster.RecordJSON(resp.Kvs[0].Value)
		if err != nil {
			t.Fatal(err)
		}
		return string(record)
	}

	e, history := tn.runToEnd(t, "steps", "")
	if e.Status != sbruntime.StatusCompleted || string(e.Result) != `["ok","ok",true]` {
		t.Fatalf("steps ended %s %s %s", e.Status, e.Result, e.Error)
	}
	if len(history) != 3 || history[0].Position != "1" || history[1].Position != "2" || history[2].Kind != sbruntime.KindUUID {
		t.Fatalf("folded history read back as %d events: %+v", len(history), history)
	}
	if n := historyKeys(e.ID); n != 0 {
		t.Errorf("an ended run that never waited keeps %d history keys, want 0 (folded)", n)
	}
	if !strings.Contains(record(e.ID), `"folded":[`) {
		t.Errorf("record has no folded history: %s", record(e.ID))
	}

	w, history := tn.runToEnd(t, "naps", "")
	if w.Status != sbruntime.StatusCompleted || len(history) != 2 {
		t.Fatalf("naps ended %s with %d events", w.Status, len(history))
	}
	if n := historyKeys(w.ID); n != 2 || strings.Contains(record(w.ID), `"folded"`) {
		t.Errorf("a run that waited: %d history keys (want 2), record %s", n, record(w.ID))
	}

	list, err := tn.svc.Executions(ctx, starbook.Filter{Status: sbruntime.StatusCompleted})
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].ID != w.ID || list[1].ID != e.ID || list[1].Runbook != "steps" {
		t.Errorf("completed, newest first: %+v", list)
	}
}
