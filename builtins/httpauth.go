package builtins

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"go.starlark.net/starlark"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
	"golang.org/x/oauth2/google"

	sbruntime "github.com/starbook/starbook/runtime"
)

// An http.* call's auth= signs or authorizes each attempt it sends:
//
//	aws_sigv4(region=, service=, access_key=, secret_key=, session_token=None)
//	oauth2_client_credentials(token_url=, client_id=, client_secret=, scopes=[])
//	gcp_service_account(json_key, scopes=[])
//
// Each is a value built at any time (no request is sent until the call);
// it prints its public parts only, so neither the history nor a replay
// check (ArgsHash) ever holds a key. Keys are secrets (secret(...)); a
// plain string is refused, since nothing would scrub it. Tokens are
// fetched by the node, cached per node and credentials until they expire
// (oauth2.ReuseTokenSource), and scrubbed from everything the run stores
// like a secret: a service echoing one back stores the placeholder.

// httpAuth sets the authorization of one attempt of a request.
type httpAuth interface {
	starlark.Value
	// authorize sets req's authorization; payload is its body (nil for
	// none), scrub registers a value to be scrubbed as a secret.
	authorize(ctx context.Context, req *http.Request, payload []byte, scrub func(value, display string)) error
}

// authValue is the starlark.Value part every auth kind shares.
type authValue struct{ shown string }

func (a *authValue) String() string        { return a.shown }
func (a *authValue) Type() string          { return "http_auth" }
func (a *authValue) Freeze()               {}
func (a *authValue) Truth() starlark.Bool  { return true }
func (a *authValue) Hash() (uint32, error) { return starlark.String(a.shown).Hash() }

// secretArg reads a keyword argument that must be a secret.
type secretArg struct{ s *sbruntime.Secret }

func (a *secretArg) Unpack(v starlark.Value) error {
	s, ok := v.(*sbruntime.Secret)
	if !ok {
		return fmt.Errorf("got %s, want secret(...): a key in a plain string would be stored and shown", v.Type())
	}
	a.s = s
	return nil
}

func strconvQuote(s string) string { return starlark.String(s).String() }

// shown is a as an auth value prints it: a secret as its placeholder, a
// string quoted.
func shown(a textArg) string {
	if a.secret {
		return a.display
	}
	return strconvQuote(a.text)
}

// awsSigV4 signs with AWS Signature Version 4 (aws-sdk-go-v2's signer).
type awsSigV4 struct {
	authValue
	region, service string
	creds           aws.Credentials
}

func awsSigV4Builtin(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var region, service string
	var access textArg
	var secretKey secretArg
	var token starlark.Value = starlark.None
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "region", &region, "service", &service,
		"access_key", &access, "secret_key", &secretKey, "session_token?", &token); err != nil {
		return nil, err
	}
	if region == "" || service == "" {
		return nil, fmt.Errorf("%s: region and service must not be empty", b.Name())
	}
	a := &awsSigV4{region: region, service: service,
		creds: aws.Credentials{AccessKeyID: access.text, SecretAccessKey: secretKey.s.Reveal()}}
	if token != starlark.None {
		var t secretArg
		if err := t.Unpack(token); err != nil {
			return nil, fmt.Errorf("%s: session_token: %w", b.Name(), err)
		}
		a.creds.SessionToken = t.s.Reveal()
	}
	a.shown = fmt.Sprintf("aws_sigv4(region = %s, service = %s, access_key = %s)", strconvQuote(region), strconvQuote(service), shown(access))
	return a, nil
}

var sigv4 = v4.NewSigner()

