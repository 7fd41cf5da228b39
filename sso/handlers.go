package sso

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/starbook/starbook"
	"github.com/starbook/starbook/auth"
)

// csrfHeader carries the session's CSRF token on a mutating request (the API
// checks the same header: api.CSRFHeader).
const csrfHeader = "X-CSRF-Token"

// DefaultNext is where a sign-in without ?next= ends.
const DefaultNext = "/ui/"

// Mount adds the /auth/ routes to mux: GET /auth/login, GET /auth/callback,
// POST /auth/logout and GET /auth/session. With rp nil (single sign-on not
// configured) /auth/session answers {"sso":false} and the others 404. mux is
// an *http.ServeMux, or anything that registers handlers as one does.
func Mount(mux interface {
	HandleFunc(string, func(http.ResponseWriter, *http.Request))
}, rp *RelyingParty) {
	if rp == nil {
		mux.HandleFunc("GET /auth/session", func(w http.ResponseWriter, r *http.Request) {
			writeJSON(w, http.StatusOK, SessionInfo{})
		})
		mux.HandleFunc("/auth/", func(w http.ResponseWriter, r *http.Request) {
			writeJSON(w, http.StatusNotFound, map[string]string{
				"error": "single sign-on is not configured on this node (serve --oidc-issuer)"})
		})
		return
	}
	mux.HandleFunc("GET /auth/login", rp.login)
	mux.HandleFunc("GET /auth/callback", rp.callback)
	mux.HandleFunc("POST /auth/logout", rp.logout)
	mux.HandleFunc("GET /auth/session", rp.sessionInfo)
}

// login is GET /auth/login?next=PATH: it sends the browser to the identity
// provider, keeping state, nonce and PKCE verifier in the flow cookie.
func (rp *RelyingParty) login(w http.ResponseWriter, r *http.Request) {
	next, err := safeNext(r.URL.Query().Get("next"))
	if err != nil {
		rp.page(w, http.StatusBadRequest, "Cannot sign in", err.Error(), false)
		return
	}
	f := flow{State: randomString(24), Nonce: randomString(24), Verifier: oauth2.GenerateVerifier(), Next: next,
		Expires: rp.now().Add(loginTTL).Unix()}
	if err := rp.setFlow(w, r, f); err != nil {
		rp.page(w, http.StatusInternalServerError, "Cannot sign in", err.Error(), false)
		return
	}
	to := rp.oauth.AuthCodeURL(f.State, oidc.Nonce(f.Nonce), oauth2.S256ChallengeOption(f.Verifier))
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, to, http.StatusFound)
}

