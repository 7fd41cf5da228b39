package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/starbook/starbook"
	sbruntime "github.com/starbook/starbook/runtime"
	"github.com/starbook/starbook/tlsconfig/tlstest"
)

// memberNode is one starbook process embedding one etcd member of a cluster
// (serve --initial-cluster).
type memberNode struct {
	id   string
	dir  string
	args []string // serve's flags after --data-dir and --listen
	d    *daemon
}

// memberCluster is n starbook processes whose embedded members make one etcd
// cluster, on free loopback ports.
type memberCluster struct {
	nodes   []*memberNode
	initial string      // --initial-cluster
	peerCA  *tlstest.CA // signs the members' peer certificates; nil: plain http
}

// memberOption changes how startMembers starts its members.
type memberOption func(*memberCluster)

// withPeerTLS secures peer traffic: https peer URLs, and each member
// presents a certificate ca signed and requires its peers' to be signed by
// ca (--peer-tls-*).
func withPeerTLS(ca *tlstest.CA) memberOption {
	return func(c *memberCluster) { c.peerCA = ca }
}

// memberArgs are serve's flags for member id of initial.
func memberArgs(id, initial, peerPort, ttl, state string) []string {
	return []string{"--node-id", id, "--initial-cluster", initial, "--initial-cluster-state", state,
		"--peer-listen", "127.0.0.1:" + peerPort, "--session-ttl", ttl, "--stop-grace", "2s"}
}

// peerTLSArgs are serve's flags for a member's peer certificate f.
func peerTLSArgs(f tlstest.Files) []string {
	return []string{"--peer-tls-cert", f.Cert, "--peer-tls-key", f.Key, "--peer-tls-ca", f.CA}
}

// startMembers starts n members at once (none is ready before a quorum
// runs) and waits until every one is ready.
func startMembers(t testing.TB, n int, ttl string, opts ...memberOption) *memberCluster {
	t.Helper()
	c := &memberCluster{}
	for _, o := range opts {
		o(c)
	}
	scheme := "http"
	if c.peerCA != nil {
		scheme = "https"
	}
	var entries, ports []string
	for i := range n {
		port := fmt.Sprint(freePort(t))
		ports = append(ports, port)
		entries = append(entries, fmt.Sprintf("m%d=%s://127.0.0.1:%s", i+1, scheme, port))
	}
	c.initial = strings.Join(entries, ",")
	var spawned []*spawning
	for i := range n {
		mn := &memberNode{id: fmt.Sprintf("m%d", i+1), dir: t.TempDir() + "/node"}
		mn.args = memberArgs(mn.id, c.initial, ports[i], ttl, "new")
		if c.peerCA != nil {
			mn.args = append(mn.args, peerTLSArgs(c.peerCA.Issue(t, mn.id))...)
		}
		spawned = append(spawned, spawnDaemon(t, mn.dir, mn.args...))
		c.nodes = append(c.nodes, mn)
	}
	for i, s := range spawned {
		c.nodes[i].d = s.await(t)
	}
	return c
}

// restart starts the killed member n again on its data dir, with the flags
// it first started with (a member with data ignores --initial-cluster).
func (n *memberNode) restart(t testing.TB) {
	t.Helper()
	n.d = startDaemon(t, n.dir, n.args...)
}

// status asks node n for the cluster status.
func (n *memberNode) status(t testing.TB) *starbook.ClusterStatus {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := n.d.Client.Cluster(ctx)
	if err != nil {
		t.Logf("cluster status from %s: %v", n.id, err)
		return &starbook.ClusterStatus{}
	}
	return st
}

// byID returns the node with id, or nil.
func (c *memberCluster) byID(id string) *memberNode {
	for _, n := range c.nodes {
		if n.id == id {
			return n
		}
	}
	return nil
}

