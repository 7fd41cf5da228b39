package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/starbook/starbook/tlsconfig/tlstest"
)

// TestEmbeddedMembersPeerTLS runs three members whose peer traffic is TLS
// (https peer URLs, --peer-tls-*, a certificate of one CA each): the cluster
// lists three nodes and three healthy members with https peer URLs, and
// executions started on one node complete. A fourth process that cannot be
// their peer exits with an error on stderr naming the problem (a certificate
// and CA of another CA, a certificate of another CA, an https peer URL
// without peer TLS, a missing key file, a new member of another CA that
// finds no quorum), and after each the three members are still the only
// ones, all healthy. Once added with cluster add-member, the fourth joins
// over TLS with a certificate of the cluster's CA on the data dir its failed
// attempts left.
func TestEmbeddedMembersPeerTLS(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test runs real processes")
	}
	kc := &keyCounter{seen: map[string]int{}, latency: time.Millisecond}
	srv := httptest.NewServer(kc)
	defer srv.Close()
	ca := tlstest.NewCA(t, t.TempDir())
	c := startMembers(t, 3, "3s", withPeerTLS(ca))
	first := c.nodes[0]
	waitUntil(t, time.Minute, "a healthy cluster: 3 nodes, 3 healthy members", func() bool { return healthy(first.status(t), 3) })
	for _, m := range first.status(t).Members {
		if len(m.PeerURLs) != 1 || !strings.HasPrefix(m.PeerURLs[0], "https://") {
			t.Errorf("member %s has peer URLs %v, want one https URL", m.Name, m.PeerURLs)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := first.d.Client.Apply(ctx, map[string]string{"members.star": membersRunbook}); err != nil {
		t.Fatal(err)
	}
	input := json.RawMessage(fmt.Sprintf(`{"url": %q}`, srv.URL))
	const executions, steps = 6, 5
	var ids []string
	for range executions {
		e, err := first.d.Client.Start(ctx, "members", input)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, e.ID)
	}
	waitForAll(ctx, t, c.nodes[1], ids)
	for _, id := range ids {
		for pos := 1; pos <= 2*steps; pos += 2 {
			if kc.seen[fmt.Sprintf("%s/%d", id, pos)] == 0 {
				t.Errorf("step %s/%d never ran", id, pos)
			}
		}
	}

	good, foreign := ca.Issue(t, "m4"), tlstest.NewCA(t, t.TempDir()).Issue(t, "m4")
	port := fmt.Sprint(freePort(t))
	initial := c.initial + ",m4=https://127.0.0.1:" + port
	// Every attempt to join uses one data dir, and the last, right one joins
	// on it: the refused rows come first, the others leave it behind.
	m4dir := filepath.Join(t.TempDir(), "m4")
	tests := []struct {
		name    string
		state   string
		tls     []string
		extra   []string
		want    []string // on stderr
		refused bool     // before anything is created: no data dir
	}{
		{name: "https peer URL without peer TLS", state: "existing",
			want:    []string{"member m1 has an https peer URL but peer TLS is off: set --peer-tls-cert, --peer-tls-key and --peer-tls-ca"},
			refused: true},
		{name: "missing key file", state: "existing",
			tls:     peerTLSArgs(tlstest.Files{Cert: good.Cert, Key: good.Key + ".missing", CA: good.CA}),
			want:    []string{"peer TLS (--peer-tls-cert, --peer-tls-key, --peer-tls-ca)", good.Key + ".missing: no such file"},
			refused: true},
		{name: "certificate and CA of another CA", state: "existing", tls: peerTLSArgs(foreign),
			want: []string{"peers m1 (https://", "certificate signed by unknown authority",
				"the peer's certificate is not signed by this member's --peer-tls-ca"}},
		{name: "certificate of another CA", state: "existing",
			tls:  peerTLSArgs(tlstest.Files{Cert: foreign.Cert, Key: foreign.Key, CA: ca.File}),
			want: []string{"peers m1 (https://", "the peer refused this member's --peer-tls-cert"}},
		{name: "new member of another CA", state: "new", tls: peerTLSArgs(foreign), extra: []string{"--member-start-timeout", "2s"},
			want: []string{"embedded etcd member m4 not ready after 2s: no quorum", "peers m1 (https://",
				"the peer's certificate is not signed by this member's --peer-tls-ca"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := m4dir
			if tt.state == "new" { // a new member keeps its WAL: it could not join later
				dir = filepath.Join(t.TempDir(), "m4")
			}
			ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			args := append([]string{"serve", "--data-dir", dir, "--listen", "127.0.0.1:0"},
				memberArgs("m4", initial, port, "3s", tt.state)...)
			args = append(append(args, tt.tls...), tt.extra...)
			var stderr bytes.Buffer
			cmd := exec.CommandContext(ctx, binary, args...)
			cmd.Stderr = &stderr
			began := time.Now()
			err := cmd.Run()
			lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
			t.Logf("exited after %s (%v): %s", time.Since(began).Round(time.Millisecond), err, lines[len(lines)-1])
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() <= 0 {
				t.Fatalf("serve as m4: %v, want a non-zero exit\n%s", err, stderr.String())
			}
			for _, w := range tt.want {
				if !strings.Contains(stderr.String(), w) {
					t.Errorf("stderr does not say %q:\n%s", w, stderr.String())
				}
			}
			if _, err := os.Stat(dir); tt.refused && !os.IsNotExist(err) {
				t.Errorf("data dir %s exists after a refused start (%v)", dir, err)
			}
			if st := first.status(t); !healthy(st, 3) {
				t.Errorf("after m4's failed start: %d nodes, members %+v; want 3 nodes and 3 healthy members", len(st.Nodes), st.Members)
			}
		})
	}
	if t.Failed() {
		return
	}

	// etcd adds a member once every member has been connected for 5 s.
	waitUntil(t, time.Minute, "add-member m4", func() bool {
		out, err := run(ctx, first.d.URL, "cluster", "add-member", "m4", "https://127.0.0.1:"+port)
		if err != nil && !strings.Contains(out, "retry once every member is healthy") {
			t.Fatalf("add-member: %v\n%s", err, out)
		}
		return err == nil
	})
	m4 := &memberNode{id: "m4", dir: m4dir}
	m4.args = append(memberArgs("m4", initial, port, "3s", "existing"), peerTLSArgs(good)...)
	m4.d = startDaemon(t, m4.dir, m4.args...)
	waitUntil(t, time.Minute, "m4 joined: 4 nodes, 4 healthy members", func() bool { return healthy(m4.status(t), 4) })
}
