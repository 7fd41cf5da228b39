package e2e

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/oauth2-proxy/mockoidc"

	"github.com/starbook/starbook/api"
	"github.com/starbook/starbook/auth"
)

// chromium finds a headless-capable Chromium, or skips the test (as ui's
// tests do).
func chromium(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	msg := "no chromium on PATH (apt-get install chromium chromium-driver; .ci/run installs it)"
	if os.Getenv("CI") != "" {
		t.Fatal(msg) // CI installs it: a missing browser must not pass as a skip
	}
	t.Skip("browser test skipped: " + msg)
	return ""
}

// TestSingleSignOn runs `starbook serve` with single sign-on through a real
// OpenID provider (mockoidc, in this process) and drives the UI in headless
// Chromium: the visitor signs in, gets the role the auth file gives their
// group, approves a run as themselves, and the audit log names them. A
// mutating call without the CSRF token is refused, the CLI's token keeps
// working, the session outlives a restart of the node (the secret is in
// etcd), and signing out ends it.
func TestSingleSignOn(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the real binary and a browser")
	}
	chrome := chromium(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	idp, err := mockoidc.Run()
	if err != nil {
		t.Fatal(err)
	}
	defer idp.Shutdown()
	idp.QueueUser(&mockoidc.MockUser{Subject: "u-alice", Email: "alice@example.com", EmailVerified: true,
		Groups: []string{"staff", "sre-leads"}})

	dir := t.TempDir()
	const ciToken = "ci-token-0123456789abcdef"
	authFile := filepath.Join(dir, "auth.yaml")
	if err := os.WriteFile(authFile, []byte(`
tokens:
  - {name: ci, role: operator, sha256: `+auth.Hash(ciToken)+`}
people:
  - {name: alice, role: approver, email: alice@example.com}
groups:
  - {group: sre-leads, role: admin}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	rb := filepath.Join(dir, "runbooks")
	if err := os.MkdirAll(rb, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(rb, "gate.star"), []byte(`
def main(event):
    ok = wait_for_approval("Open the gate?", timeout = "1h")
    return "open" if ok else "closed"
`), 0o644); err != nil {
		t.Fatal(err)
	}
	oidc := idp.Config()
	t.Setenv("STARBOOK_OIDC_CLIENT_SECRET", oidc.ClientSecret)
	args := []string{"--auth-file", authFile, "--runbooks", rb, "--oidc-issuer", oidc.Issuer, "--oidc-client-id", oidc.ClientID}
	data := filepath.Join(dir, "node")
	d := startDaemon(t, data, args...)
	if log := strings.Join(d.out.lines(), "\n"); strings.Contains(log, oidc.ClientSecret) {
		t.Fatalf("the client secret is in the node's log")
	}

	// The CLI's bearer token still works: it starts the run to approve.
	ci := &api.Client{BaseURL: d.URL, Token: ciToken}
	e, err := ci.Start(ctx, "gate", nil)
	if err != nil {
		t.Fatal(err)
	}

	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chrome), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1280, 1000),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(actx)
	defer cancelBrowser()
	do := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(bctx, steps...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(bctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("text of %s: %v", sel, err)
		}
		return s
	}
	// fetch calls the API from the page, as the UI does: the session cookie
	// goes by itself; it returns the status and the body.
	fetch := func(method, path, body string, headers map[string]string) (int, string) {
		t.Helper()
		if headers == nil {
			headers = map[string]string{}
		}
		h, _ := json.Marshal(headers)
		js := `fetch(` + jsString(path) + `, {method: ` + jsString(method) + `, headers: ` + string(h) + `,
			body: ` + map[bool]string{true: "undefined", false: jsString(body)}[body == ""] + `})
			.then(async r => JSON.stringify({status: r.status, body: await r.text()}))`
		out, err := chromedp.Run(bctx, chromedp.Evaluate[string](js, chromedp.EvalAwaitPromise))
		if err != nil {
			t.Fatalf("fetch %s %s: %v", method, path, err)
		}
		var res struct {
			Status int    `json:"status"`
			Body   string `json:"body"`
		}
		if err := json.Unmarshal([]byte(out), &res); err != nil {
			t.Fatal(err)
		}
		return res.Status, res.Body
	}

	page := d.URL + "/ui/#/executions/" + e.ID
	do("open the execution signed out", chromedp.Navigate(page), chromedp.WaitVisible(chromedp.CSS(`#sign-in`)))
	if hidden, err := chromedp.Run(bctx, chromedp.Evaluate[bool](`document.querySelector("label.token").hidden`)); err != nil || !hidden {
		t.Errorf("with single sign-on the token field is shown (hidden=%v, %v)", hidden, err)
	}
	if status, _ := fetch("GET", "/api/v1/executions", "", nil); status != 401 {
		t.Errorf("signed out, the API answers %d, want 401", status)
	}
	do("sign in through the provider", chromedp.Click(chromedp.CSS(`#sign-in`)),
		chromedp.WaitVisible(chromedp.CSS(`#sign-out`)),
		chromedp.WaitVisible(chromedp.CSS(`.card.approval button.approve`)))
	if got := text("#signed-in"); got != "signed in as alice (admin)" {
		t.Errorf("after signing in the header says %q, want alice as admin (her group's role)", got)
	}
	if loc, _ := chromedp.Run(bctx, chromedp.Evaluate[string](`location.hash`)); loc != "#/executions/"+e.ID {
		t.Errorf("after signing in the page is %q, want back at the execution", loc)
	}
	cookie, err := chromedp.Run(bctx, chromedp.Evaluate[string](`document.cookie`))
	if err != nil || strings.Contains(cookie, "starbook_session") {
		t.Errorf("the page's script can read the session cookie (%q, %v): want HttpOnly", cookie, err)
	}

	// Without the CSRF token the API refuses, and nothing is decided.
	waits, err := ci.Waits(ctx) // the UI showed its card: the wait is there
	if err != nil || len(waits) != 1 || waits[0].Execution != e.ID {
		t.Fatalf("waits = %v, %v; want the run's one", waits, err)
	}
	position := waits[0].Position
	status, body := fetch("POST", "/api/v1/executions/"+e.ID+"/approvals/"+position,
		`{"decision":"approve"}`, map[string]string{"Content-Type": "application/json"})
	if status != 403 || !strings.Contains(body, "X-CSRF-Token") {
		t.Errorf("approve without the CSRF token = %d %s, want 403", status, body)
	}
	if got, _, err := ci.Execution(ctx, e.ID); err != nil || got.Status != "waiting" {
		t.Fatalf("after the refused approval the run is %v (%v), want still waiting", got, err)
	}

	do("approve as alice", chromedp.Click(chromedp.CSS(`.card.approval button.approve`)),
		chromedp.WaitVisible(chromedp.CSS(`#exec-head .badge.s-completed`)))
	end, history, err := ci.Execution(ctx, e.ID)
	if err != nil || end.Status != "completed" {
		t.Fatalf("execution = %+v, %v", end, err)
	}
	if last := history[len(history)-1]; !strings.Contains(string(last.Result), `"by":["alice"]`) {
		t.Errorf("approval event = %s, want by alice", last.Result)
	}

	// The audit log, read in the browser as alice (an admin), names her.
	status, body = fetch("GET", "/api/v1/audit?limit=100", "", nil)
	var audit api.AuditResponse
	if status != 200 || json.Unmarshal([]byte(body), &audit) != nil {
		t.Fatalf("audit = %d %s", status, body)
	}
	found := map[string]string{}
	for _, r := range audit.Audit {
		if r.Actor == "alice" {
			found[r.Action+" "+r.Outcome] = r.Role
		}
	}
	for _, want := range []string{"session.login ok", "approval.decide ok", "approval.decide denied"} {
		if role, ok := found[want]; !ok || role != "admin" {
			t.Errorf("audit log has no %q by alice (admin): %v", want, found)
		}
	}

	// The session secret is in etcd: after a restart the node still knows
	// the cookie (cookies do not depend on the port).
	d.stop(t)
	d = startDaemon(t, data, args...)
	do("reopen after a restart", chromedp.Navigate(d.URL+"/ui/#/executions"), chromedp.WaitVisible(chromedp.CSS(`#sign-out`)))
	if got := text("#signed-in"); got != "signed in as alice (admin)" {
		t.Errorf("after a restart the header says %q", got)
	}

	do("sign out", chromedp.Click(chromedp.CSS(`#sign-out`)), chromedp.WaitVisible(chromedp.CSS(`#sign-in`)))
	if status, _ := fetch("GET", "/api/v1/executions", "", nil); status != 401 {
		t.Errorf("signed out, the API answers %d, want 401", status)
	}
}

// jsString quotes s as a JavaScript string literal.
func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
