package main

import (
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/spf13/pflag"

	"github.com/starbook/starbook/cluster"
)

// memberFlags are serve's flags for a cluster of embedded etcd members: each
// node embeds one member (README, "A cluster with no separate etcd").
type memberFlags struct {
	initialCluster  string
	peerListen      string
	state           string
	clientListen    string
	peerTLS         cluster.EtcdTLS
	heartbeat       time.Duration
	electionTimeout time.Duration
	startTimeout    time.Duration
}

func (f *memberFlags) register(fl *pflag.FlagSet) {
	fl.StringVar(&f.initialCluster, "initial-cluster", "", "name=peerURL,... of every member of a cluster of embedded etcd members; this node's --node-id is its member's name (ignored once the data dir holds a member)")
	fl.StringVar(&f.peerListen, "peer-listen", "", "host:port the embedded member's peer listener binds (with --initial-cluster; it advertises its URL from --initial-cluster)")
	fl.StringVar(&f.state, "initial-cluster-state", cluster.StateNew, "new (the members of --initial-cluster start together) or existing (a member added by starbook cluster add-member)")
	fl.StringVar(&f.clientListen, "client-listen", "", "host:port of the embedded etcd's client endpoint (etcdctl, snapshots); empty: a free loopback port")
	fl.StringVar(&f.peerTLS.CertFile, "peer-tls-cert", "", "PEM certificate of this member's peer URL (server and client use); peer URLs are then https")
	fl.StringVar(&f.peerTLS.KeyFile, "peer-tls-key", "", "PEM private key of --peer-tls-cert")
	fl.StringVar(&f.peerTLS.CAFile, "peer-tls-ca", "", "PEM CA that signed every member's peer certificate (required of peers)")
	fl.DurationVar(&f.heartbeat, "member-heartbeat", cluster.DefaultMemberHeartbeat, "raft heartbeat interval of the embedded member (with --initial-cluster)")
	fl.DurationVar(&f.electionTimeout, "member-election-timeout", cluster.DefaultMemberElectionTimeout, "raft election timeout of the embedded member: at least 5 heartbeats; raise it on slow networks")
	fl.DurationVar(&f.startTimeout, "member-start-timeout", 2*time.Minute, "how long the member waits for a quorum of --initial-cluster at start (/healthz answers, /readyz does not meanwhile)")
}

// config returns the member's configuration, nil without --initial-cluster,
// or an error for flags that do not make a member. It creates nothing.
func (f *memberFlags) config(nodeID, etcdEndpoints string) (*cluster.MemberConfig, error) {
	if f.initialCluster == "" {
		if f.peerListen != "" || f.peerTLS.Enabled() {
			return nil, errors.New("--peer-listen and --peer-tls-* need --initial-cluster")
		}
		return nil, nil
	}
	if etcdEndpoints != "" {
		return nil, errors.New("--initial-cluster embeds a member of a cluster: it excludes --etcd-endpoints")
	}
	members, err := cluster.ParseInitialCluster(f.initialCluster)
	if err != nil {
		return nil, err
	}
	if f.peerListen == "" {
		return nil, errors.New("--initial-cluster needs --peer-listen (host:port of this member's peer listener)")
	}
	var peerTLS *cluster.EtcdTLS
	if f.peerTLS.Enabled() {
		peerTLS = &f.peerTLS
	}
	cfg := &cluster.MemberConfig{Name: nodeID, InitialCluster: members, PeerListen: f.peerListen, State: f.state,
		PeerTLS: peerTLS, Heartbeat: f.heartbeat, ElectionTimeout: f.electionTimeout, ReadyTimeout: f.startTimeout}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if _, err := cfg.PeerClientTLS(); err != nil { // files read now: refused before the data dir is made
		return nil, err
	}
	return cfg, nil
}

// swapHandler serves start-up answers until the node's handler is set: an
// embedded member waits for a quorum before the node can serve, and
// Kubernetes must not kill the pod meanwhile, nor send it requests.
type swapHandler struct {
	h atomic.Pointer[http.Handler]
}

// set makes h serve every request from now on.
func (s *swapHandler) set(h http.Handler) { s.h.Store(&h) }

func (s *swapHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h := s.h.Load(); h != nil {
		(*h).ServeHTTP(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	switch r.URL.Path {
	case "/healthz": // alive: waiting for peers is not a reason to restart
		w.WriteHeader(http.StatusOK)
		fmt.Fprint(w, `{"status":"starting"}`+"\n")
	default:
		w.Header().Set("Retry-After", "2")
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprint(w, `{"status":"not ready","error":"starting: waiting for a quorum of etcd members"}`+"\n")
	}
}
