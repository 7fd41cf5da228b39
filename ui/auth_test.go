package ui_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/starbook/starbook/api"
	"github.com/starbook/starbook/auth"
	sbruntime "github.com/starbook/starbook/runtime"
)

// TestUIWithToken: on a node that requires tokens the UI asks for one,
// keeps it, shows whose it is, lists executions, follows the log and
// approves as the token's holder.
func TestUIWithToken(t *testing.T) {
	chrome := chromium(t)
	const tok = "ui-approver-token-0123456789"
	a, err := auth.New([]auth.Token{{Name: "dana", Role: auth.Admin, SHA256: auth.Hash(tok)}})
	if err != nil {
		t.Fatal(err)
	}
	svc, base := startNode(t, api.WithAuth(a))
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if _, err := svc.Apply(ctx, map[string]string{"gate.star": `
def main(event):
    log("before the gate")
    ok = wait_for_approval("Open the gate?", timeout = "1h")
    log("after the gate")
    return "open" if ok else "closed"
`}); err != nil {
		t.Fatal(err)
	}
	e, err := svc.Start(ctx, "gate", nil, sbruntime.Trigger{Type: "manual", Source: "someone"})
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
	do("open without a token", chromedp.Navigate(base+"/ui/#/executions"), chromedp.WaitVisible(chromedp.CSS(`#token`)))
	if got := text("#signed-in"); !strings.Contains(got, "sign in with a token") {
		t.Errorf("without a token the header says %q", got)
	}
	do("sign in", chromedp.SendKeys(chromedp.CSS(`#token`), tok+"\n"),
		chromedp.WaitVisible(chromedp.CSS(`a[href="#/executions/`+e.ID+`"]`)))
	if got := text("#signed-in"); got != "signed in as dana (admin)" {
		t.Errorf("after sign-in the header says %q", got)
	}
	do("open the execution", chromedp.Navigate(base+"/ui/#/executions/"+e.ID),
		chromedp.WaitVisible(chromedp.CSS(`.card.approval button.approve`)),
		chromedp.WaitVisible(chromedp.CSS(`#logs .log-info`)))
	do("approve", chromedp.Click(chromedp.CSS(`.card.approval button.approve`)),
		chromedp.WaitVisible(chromedp.CSS(`#exec-head .badge.s-completed`)))
	end, history, err := svc.Execution(ctx, e.ID)
	if err != nil || end.Status != sbruntime.StatusCompleted {
		t.Fatalf("execution = %+v, %v", end, err)
	}
	if last := history[len(history)-1]; !strings.Contains(string(last.Result), `"by":["dana"]`) {
		t.Errorf("approval event = %s, want by dana", last.Result)
	}
}
