package cluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/starbook/starbook/tlsconfig/tlstest"
)

func TestParseInitialCluster(t *testing.T) {
	tests := []struct {
		name, in string
		want     []Member
		wantErr  string
	}{
		{name: "three", in: "a=http://10.0.0.1:2380,b=http://10.0.0.2:2380,c=https://c.example:2380",
			want: []Member{{"a", "http://10.0.0.1:2380"}, {"b", "http://10.0.0.2:2380"}, {"c", "https://c.example:2380"}}},
		{name: "one", in: "solo=http://127.0.0.1:2380", want: []Member{{"solo", "http://127.0.0.1:2380"}}},
		{name: "empty", in: "", wantErr: "empty"},
		{name: "blank", in: "  ", wantErr: "empty"},
		{name: "no equals", in: "a", wantErr: `"a" is not name=peerURL`},
		{name: "no name", in: "=http://h:1", wantErr: "is not name=peerURL"},
		{name: "no url", in: "a=", wantErr: "is not name=peerURL"},
		{name: "trailing comma", in: "a=http://h:1,", wantErr: `"" is not name=peerURL`},
		{name: "duplicate name", in: "a=http://h:1,a=http://h:2", wantErr: `member "a" appears twice`},
		{name: "duplicate url", in: "a=http://h:1,b=http://h:1", wantErr: "peer URL http://h:1 appears twice"},
		{name: "bad scheme", in: "a=tcp://h:1", wantErr: "scheme must be http or https"},
		{name: "no port", in: "a=http://h", wantErr: "want scheme://host:port"},
		{name: "port zero", in: "a=http://h:0", wantErr: "is not 1-65535"},
		{name: "path", in: "a=http://h:1/x", wantErr: "host:port only"},
		{name: "user", in: "a=http://u@h:1", wantErr: "host:port only"},
		{name: "bad name", in: "a b=http://h:1", wantErr: "only letters"},
		{name: "not a url", in: "a=http://[::1", wantErr: "peer URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseInitialCluster(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseInitialCluster(%q) = %v, %v; want error containing %q", tt.in, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("ParseInitialCluster(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
			}
			if back := FormatInitialCluster(got); back != tt.in {
				t.Errorf("FormatInitialCluster = %q, want %q", back, tt.in)
			}
		})
	}
}

