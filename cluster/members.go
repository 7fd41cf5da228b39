package cluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/starbook/starbook"
	sbruntime "github.com/starbook/starbook/runtime"
	"github.com/starbook/starbook/tlsconfig"
)

// Member is one member of a cluster of embedded etcd members: its name (the
// starbook node's id) and the URL its peers reach it at.
type Member struct {
	Name    string
	PeerURL string
}

// Cluster states of a starting member (etcd's --initial-cluster-state).
const (
	StateNew      = "new"      // one of the members that bootstrap the cluster together
	StateExisting = "existing" // a member added later (starbook cluster add-member)
)

// Default raft timing of embedded members. A process that dies with the
// raft leader costs an election (one to two election timeouts), and the new
// leader gives every lease an election timeout more: short timeouts keep a
// fail-over within the session TTL + 1 s. Networks slower than a data
// centre's need longer ones (serve --member-election-timeout).
const (
	DefaultMemberHeartbeat       = 25 * time.Millisecond
	DefaultMemberElectionTimeout = 250 * time.Millisecond
)

// MemberConfig makes the embedded etcd one member of a cluster of embedded
// members, one per starbook node.
type MemberConfig struct {
	// Name is this member's name: it must be one of InitialCluster's.
	Name string
	// InitialCluster lists every member the cluster starts with (for
	// StateExisting: the members after this one was added). A member that
	// restarts on its data ignores it, as etcd does.
	InitialCluster []Member
	// PeerListen is the host:port the member's peer listener binds; it
	// advertises its URL from InitialCluster.
	PeerListen string
	// State is StateNew (default) or StateExisting.
	State string
	// PeerTLS, when set, secures peer traffic: the member serves its peer
	// URL with CertFile/KeyFile and requires peers' certificates signed by
	// CAFile (peer URLs must then be https).
	PeerTLS *EtcdTLS
	// Heartbeat and ElectionTimeout are raft's timing; zero takes the
	// defaults above.
	Heartbeat, ElectionTimeout time.Duration
	// ReadyTimeout bounds the wait for a quorum at start (default 2 min).
	ReadyTimeout time.Duration
}

// ParseInitialCluster parses an --initial-cluster value,
// "name=peerURL,name=peerURL,...": at least one member, unique names and
// URLs, each URL http(s)://host:port with nothing else.
func ParseInitialCluster(s string) ([]Member, error) {
	if strings.TrimSpace(s) == "" {
		return nil, errors.New("--initial-cluster: empty: want name=peerURL,... with at least one member")
	}
	var members []Member
	names, urls := map[string]bool{}, map[string]bool{}
	for _, entry := range strings.Split(s, ",") {
		name, u, ok := strings.Cut(strings.TrimSpace(entry), "=")
		if !ok || name == "" || u == "" {
			return nil, fmt.Errorf("--initial-cluster: %q is not name=peerURL", entry)
		}
		if err := checkMemberName(name); err != nil {
			return nil, fmt.Errorf("--initial-cluster: %w", err)
		}
		if names[name] {
			return nil, fmt.Errorf("--initial-cluster: member %q appears twice", name)
		}
		if err := CheckPeerURL(u); err != nil {
			return nil, fmt.Errorf("--initial-cluster: member %s: %w", name, err)
		}
		if urls[u] {
			return nil, fmt.Errorf("--initial-cluster: peer URL %s appears twice", u)
		}
		names[name], urls[u] = true, true
		members = append(members, Member{Name: name, PeerURL: u})
	}
	return members, nil
}

// FormatInitialCluster is the --initial-cluster value of members.
func FormatInitialCluster(members []Member) string {
	parts := make([]string, len(members))
	for i, m := range members {
		parts[i] = m.Name + "=" + m.PeerURL
	}
	return strings.Join(parts, ",")
}

// checkMemberName accepts what a node id may be and etcd takes as a name.
func checkMemberName(name string) error {
	if len(name) > 128 {
		return fmt.Errorf("member name %.20q... is longer than 128 bytes", name)
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return fmt.Errorf("member name %q: only letters, digits, '-', '_' and '.'", name)
		}
	}
	return nil
}

// CheckPeerURL accepts http(s)://host:port and nothing more (no path, query
// or user): what etcd advertises and peers dial.
func CheckPeerURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("peer URL %q: %w", s, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("peer URL %q: scheme must be http or https", s)
	}
	if u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("peer URL %q: want scheme://host:port only", s)
	}
	host, port, err := net.SplitHostPort(u.Host)
	if err != nil || host == "" {
		return fmt.Errorf("peer URL %q: want scheme://host:port", s)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return fmt.Errorf("peer URL %q: port %q is not 1-65535", s, port)
	}
	return nil
}

