package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/starbook/starbook"
	"github.com/starbook/starbook/api"
	"github.com/starbook/starbook/builtins"
	"github.com/starbook/starbook/cluster"
	"github.com/starbook/starbook/service"
)

func TestRolloutAPI(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	emb, err := cluster.StartEmbedded(ctx, cluster.EmbeddedConfig{Dir: t.TempDir(), Fast: true, NoFsync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer emb.Close()
	store := cluster.NewStore(emb.Client, "/rollout/")
	defer store.Close()
	svc := service.New(store, builtins.New(builtins.Options{}))
	srv := httptest.NewServer(api.NewHandler(svc, nil))
	defer srv.Close()
	c := &api.Client{BaseURL: srv.URL, HTTP: srv.Client(), User: "carol"}
	source := func(tag string) map[string]string {
		return map[string]string{"rb.star": "def main(event):\n    return \"" + tag + "\"\n"}
	}
	v1, err := c.Apply(ctx, source("one"))
	if err != nil {
		t.Fatal(err)
	}
	status := func(err error) int {
		var ae *api.Error
		if errors.As(err, &ae) {
			return ae.Status
		}
		return 0
	}

	// Bad canary values: 400 naming the field, nothing stored.
	keys := func() map[string]int64 { // every key but the audit log's, with its revision
		resp, err := emb.Client.Get(ctx, "/rollout/", clientv3.WithPrefix(), clientv3.WithKeysOnly())
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]int64{}
		for _, kv := range resp.Kvs {
			if !strings.HasPrefix(string(kv.Key), "/rollout/audit/") {
				out[string(kv.Key)] = kv.ModRevision
			}
		}
		return out
	}
	before := keys()
	for _, tc := range []struct {
		spec starbook.CanarySpec
		want string
	}{
		{starbook.CanarySpec{Percent: 0, Runs: 20, MaxFailureRate: 0.05}, "canary percentage"},
		{starbook.CanarySpec{Percent: 100, Runs: 20, MaxFailureRate: 0.05}, "canary percentage"},
		{starbook.CanarySpec{Percent: 150, Runs: 20}, "canary percentage"},
		{starbook.CanarySpec{Percent: 10, Runs: 0}, "canary runs"},
		{starbook.CanarySpec{Percent: 10, Runs: 5, MaxFailureRate: 1}, "max failure rate"},
	} {
		_, err := c.ApplyCanary(ctx, source("two"), tc.spec)
		if status(err) != http.StatusBadRequest || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("canary %+v: %v, want 400 about %s", tc.spec, err, tc.want)
		}
	}
	if after := keys(); !maps.Equal(before, after) {
		t.Errorf("refused canaries wrote to etcd: %v, before %v", after, before)
	}
	if _, err := c.Rollout(ctx, "rb"); status(err) != http.StatusNotFound {
		t.Errorf("rollout before any: %v, want 404", err)
	}

	// A canary: status JSON, a plain apply refused, promote wins once.
	v2, err := c.ApplyCanary(ctx, source("two"), starbook.CanarySpec{Percent: 10, Runs: 20, MaxFailureRate: 0.05})
	if err != nil || v2[0].Rollout == nil {
		t.Fatalf("apply canary: %+v, %v", v2, err)
	}
	resp, err := srv.Client().Get(srv.URL + "/api/v1/runbooks/rb/rollout")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var raw struct {
		Rollout map[string]any `json:"rollout"`
	}
	if err := json.Unmarshal(body, &raw); err != nil {
		t.Fatalf("status body %s: %v", body, err)
	}
	r := raw.Rollout
	counts, _ := r["counts"].(map[string]any)
	if resp.StatusCode != 200 || r["state"] != "active" || r["stable"] != v1[0].Version || r["canary"] != v2[0].Version ||
		r["percent"] != 10.0 || r["canary_runs"] != 20.0 || r["max_failure_rate"] != 0.05 || r["by"] != "carol" ||
		counts == nil || counts["ended"] != 0.0 {
		t.Fatalf("GET rollout: %d %s", resp.StatusCode, body)
	}
	if _, err := c.Apply(ctx, source("three")); status(err) != http.StatusConflict || !strings.Contains(err.Error(), "rollout") {
		t.Errorf("plain apply during a rollout: %v, want 409 naming the rollout", err)
	}
	if _, err := c.ApplyCanary(ctx, source("three"), starbook.CanarySpec{Percent: 10, Runs: 1}); status(err) != http.StatusConflict {
		t.Errorf("second canary during a rollout: %v, want 409", err)
	}
	ro, err := c.PromoteRollout(ctx, "rb")
	if err != nil || ro.State != starbook.RolloutPromoted || ro.EndedBy != "carol" {
		t.Fatalf("promote: %+v, %v", ro, err)
	}
	if _, err := c.AbortRollout(ctx, "rb"); status(err) != http.StatusConflict {
		t.Errorf("abort after promote: %v, want 409", err)
	}
	rbs, err := c.Runbooks(ctx)
	if err != nil || len(rbs) != 1 || rbs[0].Version != v2[0].Version {
		t.Fatalf("runbooks after promote: %+v, %v; want the canary current", rbs, err)
	}

	// Another canary, aborted: the stable (the promoted one) stays current.
	if _, err := c.ApplyCanary(ctx, source("three"), starbook.CanarySpec{Percent: 50, Runs: 3}); err != nil {
		t.Fatal(err)
	}
	if ro, err := c.AbortRollout(ctx, "rb"); err != nil || ro.State != starbook.RolloutAborted {
		t.Fatalf("abort: %+v, %v", ro, err)
	}
	if rbs, _ := c.Runbooks(ctx); rbs[0].Version != v2[0].Version {
		t.Fatalf("after abort current is %s, want %s", rbs[0].Version, v2[0].Version)
	}
}
