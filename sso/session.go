package sso

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/starbook/starbook/auth"
)

// Cookie names. The session's is sent everywhere on the node; the sign-in
// flow's only to /auth/.
const (
	SessionCookie = "starbook_session"
	flowCookie    = "starbook_sso_flow"
)

// Errors of [RelyingParty.Session]; a request without a session cookie gets
// http.ErrNoCookie.
var (
	ErrInvalidSession = errors.New("invalid session cookie: sign in again at /auth/login")
	ErrSessionExpired = errors.New("session expired: sign in again at /auth/login")
	ErrNotAllowed     = errors.New("signed in, but the auth file no longer names this person or their groups")
)

// session is what the session cookie holds (signed and encrypted). The
// principal is not stored: it is worked out from Email and Groups on every
// request, so the auth file decides.
type session struct {
	Email   string   `json:"e"`
	Groups  []string `json:"g,omitempty"` // only those the auth file names
	CSRF    string   `json:"c"`
	Issued  int64    `json:"i"` // unix seconds
	Expires int64    `json:"x"` // unix seconds
}

// flow is what the sign-in flow's cookie holds between the redirect to the
// identity provider and its callback.
type flow struct {
	State    string `json:"s"`
	Nonce    string `json:"n"`
	Verifier string `json:"v"` // the PKCE code verifier
	Next     string `json:"r"`
	Expires  int64  `json:"x"`
}

// Session returns who r's session cookie names and the CSRF token bound to
// that session. Without a session cookie the error is http.ErrNoCookie; a
// cookie that was not made with this secret, was altered or has expired gets
// ErrInvalidSession or ErrSessionExpired.
func (rp *RelyingParty) Session(r *http.Request) (auth.Principal, string, error) {
	s, err := rp.session(r)
	if err != nil {
		return auth.Principal{}, "", err
	}
	p, ok := rp.dir.BySignIn(s.Email, s.Groups)
	if !ok {
		return auth.Principal{}, "", ErrNotAllowed
	}
	return p, s.CSRF, nil
}

func (rp *RelyingParty) session(r *http.Request) (*session, error) {
	c, err := r.Cookie(SessionCookie)
	if err != nil {
		return nil, err // http.ErrNoCookie
	}
	var s session
	if err := rp.cookies.Decode(SessionCookie, c.Value, &s); err != nil {
		return nil, ErrInvalidSession // forged, altered, or made with another secret
	}
	if s.Email == "" || s.CSRF == "" {
		return nil, ErrInvalidSession
	}
	if !rp.now().Before(time.Unix(s.Expires, 0)) {
		return nil, ErrSessionExpired
	}
	return &s, nil
}

// setSession starts a session for email and groups: it sets the cookie.
func (rp *RelyingParty) setSession(w http.ResponseWriter, r *http.Request, email string, groups []string) error {
	now := rp.now()
	s := session{Email: email, CSRF: randomString(32), Issued: now.Unix(), Expires: now.Add(rp.ttl).Unix()}
	for _, g := range groups {
		if rp.groups[g] {
			s.Groups = append(s.Groups, g)
		}
	}
	v, err := rp.cookies.Encode(SessionCookie, s)
	if err != nil {
		return fmt.Errorf("encode session: %w", err)
	}
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: v, Path: "/", MaxAge: int(rp.ttl.Seconds()),
		HttpOnly: true, Secure: rp.secureFor(r), SameSite: http.SameSiteLaxMode})
	return nil
}

func (rp *RelyingParty) clearSession(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, Secure: rp.secureFor(r), SameSite: http.SameSiteLaxMode})
}

func (rp *RelyingParty) setFlow(w http.ResponseWriter, r *http.Request, f flow) error {
	v, err := rp.cookies.Encode(flowCookie, f)
	if err != nil {
		return fmt.Errorf("encode sign-in: %w", err)
	}
	http.SetCookie(w, &http.Cookie{Name: flowCookie, Value: v, Path: "/auth/", MaxAge: int(loginTTL.Seconds()),
		HttpOnly: true, Secure: rp.secureFor(r), SameSite: http.SameSiteLaxMode})
	return nil
}

// takeFlow reads the sign-in flow's cookie and clears it: each is used once.
func (rp *RelyingParty) takeFlow(w http.ResponseWriter, r *http.Request) (*flow, error) {
	c, err := r.Cookie(flowCookie)
	if err != nil {
		return nil, errors.New("no sign-in under way in this browser (it may have been started in another one, or cookies are blocked)")
	}
	http.SetCookie(w, &http.Cookie{Name: flowCookie, Value: "", Path: "/auth/", MaxAge: -1,
		HttpOnly: true, Secure: rp.secureFor(r), SameSite: http.SameSiteLaxMode})
	var f flow
	if err := rp.cookies.Decode(flowCookie, c.Value, &f); err != nil {
		return nil, errors.New("the sign-in cookie is not valid")
	}
	if !rp.now().Before(time.Unix(f.Expires, 0)) {
		return nil, fmt.Errorf("the sign-in took longer than %s", loginTTL)
	}
	return &f, nil
}

// secureFor says whether cookies set in answer to r are Secure: when r came
// over TLS, or the node is known to be reached over https.
func (rp *RelyingParty) secureFor(r *http.Request) bool { return rp.secure || r.TLS != nil }

// randomString returns n random bytes, URL-safe base64 encoded.
func randomString(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand never fails on supported platforms
	return base64.RawURLEncoding.EncodeToString(b)
}