// Validate checks the configuration before anything is created.
func (c *MemberConfig) Validate() error {
	if c.Name == "" {
		return errors.New("--initial-cluster needs this node's name: set --node-id")
	}
	own := c.own()
	if own == nil {
		names := make([]string, len(c.InitialCluster))
		for i, m := range c.InitialCluster {
			names[i] = m.Name
		}
		return fmt.Errorf("--initial-cluster has no member named %q (this node's --node-id); members: %s",
			c.Name, strings.Join(names, ", "))
	}
	switch c.State {
	case "", StateNew, StateExisting:
	default:
		return fmt.Errorf("--initial-cluster-state %q: want new or existing", c.State)
	}
	if _, port, err := net.SplitHostPort(c.PeerListen); err != nil || port == "" {
		return fmt.Errorf("--peer-listen %q: want host:port", c.PeerListen)
	}
	if t := c.PeerTLS; t.Enabled() {
		var unset []string
		for _, f := range []struct{ flag, file string }{
			{"--peer-tls-cert", t.CertFile}, {"--peer-tls-key", t.KeyFile}, {"--peer-tls-ca", t.CAFile},
		} {
			if f.file == "" {
				unset = append(unset, f.flag)
			}
		}
		if len(unset) > 0 {
			return fmt.Errorf("peer TLS needs --peer-tls-cert, --peer-tls-key and --peer-tls-ca: set %s too",
				strings.Join(unset, " and "))
		}
	}
	for _, m := range c.InitialCluster {
		if https := strings.HasPrefix(m.PeerURL, "https://"); https != c.PeerTLS.Enabled() {
			if https {
				return fmt.Errorf("--initial-cluster: member %s has an https peer URL but peer TLS is off: set --peer-tls-cert, --peer-tls-key and --peer-tls-ca", m.Name)
			}
			return fmt.Errorf("--initial-cluster: member %s has an http peer URL but peer TLS is on: use https", m.Name)
		}
	}
	if hb, et := c.timing(); et < 5*hb || hb < time.Millisecond {
		return fmt.Errorf("--member-election-timeout %s: want at least 5 heartbeats (--member-heartbeat %s)", et, hb)
	}
	return nil
}

// PeerClientTLS reads the peer certificate, key and CA (nil, nil without
// peer TLS): what the member presents to its peers and checks theirs
// against. serve calls it before anything is created, so that a missing or
// unreadable file is refused before the data dir holds anything.
func (c *MemberConfig) PeerClientTLS() (*tls.Config, error) {
	if !c.PeerTLS.Enabled() {
		return nil, nil
	}
	cfg, err := tlsconfig.Client(c.PeerTLS.CAFile, c.PeerTLS.CertFile, c.PeerTLS.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("peer TLS (--peer-tls-cert, --peer-tls-key, --peer-tls-ca): %w", err)
	}
	return cfg, nil
}

// peerProbeTimeout bounds probePeers.
const peerProbeTimeout = 2 * time.Second

// withPeerProblems adds to err, a member's failure to start or to find a
// quorum, why the other members of InitialCluster could not be reached:
// each is asked for its version at its peer URL as etcd dials it (with
// this member's peer certificate), and those that do not answer are listed
// with the reason ("tls: ... certificate signed by unknown authority" and
// what that means for the --peer-tls-* flags). err is unchanged when every
// other member answered.
func (c *MemberConfig) withPeerProblems(err error) error {
	if problems := c.probePeers(); problems != "" {
		return fmt.Errorf("%w; %s", err, problems)
	}
	return err
}

