package builtins_test

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"go.starlark.net/starlark"

	"github.com/starbook/starbook/builtins"
	"github.com/starbook/starbook/enginetest"
	sbruntime "github.com/starbook/starbook/runtime"
)

// tokenServer is an OAuth2 token endpoint that grants token to a request
// whose form passes check, and counts the grants.
func tokenServer(t *testing.T, token string, check func(r *http.Request) bool) (*httptest.Server, *atomic.Int32) {
	var grants atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil || !check(r) {
			http.Error(w, `{"error":"invalid_client"}`, http.StatusUnauthorized)
			return
		}
		grants.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"access_token": token, "token_type": "Bearer", "expires_in": 3600})
	}))
	t.Cleanup(srv.Close)
	return srv, &grants
}

// leaks fails t if any of forms is in what the execution left: history,
// result, error, logs.
func leaks(t *testing.T, f *enginetest.Fixture, id string, res enginetest.RunResult, forms ...string) {
	t.Helper()
	h, _ := json.Marshal(f.History(id))
	all := string(h) + res.Outcome.Error + string(res.Outcome.Result) + f.Logs()
	for _, form := range forms {
		if strings.Contains(all, form) {
			t.Errorf("%q leaked:\n%s", form, all)
		}
	}
}

// TestOAuth2ClientCredentials: the node fetches a token with the client's
// credentials once and sends it as a bearer token to every run; an API
// echoing it back stores the placeholder, and neither the client secret nor
// the token is in what the runs stored.
func TestOAuth2ClientCredentials(t *testing.T) {
	const secretValue, token = "client-secret-value-77", "access-token-value-1234567890"
	tokens, grants := tokenServer(t, token, func(r *http.Request) bool {
		id, pw, ok := r.BasicAuth()
		if !ok { // client_secret_post
			id, pw = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
		}
		return r.PostForm.Get("grant_type") == "client_credentials" && id == "starbook" && pw == secretValue &&
			r.PostForm.Get("scope") == "read write"
	})
	api := httptest.NewServer(http.HandlerFunc(echo))
	defer api.Close()
	f := enginetest.NewFixture(t, enginetest.NewMemBackend(t), enginetest.Options{Secrets: map[string]string{"CLIENT_SECRET": secretValue}})
	p := f.Source("oauth", `
AUTH = oauth2_client_credentials(token_url = "`+tokens.URL+`", client_id = "starbook",
    client_secret = secret("CLIENT_SECRET"), scopes = ["read", "write"])

def main(event):
    r = call(http.get, event.url, auth = AUTH)
    return {"auth": r.json.auth, "shown": str(AUTH)}
`)
	for range 2 {
		id := f.Start(p, `{"url": "`+api.URL+`"}`)
		res := f.RunToEnd(id, p, sbruntime.StatusCompleted)
		var out map[string]string
		if err := json.Unmarshal(res.Outcome.Result, &out); err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(out["auth"], "Bearer <token of oauth2_client_credentials(") {
			t.Errorf("the API saw %q: want the bearer token, stored as its placeholder", out["auth"])
		}
		if out["shown"] != `oauth2_client_credentials(token_url = "`+tokens.URL+`", client_id = "starbook")` {
			t.Errorf("shown as %q", out["shown"])
		}
		leaks(t, f, id, res, secretValue, token)
	}
	if n := grants.Load(); n != 1 {
		t.Errorf("%d tokens granted for two runs, want one (cached by the node)", n)
	}
}

// TestGCPServiceAccount: a service account's JSON key signs a JWT grant at
// the key's token_uri; the token it gets is sent as a bearer token; the key
// is in nothing stored.
func TestGCPServiceAccount(t *testing.T) {
	const token = "gcp-access-token-abcdefghij"
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	pemKey := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	tokens, grants := tokenServer(t, token, func(r *http.Request) bool {
		return r.PostForm.Get("grant_type") == "urn:ietf:params:oauth:grant-type:jwt-bearer" &&
			strings.Count(r.PostForm.Get("assertion"), ".") == 2
	})
	jsonKey, _ := json.Marshal(map[string]string{"type": "service_account", "project_id": "p", "private_key_id": "k1",
		"private_key": pemKey, "client_email": "runbooks@p.iam.gserviceaccount.com", "token_uri": tokens.URL})
	api := httptest.NewServer(http.HandlerFunc(echo))
	defer api.Close()
	f := enginetest.NewFixture(t, enginetest.NewMemBackend(t), enginetest.Options{Secrets: map[string]string{"GCP_KEY": string(jsonKey)}})
	p := f.Source("gcp", `
def main(event):
    auth = gcp_service_account(secret("GCP_KEY"))
    r = call(http.post, event.url, json = {"a": 1}, auth = auth)
    return {"auth": r.json.auth, "shown": str(auth)}
`)
	id := f.Start(p, `{"url": "`+api.URL+`"}`)
	res := f.RunToEnd(id, p, sbruntime.StatusCompleted)
	var out map[string]string
	if err := json.Unmarshal(res.Outcome.Result, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out["auth"], "Bearer <token of gcp_service_account(") || grants.Load() != 1 {
		t.Errorf("the API saw %q after %d grants", out["auth"], grants.Load())
	}
	if out["shown"] != `gcp_service_account(<secret GCP_KEY>, client_email = "runbooks@p.iam.gserviceaccount.com")` {
		t.Errorf("shown as %q", out["shown"])
	}
	leaks(t, f, id, res, token, "BEGIN PRIVATE KEY", pemKey[40:80])
}

