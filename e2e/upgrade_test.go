package e2e

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/starbook/starbook/cluster"
)

// TestServeRefusesNewerStore: `starbook serve` on a data dir whose store a
// newer release marked exits with the error that says so, and writes
// nothing to the store.
func TestServeRefusesNewerStore(t *testing.T) {
	dataDir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	withStore := func(fn func(cli *clientv3.Client)) {
		emb, err := cluster.StartEmbedded(ctx, cluster.EmbeddedConfig{Dir: dataDir, Fast: true})
		if err != nil {
			t.Fatal(err)
		}
		defer emb.Close()
		fn(emb.Client)
	}
	var rev int64
	withStore(func(cli *clientv3.Client) {
		resp, err := cli.Put(ctx, "/starbook/format", `{"format":99,"written_by":"starbook v99.0.0"}`)
		if err != nil {
			t.Fatal(err)
		}
		rev = resp.Header.Revision
	})
	out, err := exec.CommandContext(ctx, binary, "serve", "--data-dir", dataDir, "--listen", "127.0.0.1:0",
		"--runbooks", "../runbooks").CombinedOutput()
	want := fmt.Sprintf("store format 99 (written by starbook v99.0.0) is newer than this starbook understands (%d): upgrade starbook", cluster.CurrentFormat)
	if err == nil || !strings.Contains(string(out), want) {
		t.Fatalf("serve: %v, output:\n%s\nwant an exit with %q", err, out, want)
	}
	withStore(func(cli *clientv3.Client) {
		resp, err := cli.Get(ctx, "/starbook/", clientv3.WithPrefix(), clientv3.WithKeysOnly())
		if err != nil {
			t.Fatal(err)
		}
		if resp.Header.Revision != rev || len(resp.Kvs) != 1 {
			t.Errorf("after the refusal: revision %d (want %d), keys %v (want the marker only)", resp.Header.Revision, rev, resp.Kvs)
		}
	})
}