// probePeers describes the other members that do not answer at their peer
// URLs, grouped by reason; "" when every one answered.
func (c *MemberConfig) probePeers() string {
	tc, err := c.PeerClientTLS()
	if err != nil {
		return err.Error()
	}
	client := &http.Client{Timeout: peerProbeTimeout, Transport: &http.Transport{TLSClientConfig: tc}}
	defer client.CloseIdleConnections()
	var mu sync.Mutex
	var wg sync.WaitGroup
	byReason := map[string][]string{}
	for _, m := range c.InitialCluster {
		if m.Name == c.Name {
			continue
		}
		wg.Go(func() {
			resp, err := client.Get(strings.TrimSuffix(m.PeerURL, "/") + "/version")
			if err == nil {
				resp.Body.Close()
				return
			}
			reason := peerProblem(err)
			mu.Lock()
			defer mu.Unlock()
			byReason[reason] = append(byReason[reason], m.Name+" ("+m.PeerURL+")")
		})
	}
	wg.Wait()
	var parts []string
	for reason, peers := range byReason {
		slices.Sort(peers)
		noun := "peer"
		if len(peers) > 1 {
			noun = "peers"
		}
		parts = append(parts, fmt.Sprintf("%s %s: %s", noun, strings.Join(peers, ", "), reason))
	}
	slices.Sort(parts)
	return strings.Join(parts, "; ")
}

// peerProblem explains why a peer's probe failed, in terms of the
// --peer-tls-* flags where TLS is the reason.
func peerProblem(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err // not the URL again
	}
	var unknownCA x509.UnknownAuthorityError
	var hostname x509.HostnameError
	var op *net.OpError
	switch {
	case errors.As(err, &unknownCA):
		return fmt.Sprintf("%v (the peer's certificate is not signed by this member's --peer-tls-ca)", err)
	case errors.As(err, &hostname):
		return fmt.Sprintf("%v (the peer's certificate does not name the host of its peer URL)", err)
	case errors.As(err, &op) && op.Op == "remote error":
		return fmt.Sprintf("%v (the peer refused this member's --peer-tls-cert: is it signed by the CA the peers trust?)", err)
	}
	return err.Error()
}

// timing returns the heartbeat and election timeout, defaults filled in.
func (c *MemberConfig) timing() (heartbeat, election time.Duration) {
	heartbeat, election = c.Heartbeat, c.ElectionTimeout
	if heartbeat <= 0 {
		heartbeat = DefaultMemberHeartbeat
	}
	if election <= 0 {
		election = DefaultMemberElectionTimeout
	}
	return heartbeat, election
}

func (c *MemberConfig) own() *Member {
	for i, m := range c.InitialCluster {
		if m.Name == c.Name {
			return &c.InitialCluster[i]
		}
	}
	return nil
}

// answersAsMember reports whether the etcd member at peer URL pu answers,
// within m.probe, as a member of the cluster with id cluster.
func (m *Membership) answersAsMember(ctx context.Context, pu string, cluster uint64) bool {
	pctx, cancel := context.WithTimeout(ctx, m.probe)
	defer cancel()
	req, err := http.NewRequestWithContext(pctx, http.MethodGet, strings.TrimSuffix(pu, "/")+"/members", nil)
	if err != nil {
		return false
	}
	resp, err := m.peers.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	id, err := strconv.ParseUint(resp.Header.Get("X-Etcd-Cluster-ID"), 16, 64)
	return err == nil && resp.StatusCode == http.StatusOK && id == cluster
}

// Errors of membership changes.
var (
	// ErrLastMember refuses to remove the only member: the cluster would be gone.
	ErrLastMember = fmt.Errorf("%w: the last member of the cluster cannot be removed", sbruntime.ErrConflict)
)

// Membership administers the etcd members of a cluster of embedded members
// through a node's client.
type Membership struct {
	cli *clientv3.Client
	// probe bounds each member's health probe.
	probe time.Duration
	// peers asks members at their peer URLs, as etcd dials them.
	peers *http.Client
}

// NewMembership returns the membership administration over cli; peerTLS is
// this member's peer client TLS (MemberConfig.PeerClientTLS), nil for http
// peer URLs.
func NewMembership(cli *clientv3.Client, peerTLS *tls.Config) *Membership {
	return &Membership{cli: cli, probe: time.Second,
		peers: &http.Client{Transport: &http.Transport{TLSClientConfig: peerTLS}}}
}