// safeNext accepts a path on this site (/ui/#/executions), nothing that
// could send the browser elsewhere.
func safeNext(next string) (string, error) {
	if next == "" {
		return DefaultNext, nil
	}
	bad := fmt.Errorf("next %q: want a path on this site, such as /ui/#/executions", next)
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.ContainsRune(next, '\\') {
		return "", bad
	}
	for _, c := range next {
		if c < 0x20 || c == 0x7f {
			return "", bad
		}
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil {
		return "", bad
	}
	return next, nil
}

// callback is GET /auth/callback: the identity provider sends the browser
// back with a code, exchanged here (with the PKCE verifier) for an ID token.
func (rp *RelyingParty) callback(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f, err := rp.takeFlow(w, r)
	if err != nil {
		rp.page(w, http.StatusBadRequest, "Sign-in failed", err.Error()+".", true)
		return
	}
	if e := q.Get("error"); e != "" {
		msg := "The identity provider refused the sign-in: " + e
		if d := q.Get("error_description"); d != "" {
			msg += ": " + d
		}
		rp.page(w, http.StatusUnauthorized, "Sign-in failed", msg, true)
		return
	}
	if subtle.ConstantTimeCompare([]byte(q.Get("state")), []byte(f.State)) != 1 {
		rp.page(w, http.StatusBadRequest, "Sign-in failed", "The answer of the identity provider does not belong to the sign-in this browser started (state differs).", true)
		return
	}
	code := q.Get("code")
	if code == "" {
		rp.page(w, http.StatusBadRequest, "Sign-in failed", "The identity provider sent no code.", true)
		return
	}
	ctx := oidc.ClientContext(r.Context(), rp.client)
	tok, err := rp.oauth.Exchange(ctx, code, oauth2.VerifierOption(f.Verifier))
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) {
			msg := "The identity provider refused the code: " + re.ErrorCode
			if re.ErrorDescription != "" {
				msg += ": " + re.ErrorDescription
			}
			rp.logger.Warn("sign-in: code refused", "error", re.ErrorCode, "description", re.ErrorDescription)
			rp.page(w, http.StatusUnauthorized, "Sign-in failed", msg, true)
			return
		}
		rp.logger.Error("sign-in: token exchange failed", "err", err)
		rp.page(w, http.StatusBadGateway, "Sign-in failed", "The identity provider could not be reached: "+err.Error(), true)
		return
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		rp.page(w, http.StatusBadGateway, "Sign-in failed", "The identity provider sent no ID token (is the openid scope asked for?).", true)
		return
	}
	idt, err := rp.verifier.Verify(ctx, raw)
	if err != nil {
		rp.logger.Warn("sign-in: ID token refused", "err", err)
		rp.page(w, http.StatusUnauthorized, "Sign-in failed", "The ID token was refused: "+err.Error(), true)
		return
	}
	if subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(f.Nonce)) != 1 {
		rp.page(w, http.StatusUnauthorized, "Sign-in failed", "The ID token was refused: its nonce is not this sign-in's.", true)
		return
	}
	email, groups, err := rp.claims(idt)
	if err != nil {
		rp.refuse(w, r, email, err.Error())
		return
	}
	p, ok := rp.dir.BySignIn(email, groups)
	if !ok {
		msg := fmt.Sprintf("You signed in as %s, but starbook's auth file names neither this email (people:) nor any of your groups (groups:). Ask an admin to add you.", email)
		rp.refuse(w, r, email, msg)
		return
	}
	if err := rp.setSession(w, r, email, groups); err != nil {
		rp.page(w, http.StatusInternalServerError, "Sign-in failed", err.Error(), true)
		return
	}
	rp.logger.Info("signed in", "name", p.Name, "role", p.Role, "email", email)
	rp.record(r, &starbook.AuditRecord{Actor: p.Name, Role: string(p.Role), Action: "session.login",
		Detail: email, Status: http.StatusSeeOther, Outcome: starbook.AuditOK})
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Location", f.Next)
	w.WriteHeader(http.StatusSeeOther)
}

// refuse answers a sign-in of someone starbook does not let in: 403 and
// no session.
func (rp *RelyingParty) refuse(w http.ResponseWriter, r *http.Request, email, msg string) {
	rp.logger.Warn("sign-in refused", "email", email, "why", msg)
	actor := email
	if actor == "" {
		actor = "unknown"
	}
	rp.record(r, &starbook.AuditRecord{Actor: actor, Action: "session.login", Status: http.StatusForbidden,
		Outcome: starbook.AuditDenied, Error: msg})
	rp.clearSession(w, r)
	rp.page(w, http.StatusForbidden, "Not allowed in", msg, false)
}

// claims reads the verified ID token's email and groups.
func (rp *RelyingParty) claims(idt *oidc.IDToken) (email string, groups []string, err error) {
	var c map[string]json.RawMessage
	if err := idt.Claims(&c); err != nil {
		return "", nil, fmt.Errorf("the ID token's claims do not decode: %w", err)
	}
	if err := json.Unmarshal(c["email"], &email); err != nil || strings.TrimSpace(email) == "" {
		return "", nil, errors.New("the ID token has no email claim: ask for the email scope (serve --oidc-scopes)")
	}
	if v, ok := c["email_verified"]; ok {
		var verified any
		_ = json.Unmarshal(v, &verified)
		if verified == false || verified == "false" {
			return email, nil, fmt.Errorf("the identity provider has not verified the email %s", email)
		}
	}
	if v, ok := c[rp.claim]; ok && string(v) != "null" {
		if err := json.Unmarshal(v, &groups); err != nil {
			var one string
			if json.Unmarshal(v, &one) != nil {
				return email, nil, fmt.Errorf("the ID token's %s claim is neither a list of strings nor a string", rp.claim)
			}
			groups = []string{one}
		}
	}
	return strings.ToLower(strings.TrimSpace(email)), groups, nil
}

