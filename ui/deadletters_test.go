package ui_test

import (
	"context"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	sbruntime "github.com/starbook/starbook/runtime"
	"github.com/starbook/starbook/service"
)

// startFailed runs an execution that fails and returns its id once it has.
func startFailed(ctx context.Context, t *testing.T, svc *service.Service) string {
	t.Helper()
	if _, err := svc.Apply(ctx, map[string]string{"broken.star": "def main(event):\n    fail(\"disk full\")\n"}); err != nil {
		t.Fatal(err)
	}
	e, err := svc.Start(ctx, "broken", nil, sbruntime.Trigger{Type: "manual", Source: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if end, err := svc.AwaitEnd(ctx, e.ID); err != nil || end.Status != sbruntime.StatusFailed {
		t.Fatalf("broken run: %+v, %v", end, err)
	}
	return e.ID
}

// checkDeadLetters: the Dead letters page lists the failed execution with
// its reason and error; its Redrive button runs it again as attempt 2.
func checkDeadLetters(t *testing.T, svc *service.Service, base, id string,
	do func(string, ...chromedp.Action[chromedp.Void]), text func(string) string) {
	t.Helper()
	row := `#dead-letters tr[data-id="` + id + `"]`
	do("open dead letters", chromedp.Navigate(base+"/ui/#/dead-letters"),
		chromedp.WaitVisible(chromedp.CSS(row+`[data-reason="failed"] button.redrive`)))
	if got := text(row); !strings.Contains(got, "broken") || !strings.Contains(got, "disk full") {
		t.Errorf("dead letter row = %q, want the runbook and its error", got)
	}
	do("redrive it", chromedp.Click(chromedp.CSS(row+` button.redrive`)),
		chromedp.WaitVisible(chromedp.CSS(row+` .dl-status[data-done]`)))
	if got := text(row + ` .dl-status`); !strings.Contains(got, "redriven: attempt 2") {
		t.Errorf("redrive button says %q", got)
	}
	ctx := context.Background()
	end, err := svc.AwaitEnd(ctx, id)
	if err != nil || len(end.Redrives) != 1 {
		t.Errorf("after the UI's redrive: %+v, %v", end, err)
	}
}