func TestMemberConfigValidate(t *testing.T) {
	three := []Member{{"a", "http://h:1"}, {"b", "http://h:2"}, {"c", "http://h:3"}}
	mixed := []Member{{"a", "http://h:1"}, {"b", "http://h:2"}, {"c", "https://h:3"}}
	tls := &EtcdTLS{CertFile: "c", KeyFile: "k", CAFile: "ca"}
	tests := []struct {
		name    string
		cfg     MemberConfig
		wantErr string
	}{
		{name: "ok", cfg: MemberConfig{Name: "b", InitialCluster: three, PeerListen: "127.0.0.1:2"}},
		{name: "existing", cfg: MemberConfig{Name: "b", InitialCluster: three, PeerListen: ":2", State: StateExisting}},
		{name: "no name", cfg: MemberConfig{InitialCluster: three, PeerListen: ":2"}, wantErr: "set --node-id"},
		{name: "not a member", cfg: MemberConfig{Name: "d", InitialCluster: three, PeerListen: ":2"},
			wantErr: `no member named "d" (this node's --node-id); members: a, b, c`},
		{name: "bad state", cfg: MemberConfig{Name: "a", InitialCluster: three, PeerListen: ":2", State: "old"}, wantErr: "want new or existing"},
		{name: "bad peer listen", cfg: MemberConfig{Name: "a", InitialCluster: three, PeerListen: "2380"}, wantErr: "--peer-listen"},
		{name: "https without tls", cfg: MemberConfig{Name: "a", InitialCluster: []Member{{"a", "https://h:1"}}, PeerListen: ":1"},
			wantErr: "member a has an https peer URL but peer TLS is off: set --peer-tls-cert, --peer-tls-key and --peer-tls-ca"},
		{name: "another member https without tls", cfg: MemberConfig{Name: "a", InitialCluster: mixed, PeerListen: ":1"},
			wantErr: "member c has an https peer URL but peer TLS is off"},
		{name: "tls with http", cfg: MemberConfig{Name: "a", InitialCluster: three, PeerListen: ":1", PeerTLS: tls},
			wantErr: "member a has an http peer URL but peer TLS is on: use https"},
		{name: "tls with another member http", cfg: MemberConfig{Name: "c", InitialCluster: mixed, PeerListen: ":1", PeerTLS: tls},
			wantErr: "member a has an http peer URL but peer TLS is on: use https"},
		{name: "tls incomplete", cfg: MemberConfig{Name: "a", InitialCluster: []Member{{"a", "https://h:1"}}, PeerListen: ":1",
			PeerTLS: &EtcdTLS{CertFile: "c"}}, wantErr: "needs --peer-tls-cert, --peer-tls-key and --peer-tls-ca: set --peer-tls-key and --peer-tls-ca too"},
		{name: "cert without key", cfg: MemberConfig{Name: "a", InitialCluster: []Member{{"a", "https://h:1"}}, PeerListen: ":1",
			PeerTLS: &EtcdTLS{CertFile: "c", CAFile: "ca"}}, wantErr: "set --peer-tls-key too"},
		{name: "cert without ca", cfg: MemberConfig{Name: "a", InitialCluster: []Member{{"a", "https://h:1"}}, PeerListen: ":1",
			PeerTLS: &EtcdTLS{CertFile: "c", KeyFile: "k"}}, wantErr: "set --peer-tls-ca too"},
		{name: "key and ca without cert", cfg: MemberConfig{Name: "a", InitialCluster: []Member{{"a", "https://h:1"}}, PeerListen: ":1",
			PeerTLS: &EtcdTLS{KeyFile: "k", CAFile: "ca"}}, wantErr: "set --peer-tls-cert too"},
		{name: "ca only with http", cfg: MemberConfig{Name: "a", InitialCluster: three, PeerListen: ":1",
			PeerTLS: &EtcdTLS{CAFile: "ca"}}, wantErr: "set --peer-tls-cert and --peer-tls-key too"},
		{name: "tls", cfg: MemberConfig{Name: "a", InitialCluster: []Member{{"a", "https://h:1"}}, PeerListen: ":1", PeerTLS: tls}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Validate() = %v, want error containing %q", err, tt.wantErr)
			}
		})
	}
}

// TestProbePeers: a member that cannot reach its peers says why, per peer,
// in terms of its --peer-tls-* flags: a peer whose certificate another CA
// signed, one that refuses this member's certificate, one that does not
// serve TLS and one that is down are each listed with their reason; a peer
// that answers is not listed.
func TestProbePeers(t *testing.T) {
	ca := tlstest.NewCA(t, t.TempDir())
	other := tlstest.NewCA(t, t.TempDir())
	own, peer, foreign := ca.Issue(t, "own"), ca.Issue(t, "peer"), other.Issue(t, "foreign")
	serveTLS := func(cert tlstest.Files, clientCA string) string {
		t.Helper()
		pair, err := tls.LoadX509KeyPair(cert.Cert, cert.Key)
		if err != nil {
			t.Fatal(err)
		}
		pem, err := os.ReadFile(clientCA)
		if err != nil {
			t.Fatal(err)
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(pem)
		srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
		srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes
		srv.TLS = &tls.Config{Certificates: []tls.Certificate{pair}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool}
		srv.StartTLS()
		t.Cleanup(srv.Close)
		return srv.URL
	}
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer plain.Close()
	down := httptest.NewServer(nil)
	down.Close()
	tests := []struct {
		name, url, want string // want "": not listed
	}{
		{"good", serveTLS(peer, ca.File), ""},
		{"foreign", serveTLS(foreign, ca.File), "certificate signed by unknown authority"},
		{"strict", serveTLS(peer, other.File), "the peer refused this member's --peer-tls-cert"},
		{"plain", strings.Replace(plain.URL, "http://", "https://", 1), "server gave HTTP response to HTTPS client"},
		{"down", strings.Replace(down.URL, "http://", "https://", 1), "connection refused"},
	}
	cfg := &MemberConfig{Name: "own", InitialCluster: []Member{{"own", "https://127.0.0.1:1"}}, PeerListen: "127.0.0.1:1",
		PeerTLS: &EtcdTLS{CertFile: own.Cert, KeyFile: own.Key, CAFile: own.CA}}
	for _, tt := range tests {
		cfg.InitialCluster = append(cfg.InitialCluster, Member{tt.name, tt.url})
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	got := cfg.probePeers()
	t.Logf("probePeers: %s", got)
	parts := strings.Split(got, "; ")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var part string
			for _, p := range parts {
				if strings.Contains(p, " "+tt.name+" ("+tt.url+")") {
					part = p
				}
			}
			if tt.want == "" && part != "" || !strings.Contains(part, tt.want) {
				t.Errorf("peer %s listed as %q, want %q", tt.name, part, tt.want)
			}
		})
	}
	if err := cfg.withPeerProblems(errors.New("no quorum")); !strings.HasPrefix(err.Error(), "no quorum; peer") {
		t.Errorf("withPeerProblems = %v, want the error then the peers' problems", err)
	}
}