// healthy reports whether st lists want nodes and want members, all
// healthy, the nodes with a leader among them.
func healthy(st *starbook.ClusterStatus, want int) bool {
	if len(st.Nodes) != want || len(st.Members) != want || st.Leader == "" {
		return false
	}
	for _, m := range st.Members {
		if !m.Healthy {
			return false
		}
	}
	return true
}

const membersRunbook = `
def main(event):
    for i in range(5):
        call(http.post, event.url + "/step", json = {"i": i})
        sleep("200ms")
    return "done"
`

// TestEmbeddedMembersFailover runs three starbook processes that each embed
// one member of one etcd cluster (no separate etcd), starts 100 executions
// whose steps wait on durable timers (only the leader fires them), SIGKILLs
// the leader's process mid-way: every execution completes on the survivors.
// The killed process restarts on its data dir and rejoins: the cluster lists
// three nodes and three healthy members, and new executions complete.
func TestEmbeddedMembersFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test runs real processes")
	}
	kc := &keyCounter{seen: map[string]int{}, latency: time.Millisecond}
	srv := httptest.NewServer(kc)
	defer srv.Close()
	c := startMembers(t, 3, "3s")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	first := c.nodes[0]
	waitUntil(t, time.Minute, "a healthy cluster", func() bool { return healthy(first.status(t), 3) })
	if _, err := first.d.Client.Apply(ctx, map[string]string{"members.star": membersRunbook}); err != nil {
		t.Fatal(err)
	}
	input := json.RawMessage(fmt.Sprintf(`{"url": %q}`, srv.URL))
	const executions, steps = 100, 5
	var ids []string
	for i := range executions {
		e, err := c.nodes[i%3].d.Client.Start(ctx, "members", input)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, e.ID)
	}
	waitUntil(t, 2*time.Minute, "20% progress", func() bool { return kc.count() >= executions*steps/5 })
	leader := c.byID(first.status(t).Leader)
	if leader == nil {
		t.Fatal("no leader among the nodes")
	}
	t.Logf("killing leader %s at %d requests", leader.id, kc.count())
	leader.d.kill(t)
	var survivor *memberNode
	for _, n := range c.nodes {
		if n != leader {
			survivor = n
		}
	}
	waitForAll(ctx, t, survivor, ids)
	t.Logf("all %d executions completed at %d requests", executions, kc.count())
	for _, id := range ids {
		for pos := 1; pos <= 2*steps; pos += 2 {
			if kc.seen[fmt.Sprintf("%s/%d", id, pos)] == 0 {
				t.Errorf("step %s/%d never ran", id, pos)
			}
		}
	}

	leader.restart(t)
	waitUntil(t, time.Minute, "the restarted node to rejoin: 3 nodes, 3 healthy members", func() bool {
		return healthy(leader.status(t), 3)
	})
	var more []string
	for range 10 {
		e, err := leader.d.Client.Start(ctx, "members", input)
		if err != nil {
			t.Fatal(err)
		}
		more = append(more, e.ID)
	}
	waitForAll(ctx, t, leader, more)
}

