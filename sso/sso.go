package sso

import (
	"context"
	"crypto/hkdf"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/gorilla/securecookie"
	"golang.org/x/oauth2"

	"github.com/starbook/starbook"
	"github.com/starbook/starbook/auth"
)

// Defaults of [Config].
const (
	DefaultSessionTTL  = 12 * time.Hour
	DefaultGroupsClaim = "groups"
	// MinSecretLength is the shortest session secret accepted, in bytes.
	MinSecretLength = 32
	// loginTTL is how long a sign-in may take between the redirect to the
	// identity provider and the callback.
	loginTTL = 10 * time.Minute
)

// DefaultScopes are asked for when [Config.Scopes] is empty; "groups" is
// added when the provider lists it in its scopes_supported.
var DefaultScopes = []string{oidc.ScopeOpenID, "email", "profile"}

// Auditor records sign-ins and sign-outs in the audit log.
type Auditor interface {
	RecordAudit(ctx context.Context, rec *starbook.AuditRecord) error
}

// Config configures a [RelyingParty].
type Config struct {
	Issuer       string // the identity provider's issuer URL (discovered at New)
	ClientID     string
	ClientSecret string // sent to the token endpoint only; never logged
	// RedirectURL is this node's callback as the browser reaches it, e.g.
	// https://starbook.example.com/auth/callback; it must be registered with
	// the identity provider. An https URL makes the cookies Secure.
	RedirectURL string
	Scopes      []string      // empty: DefaultScopes (and "groups" when offered)
	GroupsClaim string        // the ID token claim with the groups; "" for DefaultGroupsClaim
	SessionTTL  time.Duration // 0 for DefaultSessionTTL
	// Secure marks the cookies Secure even on a plain HTTP request (a node
	// behind a TLS proxy); requests that arrive over TLS always get it.
	Secure bool
	// Secret is what the cookie keys are derived from: the same on every
	// node of a cluster, at least MinSecretLength bytes.
	Secret []byte
	// People and Groups are the auth file's: who may sign in, with which role.
	People []auth.Person
	Groups []auth.GroupRole
	Audit  Auditor      // nil: sign-ins are only logged
	Logger *slog.Logger // nil discards
	// HTTPClient talks to the identity provider (nil: http.DefaultClient).
	HTTPClient *http.Client
	Now        func() time.Time // nil: time.Now
}

// RelyingParty signs people in through an OpenID Connect provider and keeps
// their sessions. It is safe for concurrent use.
type RelyingParty struct {
	oauth      oauth2.Config
	verifier   *oidc.IDTokenVerifier
	endSession string // the provider's end_session_endpoint, if any
	afterOut   string // where the provider sends the browser back after logout
	dir        *auth.Directory
	groups     map[string]bool // the groups the auth file names: only these are kept in a session
	claim      string
	ttl        time.Duration
	secure     bool
	cookies    *securecookie.SecureCookie
	audit      Auditor
	logger     *slog.Logger
	client     *http.Client
	now        func() time.Time
}