// TestAWSSigV4SignsEveryAttempt: each attempt of a request is signed, a
// retry again; the secret key is never sent nor stored.
func TestAWSSigV4SignsEveryAttempt(t *testing.T) {
	const secretKey = "aws-secret-key-value-0123456789"
	var attempts atomic.Int32
	var last atomic.Value
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		last.Store(r.Header.Get("Authorization") + "|" + r.Header.Get("X-Amz-Date") + "|" + r.Header.Get("X-Amz-Security-Token"))
		if attempts.Add(1) == 1 {
			http.Error(w, "again", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte(`{}`))
	}))
	defer api.Close()
	f := enginetest.NewFixture(t, enginetest.NewMemBackend(t), enginetest.Options{Secrets: map[string]string{
		"AWS_SECRET_ACCESS_KEY": secretKey, "AWS_SESSION_TOKEN": "session-token-value-xyz"}})
	p := f.Source("aws", `
def main(event):
    auth = aws_sigv4(region = "eu-west-1", service = "sts", access_key = "AKIAEXAMPLE",
        secret_key = secret("AWS_SECRET_ACCESS_KEY"), session_token = secret("AWS_SESSION_TOKEN"))
    return call(http.request, "POST", event.url, body = "Action=GetCallerIdentity", retries = 1, auth = auth).status
`)
	id := f.Start(p, `{"url": "`+api.URL+`"}`)
	res := f.RunToEnd(id, p, sbruntime.StatusCompleted)
	if attempts.Load() != 2 {
		t.Fatalf("%d attempts, want 2", attempts.Load())
	}
	parts := strings.SplitN(last.Load().(string), "|", 3)
	auth, date, token := parts[0], parts[1], parts[2]
	if !strings.HasPrefix(auth, "AWS4-HMAC-SHA256 Credential=AKIAEXAMPLE/") || !strings.Contains(auth, "/eu-west-1/sts/aws4_request") ||
		!strings.Contains(auth, "x-amz-security-token") || token != "session-token-value-xyz" || len(date) != len("20150830T123600Z") {
		t.Errorf("the retry was sent with %q", last.Load())
	}
	leaks(t, f, id, res, secretKey, "session-token-value-xyz")
}

// TestAuthBadInput: what auth= and its builders refuse, each with a clear
// error and nothing sent.
func TestAuthBadInput(t *testing.T) {
	pre := builtins.New(builtins.Options{Secrets: func(name string) (string, bool) { return "value-of-" + name, true }})
	tests := []struct{ expr, want string }{
		{`aws_sigv4(region = "us-east-1", service = "s3", access_key = "AK", secret_key = "plain")`,
			`"secret_key": got string, want secret(...)`},
		{`aws_sigv4(region = "", service = "s3", access_key = "AK", secret_key = secret("K"))`, "region and service must not be empty"},
		{`oauth2_client_credentials(token_url = "ftp://x", client_id = "c", client_secret = secret("S"))`, "want an http:// or https:// URL"},
		{`oauth2_client_credentials(token_url = "https://x", client_id = "c", client_secret = secret("S"), scopes = [1])`, "scopes[0]"},
		{`gcp_service_account(secret("KEY"))`, "gcp_service_account: <secret KEY> is not a service account's JSON key"},
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			_, err := starlark.Eval(&starlark.Thread{}, "expr", tt.expr, pre)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one saying %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "value-of-") {
				t.Errorf("the error shows a secret: %v", err)
			}
		})
	}

	var sent atomic.Int32
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { sent.Add(1) }))
	defer api.Close()
	f := enginetest.NewFixture(t, enginetest.NewMemBackend(t), enginetest.Options{})
	p := f.Source("badauth", `
def main(event):
    return call(http.get, event.url, auth = "Bearer x")
`)
	id := f.Start(p, `{"url": "`+api.URL+`"}`)
	res := f.RunToEnd(id, p, sbruntime.StatusFailed)
	if !strings.Contains(res.Outcome.Error, `"auth": got string, want aws_sigv4(...), oauth2_client_credentials(...) or gcp_service_account(...)`) || sent.Load() != 0 {
		t.Errorf("error %q after %d requests", res.Outcome.Error, sent.Load())
	}
}