// waitForAll waits until every execution of ids completed, asking n.
func waitForAll(ctx context.Context, t testing.TB, n *memberNode, ids []string) {
	t.Helper()
	for _, id := range ids {
		e, _, err := n.d.Client.Wait(ctx, id, 2*time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if e.Status != sbruntime.StatusCompleted {
			t.Fatalf("execution %s ended %s: %s", id, e.Status, e.Error)
		}
	}
}

// TestEmbeddedMembersAddRemove adds a fourth member with starbook cluster
// add-member, starts it with the line printed and
// --initial-cluster-state existing, runs an execution through it, then
// removes it with remove-member. Removing an unknown name is refused.
func TestEmbeddedMembersAddRemove(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test runs real processes")
	}
	c := startMembers(t, 3, "3s")
	first := c.nodes[0]
	waitUntil(t, time.Minute, "a healthy cluster", func() bool { return healthy(first.status(t), 3) })
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	reserved, release := reservePort(t)
	port := fmt.Sprint(reserved)
	var out string
	// etcd adds a member once every member has been connected for 5 s.
	waitUntil(t, time.Minute, "add-member", func() bool {
		var err error
		out, err = run(ctx, first.d.URL, "cluster", "add-member", "m4", "http://127.0.0.1:"+port)
		if err != nil && !strings.Contains(out, "retry once every member is healthy") {
			t.Fatalf("add-member: %v\n%s", err, out)
		}
		return err == nil
	})
	t.Logf("add-member:\n%s", out)
	line := ""
	for _, f := range strings.Fields(out) {
		if v, ok := strings.CutPrefix(f, "--initial-cluster="); ok {
			line = v
		}
	}
	if want := c.initial + ",m4=http://127.0.0.1:" + port; !sameMembers(line, want) || !strings.Contains(out, "--initial-cluster-state=existing") {
		t.Fatalf("add-member printed --initial-cluster=%s, want the members of %s and state existing", line, want)
	}
	m4 := &memberNode{id: "m4", dir: t.TempDir() + "/node"}
	m4.args = memberArgs("m4", line, port, "3s", "existing")
	release()
	m4.d = startDaemon(t, m4.dir, m4.args...)
	c.nodes = append(c.nodes, m4)
	waitUntil(t, time.Minute, "4 nodes, 4 healthy members", func() bool { return healthy(m4.status(t), 4) })

	if _, err := m4.d.Client.Apply(ctx, map[string]string{"hello.star": `
def main(event):
    sleep("100ms")
    return "hi"
`}); err != nil {
		t.Fatal(err)
	}
	e, err := m4.d.Client.Start(ctx, "hello", nil)
	if err != nil {
		t.Fatal(err)
	}
	waitForAll(ctx, t, first, []string{e.ID})

	if out, err := run(ctx, first.d.URL, "cluster", "remove-member", "nope"); err == nil || !strings.Contains(out, "no member named nope") {
		t.Errorf("remove-member nope: %v\n%s; want refused: no member named nope", err, out)
	}
	m4.d.stop(t) // a removed member stops serving: stop its node first
	if out, err := run(ctx, first.d.URL, "cluster", "remove-member", "m4"); err != nil {
		t.Fatalf("remove-member m4: %v\n%s", err, out)
	}
	waitUntil(t, time.Minute, "3 members again", func() bool {
		st := first.status(t)
		return len(st.Members) == 3 && healthy(st, 3)
	})
	e, err = first.d.Client.Start(ctx, "hello", nil)
	if err != nil {
		t.Fatal(err)
	}
	waitForAll(ctx, t, first, []string{e.ID})
}

// sameMembers reports whether two --initial-cluster values list the same
// members, in any order.
func sameMembers(a, b string) bool {
	as, bs := strings.Split(a, ","), strings.Split(b, ",")
	if len(as) != len(bs) {
		return false
	}
	seen := map[string]bool{}
	for _, m := range as {
		seen[m] = true
	}
	for _, m := range bs {
		if !seen[m] {
			return false
		}
	}
	return true
}