// startMembers starts n in-process embedded members of one cluster on free
// loopback ports, at once (none is ready before a quorum runs); with ca,
// their peer URLs are https, each with a certificate ca issued.
func startMembers(t *testing.T, n int, ca *tlstest.CA) ([]*Embedded, []*MemberConfig) {
	t.Helper()
	scheme := "http"
	if ca != nil {
		scheme = "https"
	}
	var members []Member
	for i := range n {
		addr, err := freeAddr("127.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		members = append(members, Member{Name: fmt.Sprintf("m%d", i+1), PeerURL: scheme + "://" + addr})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	embs := make([]*Embedded, n)
	cfgs := make([]*MemberConfig, n)
	errs := make([]error, n)
	for i, m := range members {
		cfgs[i] = &MemberConfig{Name: m.Name, InitialCluster: members,
			PeerListen: strings.TrimPrefix(m.PeerURL, scheme+"://"), ReadyTimeout: 20 * time.Second}
		if ca != nil {
			f := ca.Issue(t, m.Name)
			cfgs[i].PeerTLS = &EtcdTLS{CertFile: f.Cert, KeyFile: f.Key, CAFile: f.CA}
		}
	}
	logTo := testLogTo(t)
	var wg sync.WaitGroup
	for i := range members {
		wg.Go(func() {
			embs[i], errs[i] = StartEmbedded(ctx, EmbeddedConfig{Dir: t.TempDir(), NoFsync: true, Fast: true, Member: cfgs[i], logTo: logTo})
		})
	}
	wg.Wait()
	for i, e := range embs {
		if e != nil {
			t.Cleanup(e.Close)
		}
		if errs[i] != nil {
			t.Fatalf("start %s: %v", members[i].Name, errs[i])
		}
	}
	return embs, cfgs
}

// TestMembersHealthWithoutClientURL: a member whose client URL cannot be
// reached from here (as another host's loopback URL cannot) is healthy
// while its peer URL answers as a member of this cluster, over peer TLS
// too, and unhealthy once its process is gone.
func TestMembersHealthWithoutClientURL(t *testing.T) {
	for _, peerTLS := range []bool{false, true} {
		t.Run(fmt.Sprintf("peer TLS %v", peerTLS), func(t *testing.T) {
			var ca *tlstest.CA
			if peerTLS {
				ca = tlstest.NewCA(t, t.TempDir())
			}
			embs, cfgs := startMembers(t, 3, ca)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			tc, err := cfgs[0].PeerClientTLS()
			if err != nil {
				t.Fatal(err)
			}
			m := NewMembership(embs[0].Client, tc)
			health := func() map[string]bool {
				list, err := m.Members(ctx)
				if err != nil {
					t.Fatal(err)
				}
				got := map[string]bool{}
				for _, mb := range list {
					got[mb.Name] = mb.Healthy
				}
				return got
			}
			if got := health(); !got["m1"] || !got["m2"] || !got["m3"] {
				t.Fatalf("health %v, want all three healthy", got)
			}
			// m2's client URL stops answering; its peer URL still does.
			for _, l := range embs[1].Etcd.Clients {
				l.Close()
			}
			if got := health(); !got["m2"] {
				t.Errorf("m2 without a reachable client URL: health %v, want healthy through its peer URL", got)
			}
			// m3's process is gone: neither answers.
			embs[2].Close()
			if got := health(); got["m3"] || !got["m1"] || !got["m2"] {
				t.Errorf("after m3 stopped: health %v, want m1 and m2 healthy, m3 not", got)
			}
		})
	}
}

// TestMemberMark: a data dir that held member m1 of a cluster of embedded
// members starts again only as m1; as another member, as a single node, or
// with a mark that names nothing it is refused with the flags to use, and
// nothing is started.
func TestMemberMark(t *testing.T) {
	dir := t.TempDir()
	addr, err := freeAddr("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	solo := []Member{{Name: "m1", PeerURL: "http://" + addr}}
	member := func(name string) *MemberConfig {
		return &MemberConfig{Name: name, InitialCluster: []Member{{Name: name, PeerURL: solo[0].PeerURL}},
			PeerListen: addr, ReadyTimeout: 20 * time.Second}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	emb, err := StartEmbedded(ctx, EmbeddedConfig{Dir: dir, NoFsync: true, Fast: true, Member: member("m1")})
	if err != nil {
		t.Fatal(err)
	}
	emb.Close()
	if held, err := readMemberMark(dir); err != nil || held != "m1" {
		t.Fatalf("mark after m1 started: %q %v, want m1", held, err)
	}
	tests := []struct {
		name   string
		mark   string // written over the mark first, if set
		member *MemberConfig
		want   string // "" starts
	}{
		{name: "as another member", member: member("m2"), want: "holds member m1, not m2: start it with --node-id m1"},
		{name: "as a single node", member: nil, want: "holds member m1 of a cluster of embedded members: start it with --node-id m1 --initial-cluster"},
		{name: "a mark naming nothing", mark: `{"name": ""}`, member: member("m1"), want: "does not name a member"},
		{name: "as itself", member: member("m1")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.mark != "" {
				good, _ := os.ReadFile(memberFile(dir))
				if err := os.WriteFile(memberFile(dir), []byte(tt.mark), 0o600); err != nil {
					t.Fatal(err)
				}
				defer os.WriteFile(memberFile(dir), good, 0o600)
			}
			emb, err := StartEmbedded(ctx, EmbeddedConfig{Dir: dir, NoFsync: true, Fast: true, Member: tt.member})
			if emb != nil {
				emb.Close()
			}
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("start: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("start: %v, want an error with %q", err, tt.want)
			}
		})
	}
}

// TestStoredMemberChecked: a data dir without member.json (a single node's,
// or a member's from before the file) starts only as what etcd holds in it:
// a single node's dir as a member, a member's dir as a single node, or a
// member's dir with another peer URL than it has are refused with what to
// do; a member's dir started as itself starts and gets its member.json.
func TestStoredMemberChecked(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := func(dir string, m *MemberConfig) error {
		emb, err := StartEmbedded(ctx, EmbeddedConfig{Dir: dir, NoFsync: true, Fast: true, Member: m})
		if emb != nil {
			emb.Close()
		}
		return err
	}
	solo := func(t *testing.T, name string) (*MemberConfig, string) {
		addr, err := freeAddr("127.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		return &MemberConfig{Name: name, InitialCluster: []Member{{Name: name, PeerURL: "http://" + addr}},
			PeerListen: addr, ReadyTimeout: 20 * time.Second}, addr
	}
	single := t.TempDir()
	if err := start(single, nil); err != nil {
		t.Fatal(err)
	}
	member := t.TempDir()
	m1, _ := solo(t, "m1")
	if err := start(member, m1); err != nil {
		t.Fatal(err)
	}
	moved, _ := solo(t, "m1") // the same name at another peer URL
	tests := []struct {
		name   string
		dir    string
		member *MemberConfig
		want   string // "" starts
	}{
		{"a single node's dir as a member", single, m1, "holds a single node's store, not member m1: to make a cluster of it, save a snapshot and restore it"},
		{"a member's dir as a single node", member, nil, "holds a member of a cluster of embedded members (one member at " + m1.InitialCluster[0].PeerURL + ")"},
		{"a member's dir at another peer URL", member, moved, "not " + moved.InitialCluster[0].PeerURL + " as --initial-cluster says"},
		{"a member's dir as itself", member, m1, ""},
		{"a single node's dir as a single node", single, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			os.Remove(memberFile(tt.dir)) // as from before member.json
			err := start(tt.dir, tt.member)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("start: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("start: %v, want an error with %q", err, tt.want)
			}
			held, err := readMemberMark(tt.dir)
			want := ""
			if tt.want == "" && tt.member != nil {
				want = tt.member.Name // written once it started as itself
			}
			if err != nil || held != want {
				t.Errorf("member.json names %q (%v), want %q", held, err, want)
			}
		})
	}
}
