package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"

	"github.com/spf13/pflag"

	"github.com/starbook/starbook/api"
	"github.com/starbook/starbook/auth"
	"github.com/starbook/starbook/cluster"
	"github.com/starbook/starbook/tlsconfig"
	"github.com/starbook/starbook/triggers"
)

// securityFlags are serve's flags for authentication, TLS and the limits of
// what the API and triggers accept.
type securityFlags struct {
	authFile       string
	insecureNoAuth bool
	tlsCert        string
	tlsKey         string
	etcd           cluster.EtcdTLS
	bodies         api.Limits
	maxActive      int
	triggerRate    string
	defaultPolicy  triggers.Policy // parsed from triggerRate
	sso            bool            // single sign-on is configured (ssoFlags): authentication is on without tokens
}

// DefaultMaxActive is the default of --max-active-executions.
const DefaultMaxActive = 1000

// DefaultTriggerRate is the default of --trigger-rate.
const DefaultTriggerRate = "600/m"

func (f *securityFlags) register(fl *pflag.FlagSet) {
	fl.StringVar(&f.authFile, "auth-file", "", "API tokens (YAML or JSON: tokens: [{name, role, sha256}]); with it or "+auth.EnvTokens+", every /api/ request needs a token")
	fl.BoolVar(&f.insecureNoAuth, "insecure-no-auth", false, "serve a non-loopback --listen address without authentication")
	fl.StringVar(&f.tlsCert, "tls-cert", "", "PEM certificate: serve HTTPS instead of HTTP (with --tls-key)")
	fl.StringVar(&f.tlsKey, "tls-key", "", "PEM private key of --tls-cert")
	fl.StringVar(&f.etcd.CertFile, "etcd-cert", "", "PEM client certificate for etcd (embedded etcd: served, and required of clients)")
	fl.StringVar(&f.etcd.KeyFile, "etcd-key", "", "PEM private key of --etcd-cert")
	fl.StringVar(&f.etcd.CAFile, "etcd-ca", "", "PEM CA that signed etcd's certificate (embedded etcd: and its clients')")
	fl.Int64Var(&f.bodies.Body, "max-body-bytes", api.MaxBody, "largest API request body (run input, signal data, decision)")
	fl.Int64Var(&f.bodies.RunbooksBody, "max-runbooks-body-bytes", api.MaxRunbooksBody, "largest apply request body")
	fl.Int64Var(&f.bodies.AlertmanagerBody, "max-alertmanager-body-bytes", api.MaxAlertmanagerBody, "largest Alertmanager notification")
	fl.IntVar(&f.maxActive, "max-active-executions", DefaultMaxActive, "a runbook's executions that have not ended, over which manual and API starts are refused (0: no limit)")
	fl.StringVar(&f.triggerRate, "trigger-rate", DefaultTriggerRate, `default rate= of alert and webhook triggers that declare no max_concurrent= or rate= (runs over it are queued); "" for none`)
}

// security is what the flags and the environment configure, loaded.
type security struct {
	auth      *auth.Authenticator // nil: no authentication
	authFrom  string
	serverTLS *tls.Config // nil: plain HTTP
	etcdTLS   *cluster.EtcdTLS
	listen    string
	loopback  bool
	sso       bool // single sign-on is on
}

// load reads the token sources, the certificates and the limits, and
// refuses to serve a non-loopback address without authentication.
func (f *securityFlags) load(listen string) (*security, error) {
	s := &security{listen: listen}
	var tokens []auth.Token
	var from []string
	if f.authFile != "" {
		t, err := auth.LoadFile(f.authFile)
		if err != nil {
			return nil, err
		}
		tokens = append(tokens, t...)
		from = append(from, f.authFile)
	}
	if v, ok := os.LookupEnv(auth.EnvTokens); ok {
		t, err := auth.ParseEnv(v)
		// The plaintext is not needed any more: hashes are kept, and no
		// child process or later reader of the environment sees it.
		_ = os.Unsetenv(auth.EnvTokens)
		if err != nil {
			return nil, err
		}
		tokens = append(tokens, t...)
		from = append(from, "$"+auth.EnvTokens)
	}
	a, err := auth.New(tokens)
	if err != nil {
		return nil, err
	}
	if f.authFile != "" && !a.Enabled() && !f.sso {
		return nil, fmt.Errorf("--auth-file %s holds no token: authentication would be off", f.authFile)
	}
	if a.Enabled() {
		s.auth = a
		s.authFrom = fmt.Sprint(from)
	}
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return nil, fmt.Errorf("--listen %q: %w", listen, err)
	}
	s.loopback = isLoopbackHost(host)
	s.sso = f.sso
	if !s.loopback && s.auth == nil && !f.sso && !f.insecureNoAuth {
		return nil, fmt.Errorf("refusing to serve %s without authentication: anyone who can reach it could run, approve "+
			"and cancel runbooks. Give --auth-file or %s (see starbook token new), listen on 127.0.0.1, or pass "+
			"--insecure-no-auth to serve it open anyway", listen, auth.EnvTokens)
	}
	if f.tlsCert != "" || f.tlsKey != "" {
		if s.serverTLS, err = tlsconfig.Server(f.tlsCert, f.tlsKey); err != nil {
			return nil, fmt.Errorf("--tls-cert/--tls-key: %w", err)
		}
	}
	if f.etcd.Enabled() {
		if (f.etcd.CertFile == "") != (f.etcd.KeyFile == "") {
			return nil, errors.New("--etcd-cert and --etcd-key go together")
		}
		if _, err := f.etcd.ClientConfig(); err != nil {
			return nil, err
		}
		s.etcdTLS = &f.etcd
	}
	if err := f.bodies.Validate(); err != nil {
		return nil, err
	}
	if f.maxActive < 0 {
		return nil, fmt.Errorf("--max-active-executions %d: want 0 (no limit) or more", f.maxActive)
	}
	f.defaultPolicy = triggers.Policy{}
	if f.triggerRate != "" {
		r, err := triggers.ParseRate(f.triggerRate)
		if err != nil {
			return nil, fmt.Errorf("--trigger-rate: %w", err)
		}
		f.defaultPolicy = triggers.Policy{Rate: r}
	}
	return s, nil
}

// logStart says at start how the node is protected.
func (s *security) logStart(logger *slog.Logger) {
	switch {
	case s.auth != nil:
		logger.Info("API authentication on", "tokens", s.auth.Len(), "from", s.authFrom, "single_sign_on", s.sso)
	case s.sso:
		logger.Info("API authentication on: single sign-on sessions, no tokens")
	case s.loopback:
		logger.Info("API authentication off: listening on loopback only", "listen", s.listen)
	default:
		logger.Warn("API authentication off on a non-loopback address (--insecure-no-auth): anyone who can reach it may run, approve and cancel runbooks",
			"listen", s.listen)
	}
	if (s.auth != nil || s.sso) && s.serverTLS == nil && !s.loopback {
		logger.Warn("tokens travel in clear text: serve HTTPS with --tls-cert and --tls-key, or behind a TLS proxy")
	}
}