// logout is POST /auth/logout: it clears the session and sends the browser
// to the provider's end_session_endpoint, if it has one, else to the UI.
// A valid session must come with its CSRF token (the X-CSRF-Token header
// or the form field csrf), so another site cannot sign anyone out.
func (rp *RelyingParty) logout(w http.ResponseWriter, r *http.Request) {
	p, csrf, err := rp.Session(r)
	if err == nil {
		given := r.Header.Get(csrfHeader)
		if given == "" {
			r.Body = http.MaxBytesReader(w, r.Body, 4096)
			given = r.PostFormValue("csrf")
		}
		if !validCSRF(given, csrf) {
			rp.page(w, http.StatusForbidden, "Not signed out", "The request did not carry this session's CSRF token.", false)
			return
		}
		rp.record(r, &starbook.AuditRecord{Actor: p.Name, Role: string(p.Role), Action: "session.logout",
			Status: http.StatusSeeOther, Outcome: starbook.AuditOK})
	}
	rp.clearSession(w, r)
	to := rp.afterOut
	if rp.endSession != "" {
		if u, err := url.Parse(rp.endSession); err == nil {
			q := u.Query()
			q.Set("client_id", rp.oauth.ClientID)
			q.Set("post_logout_redirect_uri", rp.afterOut)
			u.RawQuery = q.Encode()
			to = u.String()
		}
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Location", to)
	w.WriteHeader(http.StatusSeeOther)
}

// validCSRF reports whether given is the session's CSRF token, comparing
// in constant time; an empty token is never valid.
func validCSRF(given, want string) bool {
	return given != "" && want != "" && subtle.ConstantTimeCompare([]byte(given), []byte(want)) == 1
}

// SessionInfo is GET /auth/session: whether single sign-on is on and, when
// signed in, who and the CSRF token to send with mutating API calls.
type SessionInfo struct {
	SSO     bool       `json:"sso"`
	Name    string     `json:"name,omitempty"`
	Role    auth.Role  `json:"role,omitempty"`
	CSRF    string     `json:"csrf,omitempty"`
	Expires *time.Time `json:"expires,omitempty"`
	Login   string     `json:"login,omitempty"` // where to sign in
	Error   string     `json:"error,omitempty"` // why a session cookie sent was refused
}

func (rp *RelyingParty) sessionInfo(w http.ResponseWriter, r *http.Request) {
	out := SessionInfo{SSO: true, Login: "/auth/login"}
	s, err := rp.session(r)
	if err == nil {
		p, ok := rp.dir.BySignIn(s.Email, s.Groups)
		if ok {
			exp := time.Unix(s.Expires, 0).UTC()
			out.Name, out.Role, out.CSRF, out.Expires = p.Name, p.Role, s.CSRF, &exp
		} else {
			err = ErrNotAllowed
		}
	}
	if err != nil && !errors.Is(err, http.ErrNoCookie) {
		out.Error = err.Error()
	}
	writeJSON(w, http.StatusOK, out)
}

func (rp *RelyingParty) record(r *http.Request, rec *starbook.AuditRecord) {
	if rp.audit == nil {
		return
	}
	rec.Time, rec.Remote = rp.now().UTC(), r.RemoteAddr
	if err := rp.audit.RecordAudit(r.Context(), rec); err != nil {
		rp.logger.Error("audit a sign-in", "action", rec.Action, "actor", rec.Actor, "err", err)
	}
}

var pageTemplate = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}} · starbook</title></head>
<body><h1>{{.Title}}</h1><p id="message">{{.Message}}</p>
{{if .Retry}}<p><a href="/auth/login">Sign in again</a></p>{{end}}<p><a href="/ui/">starbook</a></p></body></html>
`))

// page answers a browser with a short HTML page.
func (rp *RelyingParty) page(w http.ResponseWriter, status int, title, msg string, retry bool) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'none'")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = pageTemplate.Execute(w, struct {
		Title, Message string
		Retry          bool
	}{title, msg, retry})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, _ := json.Marshal(v) // SessionInfo and string maps always encode
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}
