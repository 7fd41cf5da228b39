package sso_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/securecookie"
	"github.com/oauth2-proxy/mockoidc"

	"github.com/starbook/starbook"
	"github.com/starbook/starbook/api"
	"github.com/starbook/starbook/auth"
	"github.com/starbook/starbook/builtins"
	"github.com/starbook/starbook/cluster"
	sbruntime "github.com/starbook/starbook/runtime"
	"github.com/starbook/starbook/service"
	"github.com/starbook/starbook/sso"
)

// The auth file of these tests: alice and carol by email, the sre group.
var (
	people = []auth.Person{
		{Name: "alice", Role: auth.Admin, Email: "alice@example.com"},
		{Name: "carol", Role: auth.Approver, Email: "carol@example.com"},
	}
	groups = []auth.GroupRole{{Group: "sre", Role: auth.Operator}, {Group: "viewers", Role: auth.Viewer}}
)

const ciToken = "sso-test-ci-token-0123456789"

// provider is a real OpenID provider (mockoidc) in this process, with a
// middleware that records what the relying party sent and can alter it.
type provider struct {
	*mockoidc.MockOIDC
	mu         sync.Mutex
	authorize  url.Values // the last authorization request
	token      url.Values // the last token request's form
	rewrite    func(r *http.Request)
	endSession string // added to the discovery document when set
}

func startProvider(t *testing.T) *provider {
	t.Helper()
	m, err := mockoidc.NewServer(nil)
	if err != nil {
		t.Fatal(err)
	}
	p := &provider{MockOIDC: m}
	if err := m.AddMiddleware(p.middleware); err != nil { // before Start
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(ln, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Shutdown() })
	return p
}

func (p *provider) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		p.mu.Lock()
		rewrite, end := p.rewrite, p.endSession
		switch r.URL.Path {
		case mockoidc.AuthorizationEndpoint:
			p.authorize = cloneValues(r.Form)
		case mockoidc.TokenEndpoint:
			p.token = cloneValues(r.Form)
		}
		p.mu.Unlock()
		if rewrite != nil {
			rewrite(r)
		}
		if r.URL.Path == mockoidc.DiscoveryEndpoint && end != "" {
			rec := httptest.NewRecorder()
			next.ServeHTTP(rec, r)
			var doc map[string]any
			_ = json.Unmarshal(rec.Body.Bytes(), &doc)
			doc["end_session_endpoint"] = end
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(doc)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func cloneValues(v url.Values) url.Values {
	out := url.Values{}
	for k, vs := range v {
		out[k] = append([]string(nil), vs...)
	}
	return out
}

func (p *provider) set(f func(p *provider)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	f(p)
}

func (p *provider) lastAuthorize() url.Values { p.mu.Lock(); defer p.mu.Unlock(); return p.authorize }
func (p *provider) lastToken() url.Values     { p.mu.Lock(); defer p.mu.Unlock(); return p.token }

func user(email string, groups ...string) *mockoidc.MockUser {
	return &mockoidc.MockUser{Subject: "sub-" + email, Email: email, EmailVerified: true, Groups: groups}
}

// claimsUser is a provider's user whose ID token carries exactly the
// claims given (mockoidc's own user omits a false email_verified and knows
// only the groups claim).
type claimsUser struct {
	sub    string
	claims map[string]any
}

func (u claimsUser) ID() string { return u.sub }

func (u claimsUser) Userinfo([]string) ([]byte, error) { return json.Marshal(u.claims) }

func (u claimsUser) Claims(_ []string, base *mockoidc.IDTokenClaims) (jwt.Claims, error) {
	b, err := json.Marshal(base)
	if err != nil {
		return nil, err
	}
	out := jwt.MapClaims{}
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, err
	}
	for k, v := range u.claims {
		out[k] = v
	}
	return out, nil
}

// clock is the relying party's clock, moved by the test.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time          { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) { c.mu.Lock(); defer c.mu.Unlock(); c.t = c.t.Add(d) }

// node is a starbook API on a real store (embedded etcd) with single
// sign-on through the provider.
type node struct {
	url   string
	svc   *service.Service
	rp    *sso.RelyingParty
	clock *clock
}