// sha256Hex is the SHA-256 of data in lowercase hex.
func sha256Hex(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

func (a *awsSigV4) authorize(ctx context.Context, req *http.Request, payload []byte, _ func(string, string)) error {
	hash := sha256Hex(payload)
	if a.service == "s3" { // S3 wants the payload's hash as a header too
		req.Header.Set("X-Amz-Content-Sha256", hash)
	}
	return a.sign(ctx, req, hash, time.Now())
}

func (a *awsSigV4) sign(ctx context.Context, req *http.Request, payloadHash string, at time.Time) error {
	if err := sigv4.SignHTTP(ctx, a.creds, req, payloadHash, a.service, a.region, at); err != nil {
		return fmt.Errorf("sign the request (aws_sigv4): %w", err)
	}
	return nil
}

// tokenAuth sends a bearer token from a token source the node caches.
type tokenAuth struct {
	authValue
	key    string // the cache's: what the credentials are
	source func() oauth2.TokenSource
}

// tokenSources holds one token source per credentials: a token is fetched
// once and reused by every run of the node until it expires.
var tokenSources sync.Map // key -> oauth2.TokenSource

// tokenHTTPClient fetches tokens: bounded, whatever the step's timeout.
var tokenHTTPClient = &http.Client{Timeout: 30 * time.Second}

func (a *tokenAuth) authorize(_ context.Context, req *http.Request, _ []byte, scrub func(string, string)) error {
	ts, ok := tokenSources.Load(a.key)
	if !ok {
		ts, _ = tokenSources.LoadOrStore(a.key, a.source())
	}
	tok, err := ts.(oauth2.TokenSource).Token()
	if err != nil {
		return fmt.Errorf("%s: get a token: %w", a.shown, err)
	}
	scrub(tok.AccessToken, "<token of "+a.shown+">")
	tok.SetAuthHeader(req)
	return nil
}

// credentialsKey identifies credentials without holding them: a hash of
// every part.
func credentialsKey(kind string, parts ...string) string {
	h := sha256.New()
	h.Write([]byte(kind))
	for _, p := range parts {
		h.Write([]byte{0})
		h.Write([]byte(p))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// tokenContext is where token sources fetch: not a step's context, which
// ends with its step while the source lives on.
func tokenContext() context.Context {
	return context.WithValue(context.Background(), oauth2.HTTPClient, tokenHTTPClient)
}

func oauth2ClientCredentialsBuiltin(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var tokenURL string
	var clientID textArg
	var clientSecret secretArg
	var scopes *starlark.List
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "token_url", &tokenURL, "client_id", &clientID,
		"client_secret", &clientSecret, "scopes?", &scopes); err != nil {
		return nil, err
	}
	if !strings.HasPrefix(tokenURL, "https://") && !strings.HasPrefix(tokenURL, "http://") {
		return nil, fmt.Errorf("%s: token_url %q: want an http:// or https:// URL", b.Name(), tokenURL)
	}
	list, err := stringList(b.Name()+": scopes", scopes)
	if err != nil {
		return nil, err
	}
	cfg := &clientcredentials.Config{ClientID: clientID.text, ClientSecret: clientSecret.s.Reveal(), TokenURL: tokenURL, Scopes: list}
	a := &tokenAuth{key: credentialsKey("oauth2", append([]string{tokenURL, cfg.ClientID, cfg.ClientSecret}, list...)...),
		source: func() oauth2.TokenSource { return cfg.TokenSource(tokenContext()) }}
	a.shown = fmt.Sprintf("oauth2_client_credentials(token_url = %s, client_id = %s)", strconvQuote(tokenURL), shown(clientID))
	return a, nil
}

func gcpServiceAccountBuiltin(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var key secretArg
	var scopes *starlark.List
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "json_key", &key, "scopes?", &scopes); err != nil {
		return nil, err
	}
	list, err := stringList(b.Name()+": scopes", scopes)
	if err != nil {
		return nil, err
	}
	if len(list) == 0 {
		list = []string{"https://www.googleapis.com/auth/cloud-platform"}
	}
	cfg, err := google.JWTConfigFromJSON([]byte(key.s.Reveal()), list...)
	if err != nil {
		why := err.Error()
		if strings.Contains(why, key.s.Reveal()) || strings.Contains(why, "PRIVATE KEY") {
			why = "it does not parse"
		}
		return nil, fmt.Errorf("%s: %s is not a service account's JSON key: %s", b.Name(), key.s, why)
	}
	a := &tokenAuth{key: credentialsKey("gcp", append([]string{key.s.Reveal()}, list...)...),
		source: func() oauth2.TokenSource { return cfg.TokenSource(tokenContext()) }}
	a.shown = fmt.Sprintf("gcp_service_account(%s, client_email = %s)", key.s, strconvQuote(cfg.Email))
	return a, nil
}

// authArg reads auth=: None or one of the auth values.
type authArg struct{ auth httpAuth }

func (a *authArg) Unpack(v starlark.Value) error {
	if v == starlark.None {
		return nil
	}
	auth, ok := v.(httpAuth)
	if !ok {
		return fmt.Errorf("got %s, want aws_sigv4(...), oauth2_client_credentials(...) or gcp_service_account(...)", v.Type())
	}
	a.auth = auth
	return nil
}

// authTransport authorizes every attempt it sends (a retry is signed
// again: SigV4 signs the time).
type authTransport struct {
	base    http.RoundTripper
	auth    httpAuth
	payload []byte
	scrub   func(value, display string)
}

func (t *authTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	r := req.Clone(req.Context())
	if err := t.auth.authorize(req.Context(), r, t.payload, t.scrub); err != nil {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, err
	}
	return t.base.RoundTrip(r)
}