// Members lists the cluster's members. A member is healthy when its client
// URL answers a status request as that member, or, when that URL is not
// reachable from here (loopback on another host, the default), when its
// peer URL answers as a member of this cluster (etcd's X-Etcd-Cluster-ID):
// peer URLs are unique to a member and every member reaches every other's.
// Each probe has a second; Members blocks for at most about two beyond the
// list.
func (m *Membership) Members(ctx context.Context) ([]starbook.Member, error) {
	resp, err := m.cli.MemberList(ctx)
	if err != nil {
		return nil, fmt.Errorf("member list: %w", err)
	}
	out := make([]starbook.Member, len(resp.Members))
	var leader uint64
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i, pm := range resp.Members {
		out[i] = starbook.Member{ID: strconv.FormatUint(pm.ID, 16), Name: pm.Name, PeerURLs: pm.PeerURLs,
			ClientURLs: pm.ClientURLs, Learner: pm.IsLearner}
		wg.Go(func() {
			healthy := false
			for _, cu := range pm.ClientURLs {
				pctx, cancel := context.WithTimeout(ctx, m.probe)
				st, err := m.cli.Status(pctx, cu)
				cancel()
				if err != nil || st.Header.MemberId != pm.ID {
					continue // another host's loopback answers as another member
				}
				healthy = true
				if st.Leader != 0 {
					mu.Lock()
					leader = st.Leader
					mu.Unlock()
				}
				break
			}
			for _, pu := range pm.PeerURLs {
				if healthy || pm.Name == "" { // a member added but not started has no name
					break
				}
				healthy = m.answersAsMember(ctx, pu, resp.Header.ClusterId)
			}
			mu.Lock()
			defer mu.Unlock()
			out[i].Healthy = healthy
		})
	}
	wg.Wait()
	for i, pm := range resp.Members {
		out[i].Leader = pm.ID == leader
	}
	slices.SortFunc(out, func(a, b starbook.Member) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// AddMember adds a member named name at peerURL to the cluster and returns
// the flags it must start with. The cluster counts the new member in its
// quorum at once: start it promptly.
func (m *Membership) AddMember(ctx context.Context, name, peerURL string) (*starbook.MemberAdded, error) {
	if err := checkMemberName(name); err != nil || name == "" {
		if err == nil {
			err = errors.New("member name is empty")
		}
		return nil, &sbruntime.InputError{Msg: err.Error()}
	}
	if err := CheckPeerURL(peerURL); err != nil {
		return nil, &sbruntime.InputError{Msg: err.Error()}
	}
	list, err := m.cli.MemberList(ctx)
	if err != nil {
		return nil, fmt.Errorf("member list: %w", err)
	}
	for _, pm := range list.Members {
		if pm.Name == name {
			return nil, sbruntime.Conflictf("a member named %s exists", name)
		}
		for _, u := range pm.PeerURLs {
			if u == peerURL {
				return nil, sbruntime.Conflictf("member %s already has peer URL %s", pm.Name, peerURL)
			}
		}
	}
	resp, err := m.cli.MemberAdd(ctx, []string{peerURL})
	if errors.Is(err, rpctypes.ErrUnhealthy) {
		// etcd adds a voting member only when every member has been
		// connected for a few seconds: the quorum must survive the add.
		return nil, sbruntime.Conflictf("member add %s: etcd refused: a member is down or connected for less than 5 s (%v); retry once every member is healthy", name, err)
	}
	if err != nil {
		return nil, fmt.Errorf("member add %s: %w", name, err)
	}
	var initial []Member
	for _, pm := range resp.Members {
		n := pm.Name
		if pm.ID == resp.Member.ID {
			n = name
		} else if n == "" {
			// Another added member that has not started yet: the new one
			// must still list it, under the name it will start with.
			n = strconv.FormatUint(pm.ID, 16)
		}
		for _, u := range pm.PeerURLs {
			initial = append(initial, Member{Name: n, PeerURL: u})
		}
	}
	return &starbook.MemberAdded{
		Member:              starbook.Member{ID: strconv.FormatUint(resp.Member.ID, 16), Name: name, PeerURLs: resp.Member.PeerURLs},
		InitialCluster:      FormatInitialCluster(initial),
		InitialClusterState: StateExisting,
	}, nil
}

// RemoveMember removes the member named name (or with that hex id, for an
// added member that never started). It refuses the last member and a name
// that is not a member.
func (m *Membership) RemoveMember(ctx context.Context, name string) error {
	list, err := m.cli.MemberList(ctx)
	if err != nil {
		return fmt.Errorf("member list: %w", err)
	}
	var id uint64
	found := false
	for _, pm := range list.Members {
		if pm.Name == name || (pm.Name == "" && strconv.FormatUint(pm.ID, 16) == name) {
			id, found = pm.ID, true
		}
	}
	if !found {
		return fmt.Errorf("%w: no member named %s", sbruntime.ErrNotFound, name)
	}
	if len(list.Members) == 1 {
		return ErrLastMember
	}
	if _, err := m.cli.MemberRemove(ctx, id); err != nil {
		return fmt.Errorf("member remove %s: %w", name, err)
	}
	return nil
}