func startNode(t *testing.T, p *provider, edit func(*sso.Config)) *node {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	emb, err := cluster.StartEmbedded(ctx, cluster.EmbeddedConfig{Dir: t.TempDir(), Fast: true, NoFsync: true})
	if err != nil {
		t.Fatal(err)
	}
	store := cluster.NewStore(emb.Client, "/sso/")
	svc := service.New(store, builtins.New(builtins.Options{}))
	t.Cleanup(func() { cancel(); store.Close(); emb.Close() })
	if _, err := svc.Apply(ctx, map[string]string{"hello.star": "def main(event):\n    return \"hi\"\n"}); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	c := &clock{t: time.Now()}
	cfg := p.Config()
	sc := sso.Config{Issuer: cfg.Issuer, ClientID: cfg.ClientID, ClientSecret: cfg.ClientSecret,
		RedirectURL: srv.URL + "/auth/callback", Secret: []byte(strings.Repeat("s", 32)),
		People: people, Groups: groups, Audit: svc, Now: c.Now}
	if edit != nil {
		edit(&sc)
	}
	rp, err := sso.New(ctx, sc)
	if err != nil {
		t.Fatal(err)
	}
	tokens, err := auth.New([]auth.Token{{Name: "ci", Role: auth.Operator, SHA256: auth.Hash(ciToken)}})
	if err != nil {
		t.Fatal(err)
	}
	sso.Mount(mux, rp)
	mux.Handle("/", api.NewHandler(svc, nil, api.WithAuth(tokens), api.WithSessions(rp)))
	return &node{url: srv.URL, svc: svc, rp: rp, clock: c}
}

// browser is an HTTP client with a cookie jar that follows redirects
// through the provider and stops at the UI.
type browser struct {
	*http.Client
	t *testing.T
}

func newBrowser(t *testing.T) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, Client: &http.Client{Jar: jar, Timeout: 10 * time.Second,
		CheckRedirect: func(r *http.Request, via []*http.Request) error {
			if strings.HasPrefix(r.URL.Path, "/ui/") {
				return http.ErrUseLastResponse
			}
			return nil
		}}}
}

// signIn goes through /auth/login as u and returns the last response
// (the callback's redirect to the UI, or its refusal) and its body.
func (b *browser) signIn(n *node, p *provider, u mockoidc.User, next string) (*http.Response, string) {
	b.t.Helper()
	p.QueueUser(u)
	path := "/auth/login"
	if next != "" {
		path += "?next=" + url.QueryEscape(next)
	}
	resp, err := b.Get(n.url + path)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

func (b *browser) session(n *node) sso.SessionInfo {
	b.t.Helper()
	var s sso.SessionInfo
	b.getJSON(n.url+"/auth/session", &s)
	return s
}

func (b *browser) getJSON(u string, v any) int {
	b.t.Helper()
	resp, err := b.Get(u)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		b.t.Fatalf("GET %s: %d, decode: %v", u, resp.StatusCode, err)
	}
	return resp.StatusCode
}