// TestBadInitialCluster runs serve with bad member flags: each exits with a
// clear error and leaves no data dir behind.
func TestBadInitialCluster(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"not a member", []string{"--node-id", "x", "--initial-cluster", "a=http://127.0.0.1:1,b=http://127.0.0.1:2", "--peer-listen", "127.0.0.1:1"},
			`no member named "x"`},
		{"duplicate name", []string{"--node-id", "a", "--initial-cluster", "a=http://127.0.0.1:1,a=http://127.0.0.1:2", "--peer-listen", "127.0.0.1:1"},
			`member "a" appears twice`},
		{"bad url", []string{"--node-id", "a", "--initial-cluster", "a=ftp://127.0.0.1:1", "--peer-listen", "127.0.0.1:1"},
			"scheme must be http or https"},
		{"no node id", []string{"--initial-cluster", "a=http://127.0.0.1:1", "--peer-listen", "127.0.0.1:1"},
			"set --node-id"},
		{"no peer listen", []string{"--node-id", "a", "--initial-cluster", "a=http://127.0.0.1:1"},
			"needs --peer-listen"},
		{"with etcd endpoints", []string{"--node-id", "a", "--initial-cluster", "a=http://127.0.0.1:1", "--peer-listen", "127.0.0.1:1",
			"--etcd-endpoints", "http://127.0.0.1:2379"}, "excludes --etcd-endpoints"},
		{"bad state", []string{"--node-id", "a", "--initial-cluster", "a=http://127.0.0.1:1", "--peer-listen", "127.0.0.1:1",
			"--initial-cluster-state", "old"}, "want new or existing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "data")
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			args := append([]string{"serve", "--data-dir", dir, "--listen", "127.0.0.1:0"}, tt.args...)
			out, err := exec.CommandContext(ctx, binary, args...).CombinedOutput()
			if err == nil || !strings.Contains(string(out), tt.wantErr) {
				t.Fatalf("serve %s: %v\n%s\nwant an error containing %q", strings.Join(tt.args, " "), err, out, tt.wantErr)
			}
			if _, err := os.Stat(dir); !os.IsNotExist(err) {
				t.Errorf("data dir %s exists after a refused start (%v)", dir, err)
			}
		})
	}
}

// TestEmbeddedMembersJoinLaggingFollower starts a member right after
// cluster add-member while the follower it asks first for the cluster's
// members (the lowest peer URL) has not applied the add yet: stopped with
// SIGSTOP, resumed once the new member asked. etcd refuses to start a
// joining member on a member list it does not match ("member count is
// unequal"); the new member asks again and joins.
func TestEmbeddedMembersJoinLaggingFollower(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test runs real processes")
	}
	var c *memberCluster
	var leader, lagging *memberNode
	for try := 0; lagging == nil; try++ { // the lowest peer URL must be a follower's
		if try == 8 {
			t.Fatal("the lowest peer URL was the leader's in 8 clusters")
		}
		c = startMembers(t, 3, "3s")
		var st *starbook.ClusterStatus
		waitUntil(t, time.Minute, "a healthy cluster", func() bool { st = c.nodes[0].status(t); return healthy(st, 3) })
		lowest := st.Members[0]
		for _, m := range st.Members {
			if m.PeerURLs[0] < lowest.PeerURLs[0] {
				lowest = m
			}
		}
		if lowest.Name != st.Leader {
			leader, lagging = c.byID(st.Leader), c.byID(lowest.Name)
			break
		}
		for _, n := range c.nodes {
			n.d.kill(t)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	reserved, release := reservePort(t)
	port := fmt.Sprint(reserved)
	// etcd adds a member once every member has been connected for 5 s; a
	// stopped process keeps its connections.
	waitUntil(t, time.Minute, "add-member with a follower stopped", func() bool {
		if err := lagging.d.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		out, err := run(ctx, leader.d.URL, "cluster", "add-member", "m4", "http://127.0.0.1:"+port)
		if err != nil {
			_ = lagging.d.cmd.Process.Signal(syscall.SIGCONT)
			if !strings.Contains(out, "retry once every member is healthy") {
				t.Fatalf("add-member: %v\n%s", err, out)
			}
		}
		return err == nil
	})
	m4 := &memberNode{id: "m4", dir: t.TempDir() + "/node"}
	m4.args = memberArgs("m4", c.initial+",m4=http://127.0.0.1:"+port, port, "3s", "existing")
	release()
	joining := spawnDaemon(t, m4.dir, m4.args...)
	time.Sleep(300 * time.Millisecond) // the new member's request waits on the stopped follower
	if err := lagging.d.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	m4.d = joining.await(t)
	waitUntil(t, time.Minute, "4 nodes, 4 healthy members", func() bool { return healthy(m4.status(t), 4) })
}
