package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/starbook/starbook/api"
	"github.com/starbook/starbook/tlsconfig"
	"github.com/starbook/starbook/tlsconfig/tlstest"
)

// Tokens of the secured node, one per role.
const (
	opsToken   = "ops-token-0123456789abcdef"
	apprToken  = "appr-token-0123456789abcdef"
	rootToken  = "root-token-0123456789abcdef"
	viewToken  = "view-token-0123456789abcdef"
	gateScript = `
def main(event):
    ok = wait_for_approval("Open the gate for " + event.who + "?", required = 1)
    return {"open": ok.approved, "by": ok.by}
`
)

// TestSecuredNode serves HTTPS with tokens from the environment: the CLI
// needs the CA and a token, each role may do what the table says, the
// approver is the token's holder and the audit log says who did what.
func TestSecuredNode(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the real binary")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	dir := t.TempDir()
	certs := tlstest.Generate(t, dir)
	rb := filepath.Join(dir, "runbooks")
	if err := os.MkdirAll(rb, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(rb, "gate.star"), []byte(gateScript), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("STARBOOK_TOKENS", "ops:operator:"+opsToken+",appr:approver:"+apprToken+
		" root:admin:"+rootToken+" view:viewer:"+viewToken)
	d := startDaemon(t, filepath.Join(dir, "node"), "--tls-cert", certs.Cert, "--tls-key", certs.Key, "--runbooks", rb)
	if !strings.HasPrefix(d.URL, "https://") {
		t.Fatalf("URL %s", d.URL)
	}
	t.Setenv("STARBOOK_TOKENS", "")
	cli := func(token string, args ...string) (string, error) {
		t.Helper()
		full := append([]string{"--ca-cert", certs.CA}, args...)
		if token != "" {
			full = append([]string{"--token", token}, full...)
		}
		return run(ctx, d.URL, full...)
	}

	// Without the CA, TLS fails; without a token, 401; a viewer may not run.
	if out, err := run(ctx, d.URL, "--token", opsToken, "ls"); err == nil || !strings.Contains(out, "certificate") {
		t.Errorf("without --ca-cert: %v %s", err, out)
	}
	if out, err := cli("", "ls"); err == nil || !strings.Contains(out, "authentication required") {
		t.Errorf("without a token: %v %s", err, out)
	}
	if out, err := cli(viewToken, "run", "gate"); err == nil || !strings.Contains(out, "forbidden: view has role viewer, which may not run") {
		t.Errorf("viewer runs: %v %s", err, out)
	}
	if out, err := cli(viewToken, "ls"); err != nil {
		t.Errorf("viewer lists: %v %s", err, out)
	}

	// The operator starts a run; the environment carries token and CA too.
	t.Setenv("STARBOOK_TOKEN", opsToken)
	t.Setenv("STARBOOK_CA_CERT", certs.CA)
	id, err := run(ctx, d.URL, "run", "gate", "--input", `{"who": "ops"}`)
	if err != nil {
		t.Fatalf("run: %v %s", err, id)
	}
	t.Setenv("STARBOOK_TOKEN", "")
	t.Setenv("STARBOOK_CA_CERT", "")
	// The operator may not approve, nor the approver as someone else.
	if out, err := cli(opsToken, "approve", id); err == nil || !strings.Contains(out, "may not decide") {
		t.Errorf("operator approves: %v %s", err, out)
	}
	if out, err := cli(apprToken, "approve", id, "--as", "root"); err == nil || !strings.Contains(out, "may decide only as themselves") {
		t.Errorf("approver decides as root: %v %s", err, out)
	}
	if out, err := cli(apprToken, "approve", id, "--comment", "fine"); err != nil || !strings.Contains(out, "approved by appr") {
		t.Fatalf("approver approves: %v %s", err, out)
	}
	out, err := cli(viewToken, "show", id, "--json")
	if err != nil {
		t.Fatalf("show: %v %s", err, out)
	}
	var shown struct {
		Execution struct {
			Status  string
			Result  json.RawMessage
			Trigger struct{ Type, Source string }
		}
	}
	if err := json.Unmarshal([]byte(out), &shown); err != nil || shown.Execution.Status != "completed" ||
		string(shown.Execution.Result) != `{"by":["appr"],"open":true}` || shown.Execution.Trigger.Source != "ops" {
		// The run may still be finishing: wait for it through the API.
		c := &api.Client{BaseURL: d.URL, Token: viewToken, HTTP: httpsClient(t, certs.CA)}
		e, _, werr := c.Wait(ctx, id, time.Minute)
		if werr != nil || e.Status != "completed" || string(e.Result) != `{"by":["appr"],"open":true}` || e.Trigger.Source != "ops" {
			t.Fatalf("execution: %+v %v (show: %s)", e, werr, out)
		}
	}

	// The audit log: admins only; who, role, action, target, outcome.
	if out, err := cli(opsToken, "audit"); err == nil || !strings.Contains(out, "may not audit") {
		t.Errorf("operator reads the audit log: %v %s", err, out)
	}
	out, err = cli(rootToken, "audit", "--json")
	if err != nil {
		t.Fatalf("audit: %v %s", err, out)
	}
	var audit api.AuditResponse
	if err := json.Unmarshal([]byte(out), &audit); err != nil {
		t.Fatalf("audit JSON: %v\n%s", err, out)
	}
	want := []string{"view viewer execution.start denied 403", "ops operator execution.start ok 201",
		"ops operator approval.decide denied 403", "appr approver approval.decide denied 403",
		"appr approver approval.decide ok 200"}
	var got []string
	for _, r := range audit.Audit {
		got = append(got, strings.Join([]string{r.Actor, r.Role, r.Action, r.Outcome, itoa(r.Status)}, " "))
		if r.Remote == "" || r.Time.IsZero() || (r.Action != "runbook.apply" && r.Execution == "" && r.Outcome == "ok") {
			t.Errorf("record %+v lacks its remote, time or target", r)
		}
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("audit:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	table, err := cli(rootToken, "audit", "--limit", "2")
	if err != nil || !strings.Contains(table, "appr") || strings.Count(table, "\n") != 2 {
		t.Errorf("audit table: %v\n%s", err, table)
	}
	logText, _ := os.ReadFile(filepath.Join(dir, "node") + ".log")
	for _, w := range []string{"API authentication on", `"msg":"audit"`, `"actor":"appr"`} {
		if !strings.Contains(string(logText), w) {
			t.Errorf("node log lacks %s", w)
		}
	}
	for _, tok := range []string{opsToken, apprToken, rootToken, viewToken} {
		if strings.Contains(string(logText), tok) {
			t.Errorf("node log holds a token")
		}
	}
}

// TestServeRefusesOpenNonLoopback: without tokens, serving every interface
// needs --insecure-no-auth.
func TestServeRefusesOpenNonLoopback(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the real binary")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dir := t.TempDir()
	out, err := exec.CommandContext(ctx, binary, "serve", "--data-dir", filepath.Join(dir, "a"), "--listen", "0.0.0.0:0").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "refusing to serve 0.0.0.0:0 without authentication") ||
		!strings.Contains(string(out), "--insecure-no-auth") {
		t.Fatalf("open node on 0.0.0.0: %v\n%s", err, out)
	}
	d := startDaemon(t, filepath.Join(dir, "b"), "--listen", "0.0.0.0:0", "--insecure-no-auth")
	logText, _ := os.ReadFile(filepath.Join(dir, "b") + ".log")
	if !strings.Contains(string(logText), "API authentication off on a non-loopback address") {
		t.Errorf("no warning in the log:\n%s", logText)
	}
	d.kill(t)
}

func itoa(n int) string { return strconv.Itoa(n) }

// httpsClient trusts the CA in caFile.
func httpsClient(t *testing.T, caFile string) *http.Client {
	t.Helper()
	cfg, err := tlsconfig.Client(caFile, "", "")
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}, Timeout: 2 * time.Minute}
}
