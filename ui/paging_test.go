package ui_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/starbook/starbook/api"
	"github.com/starbook/starbook/builtins"
	"github.com/starbook/starbook/cluster"
	sbruntime "github.com/starbook/starbook/runtime"
	"github.com/starbook/starbook/service"
	"github.com/starbook/starbook/ui"
)

// TestUIPagesPastTheNewest1000 drives the Executions page in headless
// Chromium over 1,010 executions in a real etcd: "Older" follows the API's
// cursor page by page to the oldest ten, each page the next 25 newest
// first, and "Newer" goes back a page.
func TestUIPagesPastTheNewest1000(t *testing.T) {
	chrome := chromium(t)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	emb, err := cluster.StartEmbedded(ctx, cluster.EmbeddedConfig{Dir: t.TempDir(), Fast: true, NoFsync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer emb.Close()
	store := cluster.NewStore(emb.Client, "/uipages/")
	defer store.Close()
	// No node: the executions stay pending, and nothing runs them.
	svc := service.New(store, builtins.New(builtins.Options{}))
	mux := http.NewServeMux()
	ui.Mount(mux)
	mux.Handle("/", api.NewHandler(svc, nil))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	const n, page = 1010, 25
	ids := make([]string, n)
	for i := range ids {
		ids[i] = svc.NewID()
	}
	var wg sync.WaitGroup
	errs := make(chan error, n)
	sem := make(chan struct{}, 32)
	for _, id := range ids {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			errs <- store.CreateExecution(ctx, &sbruntime.Execution{ID: id, Runbook: "r", Version: "v1",
				Status: sbruntime.StatusPending, Trigger: sbruntime.Trigger{Type: "api"}})
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	slices.Reverse(ids) // newest first, as listed

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
	eval := func(js string) []string {
		t.Helper()
		v, err := chromedp.Run(bctx, chromedp.Evaluate[[]string](js))
		if err != nil {
			t.Fatalf("evaluate %s: %v", js, err)
		}
		return v
	}
	// shows waits until the list starts with first, then checks the page:
	// its rows, its number, and whether it offers older ones.
	shows := func(n int, want []string, older bool) {
		t.Helper()
		do(fmt.Sprintf("show page %d", n), chromedp.Poll[chromedp.Void](fmt.Sprintf(
			`(document.querySelector("#executions tbody a.mono") || {}).textContent === %q`, want[0])))
		got := eval(`[...document.querySelectorAll("#executions tbody a.mono")].map(a => a.textContent)`)
		pager := eval(`[document.querySelector(".pager .muted").textContent.trim(),
			String(!document.querySelector(".pager button:last-of-type").disabled)]`)
		if !slices.Equal(got, want) {
			t.Fatalf("page %d lists %d executions %v, want %d %v", n, len(got), got, len(want), want)
		}
		if w := []string{fmt.Sprintf("page %d", n), fmt.Sprint(older)}; !slices.Equal(pager, w) {
			t.Fatalf("page %d: pager says %q, offers older %s; want %q", n, pager[0], pager[1], w)
		}
	}
	// click clicks the button css selects in one step in the page: the list
	// polls and re-renders its pager, so a node looked up first and clicked
	// after may be gone ("Could not find node with given id").
	click := func(what, css string) {
		t.Helper()
		ok, err := chromedp.Run(bctx, chromedp.Evaluate[bool](fmt.Sprintf(
			`(b => !!b && (b.click(), true))(document.querySelector(%q))`, css)))
		if err != nil || !ok {
			t.Fatalf("%s: no %s to click (%v)", what, css, err)
		}
	}
	do("open the list", chromedp.Navigate(srv.URL+"/ui/#/executions"))
	shows(1, ids[:page], true)
	last := (n + page - 1) / page
	for p := 2; p <= last; p++ {
		click("older", ".pager button:last-of-type")
		shows(p, ids[(p-1)*page:min(p*page, n)], p < last)
	}
	click("newer", ".pager button:first-of-type")
	shows(last-1, ids[(last-2)*page:(last-1)*page], true)
}