// start asks the node to start hello with csrf (none when "") and the
// bearer token (none when ""); it returns the status and the error text.
func (b *browser) start(n *node, csrf, bearer string) (int, string) {
	b.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, n.url+"/api/v1/runbooks/hello/executions", strings.NewReader(`{}`))
	req.Header.Set("Content-Type", "application/json")
	if csrf != "" {
		req.Header.Set(api.CSRFHeader, csrf)
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := b.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Error string `json:"error"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out.Error
}

func executions(t *testing.T, n *node) []*sbruntime.Execution {
	t.Helper()
	list, err := n.svc.Executions(context.Background(), starbook.Filter{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	return list
}

func audit(t *testing.T, n *node) []*starbook.AuditRecord {
	t.Helper()
	recs, err := n.svc.Audit(context.Background(), "", 100)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

// TestSignIn: people and groups of the auth file sign in through the
// provider (code flow with PKCE S256, state, nonce) and get a session the
// API accepts, with the role the auth file gives them; someone it does not
// name is refused with a page saying so, and gets no session.
func TestSignIn(t *testing.T) {
	p := startProvider(t)
	n := startNode(t, p, nil)
	tests := []struct {
		name     string
		user     *mockoidc.MockUser
		wantName string
		wantRole auth.Role
	}{
		{"a person by email", user("Alice@Example.com"), "alice", auth.Admin},
		{"a person with a stronger group", user("carol@example.com", "sre"), "carol", auth.Operator},
		{"a group only", user("bob@example.com", "marketing", "sre"), "bob@example.com", auth.Operator},
		{"unmapped", user("mallory@example.com", "marketing"), "", ""},
		{"unverified email", nil, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBrowser(t)
			var u mockoidc.User = tt.user
			if tt.user == nil {
				tt.user = &mockoidc.MockUser{Email: "alice@example.com"}
				u = claimsUser{sub: "x", claims: map[string]any{"email": "alice@example.com", "email_verified": false}}
			}
			resp, body := b.signIn(n, p, u, "/ui/#/executions?status=waiting")
			var whoami api.WhoAmI
			status := b.getJSON(n.url+"/api/v1/whoami", &whoami)
			if tt.wantName == "" {
				if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "Ask an admin") && !strings.Contains(body, "not verified") {
					t.Fatalf("callback = %d %s, want 403 saying why", resp.StatusCode, body)
				}
				if s := b.session(n); s.Name != "" || !s.SSO {
					t.Errorf("session after a refusal = %+v", s)
				}
				if status != http.StatusUnauthorized {
					t.Errorf("whoami after a refusal = %d %+v, want 401", status, whoami)
				}
				recs := audit(t, n)
				if r := recs[len(recs)-1]; r.Action != "session.login" || r.Outcome != starbook.AuditDenied || r.Actor != strings.ToLower(tt.user.Email) {
					t.Errorf("last audit record = %+v, want a denied session.login by %s", r, tt.user.Email)
				}
				return
			}
			if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/ui/#/executions?status=waiting" {
				t.Fatalf("callback = %d Location %q, want 303 to the page asked for; body %s", resp.StatusCode, resp.Header.Get("Location"), body)
			}
			checkSessionCookie(t, resp)
			s := b.session(n)
			if s.Name != tt.wantName || s.Role != tt.wantRole || len(s.CSRF) < 40 || s.Expires == nil {
				t.Errorf("session = %+v, want %s (%s) with a CSRF token", s, tt.wantName, tt.wantRole)
			}
			if status != http.StatusOK || whoami.Name != tt.wantName || whoami.Role != tt.wantRole || !whoami.Auth {
				t.Errorf("whoami = %d %+v, want %s (%s)", status, whoami, tt.wantName, tt.wantRole)
			}
			// What the provider saw: PKCE with S256 whose verifier came back
			// at the token endpoint, a state and a nonce, the groups scope.
			az, tok := p.lastAuthorize(), p.lastToken()
			sum := sha256.Sum256([]byte(tok.Get("code_verifier")))
			if az.Get("code_challenge_method") != "S256" || tok.Get("code_verifier") == "" ||
				az.Get("code_challenge") != base64.RawURLEncoding.EncodeToString(sum[:]) {
				t.Errorf("PKCE: authorize %v, token verifier %q", az, tok.Get("code_verifier"))
			}
			if len(az.Get("state")) < 20 || len(az.Get("nonce")) < 20 || !strings.Contains(az.Get("scope"), "groups") {
				t.Errorf("authorize request = %v, want state, nonce and the groups scope", az)
			}
		})
	}
}

func checkSessionCookie(t *testing.T, resp *http.Response) {
	t.Helper()
	for _, c := range resp.Cookies() {
		if c.Name != sso.SessionCookie {
			continue
		}
		if !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Path != "/" || c.MaxAge != int((12*time.Hour).Seconds()) || c.Secure {
			t.Errorf("session cookie = %+v, want HttpOnly, SameSite=Lax, Path=/, 12h, not Secure over http", c)
		}
		if strings.Contains(c.Value, "alice") || strings.Contains(c.Value, "example.com") {
			t.Errorf("session cookie %q shows its content: want it encrypted", c.Value)
		}
		return
	}
	t.Errorf("no session cookie set; cookies %v", resp.Cookies())
}

// TestSignInRefusesAlteredAnswers: the provider's answer is only accepted
// for the sign-in this browser started: a wrong PKCE verifier is refused by
// the provider, a nonce or a state of another sign-in here; none makes a
// session.
func TestSignInRefusesAlteredAnswers(t *testing.T) {
	p := startProvider(t)
	n := startNode(t, p, nil)
	tests := []struct {
		name    string
		rewrite func(r *http.Request)
		status  int
		want    string
	}{
		{"wrong PKCE verifier", func(r *http.Request) {
			if r.URL.Path == mockoidc.TokenEndpoint {
				r.Form.Set("code_verifier", strings.Repeat("x", 43))
			}
		}, http.StatusUnauthorized, "Code challenge did not match"},
		{"nonce of another sign-in", func(r *http.Request) {
			if r.URL.Path == mockoidc.AuthorizationEndpoint {
				r.Form.Set("nonce", "another-sign-ins-nonce")
			}
		}, http.StatusUnauthorized, "nonce"},
		{"state of another sign-in", func(r *http.Request) {
			if r.URL.Path == mockoidc.AuthorizationEndpoint {
				r.Form.Set("state", "another-sign-ins-state")
			}
		}, http.StatusBadRequest, "state differs"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p.set(func(p *provider) { p.rewrite = tt.rewrite })
			defer p.set(func(p *provider) { p.rewrite = nil })
			b := newBrowser(t)
			resp, body := b.signIn(n, p, user("alice@example.com"), "")
			if resp.StatusCode != tt.status || !strings.Contains(body, tt.want) {
				t.Fatalf("callback = %d %s, want %d with %q", resp.StatusCode, body, tt.status, tt.want)
			}
			for _, c := range resp.Cookies() {
				if c.Name == sso.SessionCookie && c.MaxAge >= 0 {
					t.Errorf("a session cookie was set: %+v", c)
				}
			}
			var whoami api.WhoAmI
			if status := b.getJSON(n.url+"/api/v1/whoami", &whoami); status != http.StatusUnauthorized {
				t.Errorf("whoami = %d %+v, want 401", status, whoami)
			}
		})
	}
	// The callback replayed without the flow cookie is refused too.
	b := newBrowser(t)
	resp, err := b.Get(n.url + "/auth/callback?code=x&state=y")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("callback without a sign-in = %d, want 400", resp.StatusCode)
	}
}

// TestBadSessionCookies: a forged, altered or expired session cookie gets
// 401 and starts nothing.
func TestBadSessionCookies(t *testing.T) {
	p := startProvider(t)
	n := startNode(t, p, nil)
	good := newBrowser(t)
	good.signIn(n, p, user("alice@example.com"), "")
	s := good.session(n)
	if s.Name != "alice" {
		t.Fatalf("session = %+v", s)
	}
	u, _ := url.Parse(n.url)
	var value string
	for _, c := range good.Jar.Cookies(u) {
		if c.Name == sso.SessionCookie {
			value = c.Value
		}
	}
	// A forger knows the cookie's format but not the node's secret.
	forger := securecookie.New(securecookie.GenerateRandomKey(64), securecookie.GenerateRandomKey(32))
	forger.SetSerializer(securecookie.JSONEncoder{})
	forged, err := forger.Encode(sso.SessionCookie, map[string]any{"e": "alice@example.com", "c": s.CSRF,
		"i": time.Now().Unix(), "x": time.Now().Add(time.Hour).Unix()})
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := base64.URLEncoding.DecodeString(value)
	raw[len(raw)/2] ^= 1
	tampered := base64.URLEncoding.EncodeToString(raw)
	tests := []struct{ name, value, want string }{
		{"forged", forged, "invalid session"},
		{"tampered", tampered, "invalid session"},
		{"garbage", "not-a-cookie", "invalid session"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBrowser(t)
			b.Jar.SetCookies(u, []*http.Cookie{{Name: sso.SessionCookie, Value: tt.value, Path: "/"}})
			if status, msg := b.start(n, s.CSRF, ""); status != http.StatusUnauthorized || !strings.Contains(msg, tt.want) {
				t.Errorf("start = %d %q, want 401 %q", status, msg, tt.want)
			}
			if got := b.session(n); got.Name != "" || !strings.Contains(got.Error, tt.want) {
				t.Errorf("session = %+v, want none, saying %q", got, tt.want)
			}
		})
	}
	if list := executions(t, n); len(list) != 0 {
		t.Fatalf("%d executions started by bad cookies", len(list))
	}
	// Past its TTL the cookie the node made itself is refused as well,
	// though the browser would still send it (the expiry inside counts).
	n.clock.Advance(12*time.Hour + time.Second)
	if status, msg := good.start(n, s.CSRF, ""); status != http.StatusUnauthorized || !strings.Contains(msg, "session expired") {
		t.Errorf("start with an expired session = %d %q, want 401 session expired", status, msg)
	}
	if got := good.session(n); got.Name != "" || !strings.Contains(got.Error, "expired") {
		t.Errorf("expired session = %+v", got)
	}
	if list := executions(t, n); len(list) != 0 {
		t.Fatalf("%d executions started by an expired session", len(list))
	}
}

// TestCSRF: a mutating request signed in by the session cookie needs the
// session's own CSRF token; without it, or with a wrong one, 403 and
// nothing started. A bearer token needs none.
func TestCSRF(t *testing.T) {
	p := startProvider(t)
	n := startNode(t, p, nil)
	alice, bob := newBrowser(t), newBrowser(t)
	alice.signIn(n, p, user("alice@example.com"), "")
	bob.signIn(n, p, user("bob@example.com", "sre"), "")
	as, bs := alice.session(n), bob.session(n)
	if as.Name != "alice" || bs.Name != "bob@example.com" || as.CSRF == bs.CSRF {
		t.Fatalf("sessions: %+v, %+v", as, bs)
	}
	for _, tt := range []struct{ name, csrf string }{
		{"missing", ""},
		{"wrong", "not-the-token"},
		{"another session's", bs.CSRF},
		{"truncated", as.CSRF[:len(as.CSRF)-1]},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if status, msg := alice.start(n, tt.csrf, ""); status != http.StatusForbidden || !strings.Contains(msg, "X-CSRF-Token") {
				t.Errorf("start = %d %q, want 403 about X-CSRF-Token", status, msg)
			}
		})
	}
	if list := executions(t, n); len(list) != 0 {
		t.Fatalf("%d executions started without the CSRF token", len(list))
	}
	recs := audit(t, n)
	if r := recs[len(recs)-1]; r.Actor != "alice" || r.Outcome != starbook.AuditDenied || r.Status != http.StatusForbidden {
		t.Errorf("last audit record = %+v, want alice denied", r)
	}
	// A GET needs no CSRF token.
	var whoami api.WhoAmI
	if status := alice.getJSON(n.url+"/api/v1/whoami", &whoami); status != http.StatusOK || whoami.Name != "alice" {
		t.Errorf("whoami = %d %+v", status, whoami)
	}
	if status, msg := alice.start(n, as.CSRF, ""); status != http.StatusCreated {
		t.Fatalf("start with the CSRF token = %d %q, want 201", status, msg)
	}
	// The CLI's bearer token needs no CSRF token, with or without a
	// session cookie beside it (the token decides who calls).
	if status, msg := newBrowser(t).start(n, "", ciToken); status != http.StatusCreated {
		t.Fatalf("start with a bearer token = %d %q, want 201", status, msg)
	}
	if status, msg := alice.start(n, "", ciToken); status != http.StatusCreated {
		t.Fatalf("start with a bearer token and a session cookie = %d %q, want 201", status, msg)
	}
	if status, _ := newBrowser(t).start(n, "", "wrong-token-0123456789"); status != http.StatusUnauthorized {
		t.Errorf("start with a wrong bearer token = %d, want 401", status)
	}
	var by []string
	for _, e := range executions(t, n) {
		by = append(by, e.Trigger.Source)
	}
	if strings.Join(by, ",") != "ci,ci,alice" && strings.Join(by, ",") != "alice,ci,ci" {
		t.Errorf("executions started by %v, want alice and ci twice", by)
	}
}

// TestSignOut: logout needs the session's CSRF token, clears the session
// and goes to the provider's end_session_endpoint when it has one.
func TestSignOut(t *testing.T) {
	p := startProvider(t)
	p.set(func(p *provider) { p.endSession = p.Issuer() + "/logout" })
	n := startNode(t, p, nil)
	b := newBrowser(t)
	b.signIn(n, p, user("alice@example.com"), "")
	s := b.session(n)
	logout := func(csrf string) *http.Response {
		t.Helper()
		form := url.Values{}
		if csrf != "" {
			form.Set("csrf", csrf)
		}
		b.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
		resp, err := b.PostForm(n.url+"/auth/logout", form)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if resp := logout("wrong"); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("logout with a wrong CSRF token = %d, want 403", resp.StatusCode)
	}
	if got := b.session(n); got.Name != "alice" {
		t.Fatalf("session after a refused logout = %+v, want alice still", got)
	}
	resp := logout(s.CSRF)
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusSeeOther || !strings.HasSuffix(loc.Path, "/logout") ||
		loc.Query().Get("post_logout_redirect_uri") != n.url+"/ui/" || loc.Query().Get("client_id") != p.Config().ClientID {
		t.Errorf("logout = %d to %s, want 303 to the end_session_endpoint back to %s/ui/", resp.StatusCode, loc, n.url)
	}
	if got := b.session(n); got.Name != "" {
		t.Errorf("session after logout = %+v", got)
	}
	var whoami api.WhoAmI
	if status := b.getJSON(n.url+"/api/v1/whoami", &whoami); status != http.StatusUnauthorized {
		t.Errorf("whoami after logout = %d, want 401", status)
	}
	recs := audit(t, n)
	if r := recs[len(recs)-1]; r.Action != "session.logout" || r.Actor != "alice" {
		t.Errorf("last audit record = %+v, want alice's logout", r)
	}
}

// TestLoginNext: only a path on this site is accepted as where to go after
// signing in.
func TestLoginNext(t *testing.T) {
	p := startProvider(t)
	n := startNode(t, p, func(c *sso.Config) { c.Secure = true })
	for _, tt := range []struct {
		next string
		ok   bool
	}{
		{"", true},
		{"/ui/#/executions/01J", true},
		{"https://evil.example.com/", false},
		{"//evil.example.com/ui/", false},
		{"/\\evil.example.com", false},
		{"ui/", false},
		{"/ui/\r\nSet-Cookie: x=y", false},
		{"javascript:alert(1)", false},
	} {
		resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).
			Get(n.url + "/auth/login?next=" + url.QueryEscape(tt.next))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if !tt.ok {
			if resp.StatusCode != http.StatusBadRequest || len(resp.Cookies()) != 0 {
				t.Errorf("next %q: %d with cookies %v, want 400 and none", tt.next, resp.StatusCode, resp.Cookies())
			}
			continue
		}
		to, _ := url.Parse(resp.Header.Get("Location"))
		if resp.StatusCode != http.StatusFound || !strings.HasPrefix(to.String(), p.AuthorizationEndpoint()) {
			t.Errorf("next %q: %d to %s, want a redirect to the provider", tt.next, resp.StatusCode, to)
		}
		if c := resp.Cookies(); len(c) != 1 || !c[0].Secure || !c[0].HttpOnly || c[0].Path != "/auth/" {
			t.Errorf("next %q: flow cookie %v, want one, Secure (Config.Secure), HttpOnly, Path=/auth/", tt.next, c)
		}
	}
}

// TestNewRefuses: a half configuration, an issuer that cannot be
// discovered, an auth file naming nobody or a short secret stop the node
// from starting, each with a message saying what is wrong.
func TestNewRefuses(t *testing.T) {
	p := startProvider(t)
	cfg := p.Config()
	full := sso.Config{Issuer: cfg.Issuer, ClientID: cfg.ClientID, ClientSecret: cfg.ClientSecret,
		RedirectURL: "http://127.0.0.1:7070/auth/callback", Secret: []byte(strings.Repeat("k", 32)), People: people}
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	for _, tt := range []struct {
		name string
		edit func(c *sso.Config)
		want string
	}{
		{"no client id", func(c *sso.Config) { c.ClientID = "" }, "half configured: missing the client id"},
		{"no secret, no redirect", func(c *sso.Config) { c.ClientSecret, c.RedirectURL = "", "" }, "missing the client secret, the redirect URL"},
		{"relative redirect", func(c *sso.Config) { c.RedirectURL = "/auth/callback" }, "want an absolute http(s) URL"},
		{"short secret", func(c *sso.Config) { c.Secret = []byte("short") }, "at least 32 bytes"},
		{"nobody", func(c *sso.Config) { c.People = nil }, "names no people and no groups"},
		{"unreachable issuer", func(c *sso.Config) { c.Issuer = dead.URL }, "discover OpenID provider " + dead.URL},
		{"another issuer", func(c *sso.Config) { c.Issuer = strings.Replace(cfg.Issuer, "127.0.0.1", "localhost", 1) }, "discover OpenID provider"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := full
			tt.edit(&c)
			rp, err := sso.New(context.Background(), c)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New = %v, %v; want an error with %q", rp, err, tt.want)
			}
			if strings.Contains(err.Error(), cfg.ClientSecret) {
				t.Errorf("the error shows the client secret: %v", err)
			}
		})
	}
	if _, err := sso.New(context.Background(), full); err != nil {
		t.Fatalf("New with the full configuration: %v", err)
	}
}

// TestOff: without single sign-on /auth/session says so and the other
// routes are not found.
func TestOff(t *testing.T) {
	mux := http.NewServeMux()
	sso.Mount(mux, nil)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	b := newBrowser(t)
	var s sso.SessionInfo
	if status := b.getJSON(srv.URL+"/auth/session", &s); status != http.StatusOK || s.SSO || s.CSRF != "" {
		t.Errorf("session = %d %+v, want sso false", status, s)
	}
	var e map[string]string
	if status := b.getJSON(srv.URL+"/auth/login", &e); status != http.StatusNotFound || !strings.Contains(e["error"], "not configured") {
		t.Errorf("login = %d %v, want 404 not configured", status, e)
	}
}

// TestGroupsClaim: the groups come from the claim configured, a list or a
// single string; another claim named groups is not read.
func TestGroupsClaim(t *testing.T) {
	p := startProvider(t)
	n := startNode(t, p, func(c *sso.Config) { c.GroupsClaim = "starbook_groups" })
	for _, tt := range []struct {
		name   string
		claims map[string]any
		want   auth.Role
	}{
		{"a list", map[string]any{"starbook_groups": []string{"x", "sre"}}, auth.Operator},
		{"a string", map[string]any{"starbook_groups": "viewers"}, auth.Viewer},
		{"another claim", map[string]any{"groups": []string{"sre"}}, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tt.claims["email"] = "dave@example.com"
			b := newBrowser(t)
			resp, body := b.signIn(n, p, claimsUser{sub: "dave", claims: tt.claims}, "")
			s := b.session(n)
			if tt.want == "" {
				if resp.StatusCode != http.StatusForbidden || s.Name != "" {
					t.Errorf("callback = %d, session %+v; want 403 and none (%s)", resp.StatusCode, s, body)
				}
				return
			}
			if s.Name != "dave@example.com" || s.Role != tt.want {
				t.Errorf("session = %+v, want dave@example.com (%s); callback %d %s", s, tt.want, resp.StatusCode, body)
			}
		})
	}
}

// TestCookiesSecureOverTLS: a node reached over TLS sets its cookies
// Secure, whatever its configuration says.
func TestCookiesSecureOverTLS(t *testing.T) {
	p := startProvider(t)
	cfg := p.Config()
	rp, err := sso.New(context.Background(), sso.Config{Issuer: cfg.Issuer, ClientID: cfg.ClientID, ClientSecret: cfg.ClientSecret,
		RedirectURL: "http://starbook.internal/auth/callback", Secret: []byte(strings.Repeat("t", 32)), People: people})
	if err != nil {
		t.Fatal(err)
	}
	for _, tls := range []bool{false, true} {
		mux := http.NewServeMux()
		sso.Mount(mux, rp)
		srv := httptest.NewUnstartedServer(mux)
		if tls {
			srv.StartTLS()
		} else {
			srv.Start()
		}
		c := srv.Client()
		c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
		resp, err := c.Get(srv.URL + "/auth/login")
		srv.Close()
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if cs := resp.Cookies(); len(cs) != 1 || cs[0].Secure != tls {
			t.Errorf("over TLS %v: cookies %v, want one, Secure %v", tls, cs, tls)
		}
	}
}
