package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/starbook/starbook/auth"
	"github.com/starbook/starbook/cluster"
	"github.com/starbook/starbook/sso"
)

// Environment variables of serve's single sign-on: secrets are not taken
// on the command line, where ps shows them.
const (
	envOIDCClientSecret = "STARBOOK_OIDC_CLIENT_SECRET"
	envSessionSecret    = "STARBOOK_SESSION_SECRET"
)

// ssoFlags are serve's flags for the web UI's single sign-on (OpenID
// Connect); see the sso package.
type ssoFlags struct {
	issuer       string
	clientID     string
	clientSecret string
	redirectURL  string
	publicURL    string
	groupsClaim  string
	scopes       []string
	sessionTTL   time.Duration
}

func (f *ssoFlags) register(fl *pflag.FlagSet) {
	fl.StringVar(&f.issuer, "oidc-issuer", "", "OpenID Connect issuer URL: the web UI signs people in through it (with --oidc-client-id, "+envOIDCClientSecret+" and the auth file's people: and groups:)")
	fl.StringVar(&f.clientID, "oidc-client-id", "", "client id registered with --oidc-issuer")
	fl.StringVar(&f.clientSecret, "oidc-client-secret", "", "client secret of --oidc-client-id (better: $"+envOIDCClientSecret+", which ps does not show)")
	fl.StringVar(&f.redirectURL, "oidc-redirect-url", "", "the callback registered with the issuer (default: --public-url + /auth/callback)")
	fl.StringVar(&f.publicURL, "public-url", "", "the URL browsers reach this node at, e.g. https://starbook.example.com (an https URL makes session cookies Secure behind a TLS proxy)")
	fl.StringVar(&f.groupsClaim, "oidc-groups-claim", sso.DefaultGroupsClaim, "ID token claim listing the groups the auth file's groups: match")
	fl.StringSliceVar(&f.scopes, "oidc-scopes", nil, `scopes to ask for (default: openid,email,profile, and groups when the issuer offers it)`)
	fl.DurationVar(&f.sessionTTL, "ui-session-ttl", sso.DefaultSessionTTL, "how long a web UI sign-in lasts")
}

// enabled reports whether single sign-on is asked for at all.
func (f *ssoFlags) enabled() bool {
	return f.issuer != "" || f.clientID != "" || f.clientSecret != "" || f.redirectURL != "" || os.Getenv(envOIDCClientSecret) != ""
}

// check refuses, before anything starts, a single sign-on configured by
// halves; it takes the client secret from the environment.
func (f *ssoFlags) check(authFile string) error {
	if v, ok := os.LookupEnv(envOIDCClientSecret); ok {
		_ = os.Unsetenv(envOIDCClientSecret) // no child process sees it
		if f.clientSecret == "" {
			f.clientSecret = v
		}
	}
	if !f.enabled() {
		return nil
	}
	var missing []string
	if f.issuer == "" {
		missing = append(missing, "--oidc-issuer")
	}
	if f.clientID == "" {
		missing = append(missing, "--oidc-client-id")
	}
	if f.clientSecret == "" {
		missing = append(missing, "--oidc-client-secret (or $"+envOIDCClientSecret+")")
	}
	if authFile == "" {
		missing = append(missing, "--auth-file (its people: and groups: say who may sign in)")
	}
	if len(missing) > 0 {
		return fmt.Errorf("single sign-on is half configured: missing %s", strings.Join(missing, ", "))
	}
	if f.publicURL != "" {
		u, err := url.Parse(f.publicURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("--public-url %q: want an absolute http(s) URL such as https://starbook.example.com", f.publicURL)
		}
	}
	if f.sessionTTL < time.Minute {
		return fmt.Errorf("--ui-session-ttl %s: want a minute or more", f.sessionTTL)
	}
	return nil
}

// redirect is the callback URL: --oidc-redirect-url, or --public-url's,
// or, on a loopback address, the listen address's.
func (f *ssoFlags) redirect(scheme string, addr net.Addr) (string, error) {
	switch {
	case f.redirectURL != "":
		return f.redirectURL, nil
	case f.publicURL != "":
		return strings.TrimRight(f.publicURL, "/") + "/auth/callback", nil
	}
	host, _, _ := net.SplitHostPort(addr.String())
	if !isLoopbackHost(host) {
		return "", errors.New("single sign-on needs --public-url (or --oidc-redirect-url): the URL browsers reach this node at")
	}
	return scheme + "://" + addr.String() + "/auth/callback", nil
}

// relyingParty discovers the issuer and returns the UI's single sign-on;
// nil when it is not configured. The session secret is $STARBOOK_SESSION_SECRET
// or, without it, the one stored in etcd (cluster.Store.SessionSecret).
func (f *ssoFlags) relyingParty(ctx context.Context, authFile string, tls bool, scheme string, addr net.Addr,
	store *cluster.Store, audit sso.Auditor, logger *slog.Logger) (*sso.RelyingParty, error) {
	if !f.enabled() {
		return nil, nil
	}
	redirect, err := f.redirect(scheme, addr)
	if err != nil {
		return nil, err
	}
	conf, err := auth.LoadConfig(authFile)
	if err != nil {
		return nil, err
	}
	secret, from := []byte(os.Getenv(envSessionSecret)), "$"+envSessionSecret
	_ = os.Unsetenv(envSessionSecret)
	if len(secret) == 0 {
		if secret, err = store.SessionSecret(ctx); err != nil {
			return nil, err
		}
		from = "etcd"
	} else if len(secret) < sso.MinSecretLength {
		return nil, fmt.Errorf("$%s: want at least %d characters, got %d", envSessionSecret, sso.MinSecretLength, len(secret))
	}
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	rp, err := sso.New(dctx, sso.Config{Issuer: f.issuer, ClientID: f.clientID, ClientSecret: f.clientSecret,
		RedirectURL: redirect, Scopes: f.scopes, GroupsClaim: f.groupsClaim, SessionTTL: f.sessionTTL,
		Secure: tls || strings.HasPrefix(f.publicURL, "https://"), Secret: secret,
		People: conf.People, Groups: conf.Groups, Audit: audit, Logger: logger.With("component", "sso")})
	if err != nil {
		return nil, fmt.Errorf("--oidc-issuer: %w", err)
	}
	logger.Info("single sign-on on", "issuer", f.issuer, "client_id", f.clientID, "redirect_url", redirect,
		"scopes", rp.Scopes(), "groups_claim", f.groupsClaim, "session_ttl", rp.TTL().String(), "session_secret", from,
		"people", len(conf.People), "groups", len(conf.Groups))
	return rp, nil
}
