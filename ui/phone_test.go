package ui_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/starbook/starbook"
	"github.com/starbook/starbook/api"
	"github.com/starbook/starbook/builtins"
	"github.com/starbook/starbook/cluster"
	sbruntime "github.com/starbook/starbook/runtime"
	"github.com/starbook/starbook/service"
	"github.com/starbook/starbook/triggers"
	"github.com/starbook/starbook/ui"
)

// TestUIOnAPhoneOver1000Executions opens every page in a 375-pixel-wide
// window over 1,010 executions of one runbook in a real etcd: no page is
// wider than the window (tables scroll in place), and every list of
// executions the pages fetch is one page of the API, never all of them.
func TestUIOnAPhoneOver1000Executions(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 180*time.Second)
	defer cancel()
	emb, err := cluster.StartEmbedded(ctx, cluster.EmbeddedConfig{Dir: t.TempDir(), Fast: true, NoFsync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer emb.Close()
	store := cluster.NewStore(emb.Client, "/uiphone/")
	defer store.Close()
	// No node: the executions stay pending, and nothing runs them.
	svc := service.New(store, builtins.New(builtins.Options{}))
	applyConsole(ctx, t, svc)
	rbs, err := svc.Runbooks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	version := ""
	for _, rb := range rbs {
		if rb.Name == "deploy" {
			version = rb.Version
		}
	}
	const n = 1010
	var wg sync.WaitGroup
	errs := make(chan error, n)
	sem := make(chan struct{}, 32)
	var last string
	for range n {
		id := svc.NewID()
		last = id
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			errs <- store.CreateExecution(ctx, &sbruntime.Execution{ID: id, Runbook: "deploy", Version: version,
				Status: sbruntime.StatusPending, Input: []byte(`{"namespace":"shop"}`), Trigger: sbruntime.Trigger{Type: "api"}})
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	// And 30 alerts that matched no runbook: two pages of dead letters.
	var unstarted []triggers.Unstarted
	for i := range 30 {
		unstarted = append(unstarted, triggers.Unstarted{Source: "alertmanager", Reason: starbook.ReasonNoRunbook,
			Detail: fmt.Sprintf("alert %d", i), DedupKey: fmt.Sprintf("fp%d/1", i), Payload: []byte(`{"alertname":"Nobody"}`)})
	}
	if err := cluster.NewTriggers(store, nil, nil).DeadLetter(ctx, unstarted); err != nil {
		t.Fatal(err)
	}
	// And 130 audit records: the Audit page's newest 100, then Older.
	for i := range 130 {
		if err := svc.RecordAudit(ctx, &starbook.AuditRecord{Actor: fmt.Sprintf("auditor%03d", i), Action: "execution.start", Outcome: starbook.AuditOK}); err != nil {
			t.Fatal(err)
		}
	}
	mux := http.NewServeMux()
	ui.Mount(mux)
	mux.Handle("/", api.NewHandler(svc, nil))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	b := browse(ctx, t, 375, 800)
	b.do("a phone's viewport", chromedp.EmulateViewport(375, 800, chromedp.EmulateMobile))
	for _, page := range []struct{ hash, ready string }{
		{"#/executions", `#executions tbody a.mono`},
		{"#/executions/" + last, `#exec-actions a.run`},
		{"#/runbooks", `#runbooks tr[data-runbook="deploy"] a.run`},
		{"#/runbooks/deploy", `#runs a.mono`},
		{"#/runbooks/deploy/run", `form.run-form [data-pointer="/namespace"] input`},
		{"#/schedules", `#schedules td.next`},
		{"#/slos", `#slos .slo-card`},
		{"#/approvals", `#approvals p`},
		{"#/dead-letters", `#dead-letters tbody tr`},
		{"#/audit", `#audit p`},
	} {
		b.do("open "+page.hash, chromedp.Navigate(srv.URL+"/ui/"+page.hash), chromedp.WaitVisible(chromedp.CSS(page.ready)))
		if page.hash == "#/runbooks/deploy" {
			b.do("the runbook page's source", chromedp.WaitVisible(chromedp.CSS(`#runbook-source`)))
		}
		// A mobile viewport zooms out to fit a page wider than the screen,
		// so the window's own width is checked too.
		w := evalIn[[]int](b, `[document.documentElement.scrollWidth, document.body.scrollWidth, window.innerWidth]`)
		if w[0] > 375 || w[1] > 375 || w[2] != 375 {
			t.Errorf("%s is %d (body %d) pixels wide, the window %d: want everything within 375", page.hash, w[0], w[1], w[2])
		}
	}
	// Dead letters page by the API's cursor; an event offers Replay only
	// where the node has the replay route.
	b.do("dead letters", chromedp.Navigate(srv.URL+"/ui/#/dead-letters"), chromedp.WaitVisible(chromedp.CSS(`#dead-letters tbody tr`)))
	b.waitFor("a first page", `document.querySelectorAll("#dead-letters tbody tr").length === 25`)
	b.click(`.pager button:last-of-type`)
	b.waitFor("the second page", `document.querySelectorAll("#dead-letters tbody tr").length === 5 && document.querySelector(".pager .muted").textContent.trim() === "page 2"`)
	if evalIn[bool](b, `!document.querySelector(".pager button:last-of-type").disabled`) {
		t.Error("the last page of dead letters offers an older page")
	}
	replay, err := chromedp.Run(b.ctx, chromedp.Evaluate[[]bool](`routeExists("POST", "/api/v1/dead-letters/-/replay").then(ok =>
		[ok, document.querySelectorAll("#dead-letters button.replay").length === 5])`, chromedp.EvalAwaitPromise))
	if err != nil || replay[0] != replay[1] {
		t.Errorf("replay route %v, yet Replay on every event: %v (%v)", replay[0], replay[1], err)
	}
	// The audit log pages back: the newest 100, then the 30 before them,
	// the oldest first record of the log at the bottom.
	b.do("the audit log", chromedp.Navigate(srv.URL+"/ui/#/audit"), chromedp.WaitVisible(chromedp.CSS(`#audit tbody tr`)))
	b.waitFor("the newest 100", `document.querySelectorAll("#audit tbody tr").length === 100 && !!document.getElementById("audit-older")`)
	if top := evalIn[string](b, `document.querySelector("#audit tbody tr td:nth-child(2)").textContent`); top != "auditor129" {
		t.Errorf("the audit page starts with %q, want the newest, auditor129", top)
	}
	b.click(`#audit-older`)
	b.waitFor("the 30 older", `document.querySelectorAll("#audit tbody tr").length === 30 && !!document.getElementById("audit-newest") && !document.getElementById("audit-older")`)
	if last := evalIn[string](b, `[...document.querySelectorAll("#audit tbody tr td:nth-child(2)")].pop().textContent`); last != "auditor000" {
		t.Errorf("the older page ends with %q, want the oldest, auditor000", last)
	}
	b.click(`#audit-newest`)
	b.waitFor("the newest again", `document.querySelectorAll("#audit tbody tr").length === 100`)

	// The pages listed 25 and 20 of the 1,010, and asked the API for no more.
	b.do("back to the list", chromedp.Navigate(srv.URL+"/ui/#/executions"), chromedp.WaitVisible(chromedp.CSS(`#executions tbody a.mono`)))
	if rows := evalIn[int](b, `document.querySelectorAll("#executions tbody tr").length`); rows != 25 {
		t.Errorf("the list shows %d executions, want a page of 25", rows)
	}
	fetched := evalIn[[]string](b, `performance.getEntriesByType("resource").map(e => e.name).filter(u => u.includes("/api/v1/executions?"))`)
	if len(fetched) == 0 {
		t.Fatal("no executions fetched?")
	}
	for _, u := range fetched {
		parsed, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		limit, err := strconv.Atoi(parsed.Query().Get("limit"))
		if err != nil || limit < 1 || limit > 100 {
			t.Errorf("a page fetched %s: want ?limit= of at most 100", u)
		}
	}
}
