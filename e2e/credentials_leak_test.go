package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
	"time"

	sbruntime "github.com/starbook/starbook/runtime"
)

// The credentials TestCredentialsLeakNowhere gives its node, each with
// characters that escape differently in JSON, base64 and URLs.
const (
	leakAWSSecret    = `aws/Secret+Key"<&>wJalrXUtnFEMI`
	leakAWSToken     = `aws-Session/Token+FwoGZXIvYXdzE"<&>`
	leakClientSecret = `client/Secret+"<&>oauth2-77`
	leakAccessToken  = `access-Token.from/the+issuer-1234567890`
)

// credentialsRunbook sends every kind of credential a runbook can hold and
// has each echoed back: AWS SigV4 headers (with the session token),
// an OAuth2 bearer token, and an SSH key a command prints.
const credentialsRunbook = `
def main(event):
    aws = aws_sigv4(region = "eu-west-1", service = "sts", access_key = "AKIAE2E",
        secret_key = secret("LEAK_AWS_SECRET"), session_token = secret("LEAK_AWS_TOKEN"))
    oauth = oauth2_client_credentials(token_url = event.tokens, client_id = "e2e",
        client_secret = secret("LEAK_CLIENT_SECRET"), scopes = ["read"])
    signed = call(http.post, event.echo + "/aws", body = "Action=GetCallerIdentity", auth = aws)
    bearer = call(http.get, event.echo + "/oauth", auth = oauth)
    log("echoed", aws = signed.json, oauth = bearer.json)
    out = {"aws": signed.json, "oauth": bearer.json, "shown": [str(aws), str(oauth)]}
    if event.ssh_port:
        r = call(ssh.run, "127.0.0.1", "printf '%s' \"$KEY\"; echo; echo \"$KEY\" >&2; exit 3", user = event.user,
            key = secret("LEAK_SSH_KEY"), port = event.ssh_port, known_hosts = secret("LEAK_KNOWN_HOSTS"),
            env = {"KEY": secret("LEAK_SSH_KEY")}, check = False)
        log("ssh", stdout = r.stdout, stderr = r.stderr)
        out["ssh"] = r
        call(ssh.run, "127.0.0.1", "echo \"$KEY\" >&2; exit 4", user = event.user, key = secret("LEAK_SSH_KEY"),
            port = event.ssh_port, known_hosts = secret("LEAK_KNOWN_HOSTS"), env = {"KEY": secret("LEAK_SSH_KEY")})
    return out
`

// TestCredentialsLeakNowhere: no credential a runbook uses (an SSH key, an
// AWS secret key and session token, an OAuth2 client secret and the token
// it gets) is in etcd, the node's log and traces, what the API and metrics
// serve, in any encoding, though each was echoed back to the run: in
// responses, a command's output and a failing command's error.
func TestCredentialsLeakNowhere(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the real binary")
	}
	tokens := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		id, pw, ok := r.BasicAuth()
		if !ok {
			id, pw = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
		}
		if id != "e2e" || pw != leakClientSecret {
			http.Error(w, `{"error":"invalid_client"}`, http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"access_token": leakAccessToken, "token_type": "Bearer", "expires_in": 3600})
	}))
	defer tokens.Close()
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{"auth": r.Header.Get("Authorization"),
			"token": r.Header.Get("X-Amz-Security-Token"), "body": string(b)})
	}))
	defer echo.Close()
	t.Setenv("LEAK_AWS_SECRET", leakAWSSecret)
	t.Setenv("LEAK_AWS_TOKEN", leakAWSToken)
	t.Setenv("LEAK_CLIENT_SECRET", leakClientSecret)
	t.Setenv("OTEL_TRACES_EXPORTER", "console")
	input := map[string]any{"tokens": tokens.URL, "echo": echo.URL, "ssh_port": 0}
	var sshKeyCore string
	if _, err := os.Stat("/usr/sbin/sshd"); err == nil {
		srv := startSSHD(t)
		me, err := user.Current()
		if err != nil {
			t.Fatal(err)
		}
		t.Setenv("LEAK_SSH_KEY", srv.clientPEM)
		t.Setenv("LEAK_KNOWN_HOSTS", srv.knownHosts)
		input["ssh_port"], input["user"] = srv.port, me.Username
		lines := strings.Split(srv.clientPEM, "\n")
		sshKeyCore = lines[2] // a line of the key's body
	} else {
		t.Log("no /usr/sbin/sshd: the SSH key is not checked (.ci/run installs openssh-server)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	dataDir := filepath.Join(t.TempDir(), "node")
	d := startDaemon(t, dataDir, "--log-level", "debug")
	if _, err := d.Client.Apply(ctx, map[string]string{"creds.star": credentialsRunbook}); err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(input)
	e, err := d.Client.Start(ctx, "creds", body)
	if err != nil {
		t.Fatal(err)
	}
	end, history, err := d.Client.Wait(ctx, e.ID, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	wantStatus := sbruntime.StatusCompleted
	if sshKeyCore != "" {
		wantStatus = sbruntime.StatusFailed // the second command exits 4
	}
	if end.Status != wantStatus {
		t.Fatalf("execution %s: %s %s", e.ID, end.Status, end.Error)
	}

	var corpus strings.Builder
	b, _ := json.Marshal(map[string]any{"execution": end, "history": history})
	fmt.Fprintf(&corpus, "== execution\n%s", b)
	addPages(t, &corpus, d.URL, "/api/v1/executions/"+e.ID, "/api/v1/executions/"+e.ID+"/logs", "/api/v1/executions", "/metrics")
	out, _ := run(ctx, d.URL, "show", e.ID)
	fmt.Fprintf(&corpus, "\n== starbook show\n%s", out)
	addEtcd(ctx, t, &corpus, dataDir)
	d.stop(t)
	addLog(t, &corpus, dataDir)

	text := corpus.String()
	secrets := []string{leakAWSSecret, leakAWSToken, leakClientSecret, leakAccessToken}
	if sshKeyCore != "" {
		secrets = append(secrets, sshKeyCore)
	}
	for _, v := range secrets {
		for _, form := range leakForms(v)[:9] {
			if i := strings.Index(text, form); i >= 0 {
				lo, hi := max(0, i-300), min(len(text), i+len(form)+100)
				t.Errorf("a credential leaked as %q:\n...%s...", form, text[lo:hi])
			}
		}
	}
	// The credentials were used and echoed: their placeholders came back.
	wants := []string{"AWS4-HMAC-SHA256 Credential=AKIAE2E/", "<secret LEAK_AWS_TOKEN>", "Bearer <token of oauth2_client_credentials("}
	if sshKeyCore != "" {
		wants = append(wants, "<secret LEAK_SSH_KEY>", "exit status 4: <secret LEAK_SSH_KEY>")
	}
	for _, want := range wants {
		if !strings.Contains(text, want) && !strings.Contains(text, strings.NewReplacer("<", `\u003c`, ">", `\u003e`).Replace(want)) {
			t.Errorf("the corpus lacks %q: did every attempt run?", want)
		}
	}
}
