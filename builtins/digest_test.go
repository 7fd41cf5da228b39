package builtins_test

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.starlark.net/starlark"

	"github.com/starbook/starbook/builtins"
	"github.com/starbook/starbook/enginetest"
	sbruntime "github.com/starbook/starbook/runtime"
)

// TestDigests: the helpers against published vectors (FIPS 180-2 for
// SHA-256, RFC 4231 test cases 1 and 2 for HMAC-SHA256, RFC 4648 section 10
// for base64), and their bad input.
func TestDigests(t *testing.T) {
	tests := []struct {
		expr, want, wantErr string
	}{
		{expr: `sha256("abc")`, want: "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
		{expr: `sha256(b"")`, want: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
		{expr: `hmac_sha256(b"\x0b" * 20, "Hi There")`,
			want: "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"},
		{expr: `hmac_sha256("Jefe", "what do ya want for nothing?")`,
			want: "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"},
		{expr: `hmac_sha256("Jefe", "what do ya want for nothing?", encoding = "base64")`,
			want: "W9zBRr9gdU5qBCQmCJV1x1oAPwidJzmDnexYuWTsOEM="},
		{expr: `base64.encode("foobar")`, want: "Zm9vYmFy"},
		{expr: `base64.encode("fooba")`, want: "Zm9vYmE="},
		{expr: `base64.encode("fo", padding = False)`, want: "Zm8"},
		{expr: `base64.encode(b"\xfb\xff", url = True)`, want: "-_8="},
		{expr: `base64.decode("Zm9vYmE=")`, want: "fooba"},
		{expr: `base64.decode("Zm8")`, want: "fo"},
		{expr: `sha256(base64.decode("-_8=", url = True)) == sha256(b"\xfb\xff")`, want: "True"},
		{expr: `sha256(1)`, wantErr: "sha256: data: got int, want string, bytes or secret"},
		{expr: `hmac_sha256("k", "m", encoding = "hex2")`, wantErr: `want "hex", "base64" or "raw"`},
		{expr: `base64.decode("not base64!")`, wantErr: "base64.decode: not base64"},
	}
	pre := builtins.New(builtins.Options{})
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			v, err := starlark.Eval(&starlark.Thread{}, "expr", tt.expr, pre)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one saying %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, ok := starlark.AsString(v)
			if !ok {
				got = v.String()
			}
			if got != tt.want {
				t.Errorf("= %q, want %q", got, tt.want)
			}
		})
	}
}

// TestBase64OfASecretIsASecret: a Basic auth header built from a secret is
// sent as it is, and neither the encoded form nor the secret reaches the
// history, the result, the error or the logs; it prints as
// base64(<secret NAME>).
func TestBase64OfASecretIsASecret(t *testing.T) {
	const value = "hunter2-basic-password"
	srv := httptest.NewServer(http.HandlerFunc(echo))
	defer srv.Close()
	f := enginetest.NewFixture(t, enginetest.NewMemBackend(t), enginetest.Options{Secrets: map[string]string{"PW": value}})
	p := f.Source("basic", `
def main(event):
    auth = "Basic " + base64.encode("ops:" + secret("PW"))
    r = call(http.get, event.url, headers = {"Authorization": auth})
    log("sent", auth = r.json.auth)
    fail("header was " + str(auth) + " and echoed " + r.json.auth)
`)
	id := f.Start(p, `{"url": "`+srv.URL+`"}`)
	res := f.RunToEnd(id, p, sbruntime.StatusFailed)
	h, _ := json.Marshal(f.History(id))
	all := string(h) + res.Outcome.Error + string(res.Outcome.Result) + f.Logs()
	encoded := base64.StdEncoding.EncodeToString([]byte("ops:" + value))
	for _, form := range []string{value, encoded} {
		if strings.Contains(all, form) {
			t.Fatalf("the secret (%q) leaked:\n%s", form, all)
		}
	}
	if !strings.Contains(res.Outcome.Error, "header was Basic base64(ops:<secret PW>) and echoed Basic base64(ops:<secret PW>)") {
		t.Errorf("error %q: want the header shown with its placeholder, sent and echoed whole", res.Outcome.Error)
	}
}
