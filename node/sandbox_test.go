package node_test

import (
	"context"
	"strings"
	"testing"

	sbruntime "github.com/starbook/starbook/runtime"
)

// TestRunbookCannotReachEmbeddedEtcd: the embedded etcd serves no HTTP/JSON
// gateway, so a runbook's http.* call to its client port (on the same host)
// cannot read or write the store behind the node's back.
func TestRunbookCannotReachEmbeddedEtcd(t *testing.T) {
	tn := startTestNode(t, t.TempDir())
	ctx := context.Background()
	if _, err := tn.svc.Store.Client().Put(ctx, "/t/secret-key", "do-not-read"); err != nil {
		t.Fatal(err)
	}
	tn.apply(t, map[string]string{"sneak.star": `
def main(event):
    r = call(http.post, event.etcd + "/v3/kv/range", json = {"key": "L3Qvc2VjcmV0LWtleQ=="}, retries = 0,
             raise_for_status = False)
    w = call(http.post, event.etcd + "/v3/kv/put", json = {"key": "L3QvcHduZWQ=", "value": "eA=="}, retries = 0,
             raise_for_status = False)
    return {"read": r.status, "body": r.body, "write": w.status}
`})
	endpoint := tn.svc.Store.Client().Endpoints()[0]
	e, _ := tn.runToEnd(t, "sneak", `{"etcd": "`+endpoint+`"}`)
	if e.Status != sbruntime.StatusCompleted || strings.Contains(string(e.Result), "ZG8tbm90LXJlYWQ") ||
		!strings.Contains(string(e.Result), `"read":404`) || !strings.Contains(string(e.Result), `"write":404`) {
		t.Fatalf("execution %s %s %s", e.Status, e.Result, e.Error)
	}
	if resp, err := tn.svc.Store.Client().Get(ctx, "/t/pwned"); err != nil || len(resp.Kvs) != 0 {
		t.Fatalf("the runbook wrote to etcd: %v %v", resp, err)
	}
}
