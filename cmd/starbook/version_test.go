package main

import (
	"encoding/json"
	"runtime"
	"strings"
	"testing"

	etcdversion "go.etcd.io/etcd/api/v3/version"

	"github.com/starbook/starbook/api/apitest"
	"github.com/starbook/starbook/buildinfo"
	"github.com/starbook/starbook/cluster"
)

func TestVersion(t *testing.T) {
	defer func(v, c, b string) { buildinfo.Version, buildinfo.Commit, buildinfo.BuildTime = v, c, b }(
		buildinfo.Version, buildinfo.Commit, buildinfo.BuildTime)
	buildinfo.Version, buildinfo.Commit, buildinfo.BuildTime = "v1.2.3", "abc123", "2026-12-01T08:00:00Z"

	t.Run("text", func(t *testing.T) {
		r := cli(t, &apitest.Service{}, "", "version")
		if r.code != 0 || r.requests != 0 {
			t.Fatalf("code %d, %d requests, stderr %q: want 0 and no request", r.code, r.requests, r.stderr)
		}
		for _, want := range []string{"version:", "v1.2.3", "commit:", "abc123", "build time:", "2026-12-01T08:00:00Z",
			"go:", runtime.Version(), "etcd:", etcdversion.Version, "store format:", "@std:", "v1.2.3+"} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("stdout lacks %q:\n%s", want, r.stdout)
			}
		}
	})
	t.Run("json", func(t *testing.T) {
		r := cli(t, &apitest.Service{}, "", "version", "--json")
		if r.code != 0 {
			t.Fatalf("code %d, stderr %q", r.code, r.stderr)
		}
		var got versionJSON
		dec := json.NewDecoder(strings.NewReader(r.stdout))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&got); err != nil {
			t.Fatalf("decode %q: %v", r.stdout, err)
		}
		if got.Version != "v1.2.3" || got.Commit != "abc123" || got.BuildTime != "2026-12-01T08:00:00Z" ||
			got.GoVersion != runtime.Version() || got.EtcdVersion != etcdversion.Version || got.StoreFormat != cluster.CurrentFormat ||
			!strings.HasPrefix(got.StdRelease, "v1.2.3+") {
			t.Errorf("version --json = %+v", got)
		}
	})
}
