package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	sbruntime "github.com/starbook/starbook/runtime"
)

// TestEmbeddedMembersRestore is the disaster recovery of a cluster of
// embedded members: three members run executions (three completed, one
// parked on an approval, one on a signal), `snapshot save` goes through one
// node, and all three processes are SIGKILLed and their data dirs deleted.
// The file is restored once per member (--name m1, m2, --node-id m3) into
// three new data dirs with one new --initial-cluster on new peer ports, and
// `serve` starts each on its dir: the cluster lists three nodes and three
// healthy members, every execution reads as it was saved (id, status,
// history), and the parked ones, approved and signalled with the CLI,
// complete.
func TestEmbeddedMembersRestore(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test runs real processes")
	}
	c := startMembers(t, 3, "3s")
	first := c.nodes[0]
	waitUntil(t, time.Minute, "a healthy cluster", func() bool { return healthy(first.status(t), 3) })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := first.d.Client.Apply(ctx, map[string]string{
		"steps.star":  "def main(event):\n    return call(lambda: \"done\")\n",
		"gate.star":   "def main(event):\n    ok = wait_for_approval(\"go?\", approvers = [])\n    return call(lambda: \"approved\") if ok else \"no\"\n",
		"signal.star": "def main(event):\n    sig = wait_for_signal(\"go\")\n    return call(lambda: \"signalled \" + sig[\"name\"])\n",
	}); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for i := range 3 {
		e, err := c.nodes[i].d.Client.Start(ctx, "steps", nil)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, e.ID)
	}
	waitForAll(ctx, t, first, ids)
	gate, err := c.nodes[1].d.Client.Start(ctx, "gate", nil)
	if err != nil {
		t.Fatal(err)
	}
	signal, err := c.nodes[2].d.Client.Start(ctx, "signal", nil)
	if err != nil {
		t.Fatal(err)
	}
	ids = append(ids, gate.ID, signal.ID)
	awaitWaiting(ctx, t, first.d.Client, gate.ID, "approval")
	awaitWaiting(ctx, t, first.d.Client, signal.ID, "signal")
	before := map[string]string{}
	for _, id := range ids {
		before[id] = executionJSON(ctx, t, first.d, id)
	}
	file := filepath.Join(t.TempDir(), "backup.snapshot")
	if out, err := run(ctx, c.nodes[1].d.URL, "snapshot", "save", file); err != nil || !strings.Contains(out, "sha256 checked") {
		t.Fatalf("snapshot save: %v %s", err, out)
	}
	for _, n := range c.nodes {
		n.d.kill(t)
		if err := os.RemoveAll(n.dir); err != nil {
			t.Fatal(err)
		}
	}

	var entries, ports []string
	for _, n := range c.nodes {
		port := fmt.Sprint(freePort(t))
		ports = append(ports, port)
		entries = append(entries, fmt.Sprintf("%s=http://127.0.0.1:%s", n.id, port))
	}
	initial := strings.Join(entries, ",")
	var spawned []*spawning
	for i, n := range c.nodes {
		n.dir = t.TempDir() + "/node"
		nameFlag := "--name"
		if i == 2 {
			nameFlag = "--node-id" // serve's name for it, accepted as an alias
		}
		out, err := run(ctx, first.d.URL, "snapshot", "restore", file, "--data-dir", n.dir, nameFlag, n.id, "--initial-cluster", initial)
		if err != nil || !strings.Contains(out, "--node-id "+n.id+" --initial-cluster "+initial) {
			t.Fatalf("snapshot restore %s %s: %v\n%s", nameFlag, n.id, err, out)
		}
		n.args = memberArgs(n.id, initial, ports[i], "3s", "new")
		spawned = append(spawned, spawnDaemon(t, n.dir, n.args...))
	}
	for i, s := range spawned { // no member is ready before a quorum runs
		c.nodes[i].d = s.await(t)
	}
	for _, n := range c.nodes {
		waitUntil(t, time.Minute, n.id+" to see 3 nodes and 3 healthy members", func() bool { return healthy(n.status(t), 3) })
	}
	var got []string
	for _, m := range first.status(t).Members {
		got = append(got, m.Name+"="+strings.Join(m.PeerURLs, "+"))
	}
	if !sameMembers(strings.Join(got, ","), initial) {
		t.Errorf("restored cluster's members: %v, want %s", got, initial)
	}
	for _, n := range c.nodes {
		for _, id := range ids {
			if got := executionJSON(ctx, t, n.d, id); got != before[id] {
				t.Errorf("%s from %s after restore:\n%s\nbefore:\n%s", id, n.id, got, before[id])
			}
		}
	}

	if out, err := run(ctx, c.nodes[2].d.URL, "approve", gate.ID); err != nil {
		t.Fatalf("approve: %v %s", err, out)
	}
	if out, err := run(ctx, c.nodes[1].d.URL, "signal", signal.ID, "go"); err != nil {
		t.Fatalf("signal: %v %s", err, out)
	}
	for id, want := range map[string]string{gate.ID: `"approved"`, signal.ID: `"signalled go"`} {
		e, _, err := first.d.Client.Wait(ctx, id, time.Minute)
		if err != nil || e.Status != sbruntime.StatusCompleted || string(e.Result) != want {
			t.Fatalf("%s after it was resumed: %v %+v, want completed with %s", id, err, e, want)
		}
	}
}
