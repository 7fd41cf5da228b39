// Package sso is the web UI's single sign-on: an OpenID Connect relying
// party. It owns the routes under /auth/ (login, callback, logout, session)
// and the session cookie they set, and answers one question for the API:
// who does this request's session cookie name, and which CSRF token is bound
// to it ([RelyingParty.Session]).
//
// Sign-in is the authorization code flow with PKCE (S256), a state and a
// nonce. The three are kept between the redirect and the callback in a
// short-lived cookie, signed and encrypted like the session. The ID token is
// verified by go-oidc (signature, issuer, audience, expiry) and its nonce
// compared here; the email and groups claims are mapped to a principal by
// the auth file's people and groups ([auth.Directory.BySignIn]). Someone the
// auth file does not name is refused with a page saying so, and gets no
// session.
//
// Invariants:
//   - A session cookie is HttpOnly, SameSite=Lax, Secure when the node is
//     reached over TLS, signed (HMAC-SHA256) and encrypted (AES-256), and it
//     carries its own expiry: a cookie kept past its Max-Age is still refused.
//   - The keys are derived from one secret (HKDF-SHA256), so every node given
//     the same secret accepts every other node's cookies.
//   - The principal is worked out again from the auth file on every request,
//     so a person removed from it loses their sessions when the node restarts
//     with the new file, not when the cookie expires.
//   - Nothing here logs or stores a token of the identity provider; the
//     client secret is only sent to its token endpoint.
package sso