// New checks cfg and discovers the provider at cfg.Issuer (its
// openid-configuration and keys): it fails when the provider cannot be
// reached or describes another issuer.
func New(ctx context.Context, cfg Config) (*RelyingParty, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	dir, err := auth.NewDirectory(cfg.People, cfg.Groups)
	if err != nil {
		return nil, fmt.Errorf("auth file: %w", err)
	}
	if dir.Empty() {
		return nil, errors.New("single sign-on: the auth file names no people and no groups, so nobody could sign in: add people: or groups: to it")
	}
	rp := &RelyingParty{dir: dir, groups: map[string]bool{}, claim: cfg.GroupsClaim, ttl: cfg.SessionTTL,
		audit: cfg.Audit, logger: cfg.Logger, client: cfg.HTTPClient, now: cfg.Now}
	for _, g := range cfg.Groups {
		rp.groups[strings.TrimSpace(g.Group)] = true
	}
	if rp.claim == "" {
		rp.claim = DefaultGroupsClaim
	}
	if rp.ttl == 0 {
		rp.ttl = DefaultSessionTTL
	}
	if rp.logger == nil {
		rp.logger = slog.New(slog.DiscardHandler)
	}
	if rp.client == nil {
		rp.client = http.DefaultClient
	}
	if rp.now == nil {
		rp.now = time.Now
	}
	rp.secure = cfg.Secure || strings.HasPrefix(cfg.RedirectURL, "https://")

	provider, err := oidc.NewProvider(oidc.ClientContext(ctx, rp.client), cfg.Issuer)
	if err != nil {
		return nil, fmt.Errorf("discover OpenID provider %s: %w", cfg.Issuer, err)
	}
	var meta struct {
		EndSession string   `json:"end_session_endpoint"`
		Scopes     []string `json:"scopes_supported"`
		Challenges []string `json:"code_challenge_methods_supported"`
	}
	if err := provider.Claims(&meta); err != nil {
		return nil, fmt.Errorf("OpenID provider %s: read its configuration: %w", cfg.Issuer, err)
	}
	if len(meta.Challenges) > 0 && !slices.Contains(meta.Challenges, "S256") {
		return nil, fmt.Errorf("OpenID provider %s does not support PKCE with S256 (it offers %s)", cfg.Issuer, strings.Join(meta.Challenges, ", "))
	}
	scopes := cfg.Scopes
	if len(scopes) == 0 {
		scopes = slices.Clone(DefaultScopes)
		if slices.Contains(meta.Scopes, "groups") {
			scopes = append(scopes, "groups")
		}
	}
	if !slices.Contains(scopes, oidc.ScopeOpenID) {
		scopes = append([]string{oidc.ScopeOpenID}, scopes...)
	}
	rp.oauth = oauth2.Config{ClientID: cfg.ClientID, ClientSecret: cfg.ClientSecret, Endpoint: provider.Endpoint(),
		RedirectURL: cfg.RedirectURL, Scopes: scopes}
	rp.verifier = provider.Verifier(&oidc.Config{ClientID: cfg.ClientID, Now: rp.now})
	rp.endSession = meta.EndSession
	back, _ := url.Parse(cfg.RedirectURL) // checked by validate
	back.Path, back.RawQuery = strings.TrimSuffix(back.Path, "/auth/callback")+"/ui/", ""
	rp.afterOut = back.String()

	hashKey, blockKey, err := deriveKeys(cfg.Secret)
	if err != nil {
		return nil, err
	}
	rp.cookies = securecookie.New(hashKey, blockKey)
	rp.cookies.SetSerializer(securecookie.JSONEncoder{})
	// securecookie's own timestamp check is a backstop; the expiry that
	// counts is the one inside the value (session.Expires), on rp.now.
	rp.cookies.MaxAge(int((rp.ttl + time.Hour).Seconds()))
	return rp, nil
}

func (c Config) validate() error {
	var missing []string
	if c.Issuer == "" {
		missing = append(missing, "issuer")
	}
	if c.ClientID == "" {
		missing = append(missing, "client id")
	}
	if c.ClientSecret == "" {
		missing = append(missing, "client secret")
	}
	if c.RedirectURL == "" {
		missing = append(missing, "redirect URL")
	}
	if len(missing) > 0 {
		return fmt.Errorf("single sign-on is half configured: missing the %s", strings.Join(missing, ", the "))
	}
	u, err := url.Parse(c.RedirectURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.Fragment != "" {
		return fmt.Errorf("redirect URL %q: want an absolute http(s) URL such as https://starbook.example.com/auth/callback", c.RedirectURL)
	}
	if c.SessionTTL < 0 || (c.SessionTTL > 0 && c.SessionTTL < time.Minute) {
		return fmt.Errorf("session TTL %s: want a minute or more", c.SessionTTL)
	}
	if len(c.Secret) < MinSecretLength {
		return fmt.Errorf("session secret: want at least %d bytes, got %d", MinSecretLength, len(c.Secret))
	}
	return nil
}

// deriveKeys returns the cookies' HMAC and AES keys, each derived from
// secret for its own purpose.
func deriveKeys(secret []byte) (hashKey, blockKey []byte, err error) {
	if hashKey, err = hkdf.Key(sha256.New, secret, nil, "starbook session cookie: hmac-sha256", 64); err != nil {
		return nil, nil, fmt.Errorf("derive session keys: %w", err)
	}
	if blockKey, err = hkdf.Key(sha256.New, secret, nil, "starbook session cookie: aes-256", 32); err != nil {
		return nil, nil, fmt.Errorf("derive session keys: %w", err)
	}
	return hashKey, blockKey, nil
}

// TTL is how long a session lasts from sign-in.
func (rp *RelyingParty) TTL() time.Duration { return rp.ttl }

// Scopes are the scopes sign-in asks for.
func (rp *RelyingParty) Scopes() []string { return slices.Clone(rp.oauth.Scopes) }
