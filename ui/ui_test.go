package ui_test

import (
	"bytes"
	"context"
	"image"
	"image/png"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/starbook/starbook/api"
	"github.com/starbook/starbook/builtins"
	"github.com/starbook/starbook/cluster"
	"github.com/starbook/starbook/node"
	sbruntime "github.com/starbook/starbook/runtime"
	"github.com/starbook/starbook/service"
	"github.com/starbook/starbook/ui"
)

// chromium finds a headless-capable Chromium, or skips the test.
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
	t.Skip("UI test skipped: " + msg)
	return ""
}

// startNode starts a real node (embedded etcd, claims, leader) serving the
// API and the UI on a loopback port.
func startNode(t *testing.T, opts ...api.Option) (*service.Service, string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	emb, err := cluster.StartEmbedded(ctx, cluster.EmbeddedConfig{Dir: t.TempDir(), Fast: true, NoFsync: true})
	if err != nil {
		t.Fatal(err)
	}
	bi := builtins.New(builtins.Options{})
	store := cluster.NewStore(emb.Client, "/ui/")
	worker, err := node.New(ctx, store, node.Config{ID: "ui-node", Builtins: bi,
		SessionTTL: 2 * time.Second, StopGrace: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	svc := service.New(store, bi)
	svc.Node = worker
	done := make(chan error, 1)
	go func() { done <- worker.Run(ctx) }()
	mux := http.NewServeMux()
	ui.Mount(mux)
	mux.Handle("/", api.NewHandler(svc, nil, opts...))
	srv := httptest.NewServer(mux)
	t.Cleanup(func() {
		srv.Close()
		cancel()
		<-done
		store.Close()
		emb.Close()
	})
	return svc, srv.URL
}

// TestUIApprovesAPendingStep drives the UI in headless Chromium against a
// real node: the execution page shows the steps of a run that waits for an
// approval, the approve button decides it, the run completes, and the
// screenshot of the page is not blank.
func TestUIApprovesAPendingStep(t *testing.T) {
	chrome := chromium(t)
	svc, base := startNode(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if _, err := svc.Apply(ctx, map[string]string{"restart.star": `
def main(event):
    log("checking " + event.pod)
    call(lambda: "healthy", name = "check")
    fan_out(lambda h: call(lambda: h, name = "probe"), ["a", "b"])
    ok = wait_for_approval("Restart " + event.pod + "?", timeout = "1h")
    log("decision: %s" % bool(ok))
    return "restarted" if ok else "left alone"
`}); err != nil {
		t.Fatal(err)
	}
	e, err := svc.Start(ctx, "restart", []byte(`{"pod": "web-1"}`), sbruntime.Trigger{Type: "manual", Source: "test"})
	if err != nil {
		t.Fatal(err)
	}
	failed := startFailed(ctx, t, svc)

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

	page := base + "/ui/#/executions/" + e.ID
	css := func(sel string) chromedp.CSS { return chromedp.CSS(sel) }
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(bctx, chromedp.Text(css(sel)))
		if err != nil {
			t.Fatalf("text of %s: %v", sel, err)
		}
		return s
	}
	do := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(bctx, steps...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	// The list shows the execution.
	do("open the list", chromedp.Navigate(base+"/"), chromedp.WaitVisible(css(`a[href="#/executions/`+e.ID+`"]`)))
	list := text("#executions")
	// Its page shows the steps, the pending approval and the current line.
	do("open the execution", chromedp.Navigate(page),
		chromedp.WaitVisible(css(`.card.approval button.approve`)),
		chromedp.WaitVisible(css(`.trow.step[data-position="2/1/1"]`)),
		chromedp.WaitVisible(css(`#current-line`)))
	steps := text("#timeline")
	source := text("#current-line")
	// The other pages render what the API says.
	do("open approvals", chromedp.Navigate(base+"/ui/#/approvals"),
		chromedp.WaitVisible(css(`#approvals .card.approval[data-execution="`+e.ID+`"]`)))
	do("open runbooks", chromedp.Navigate(base+"/ui/#/runbooks"),
		chromedp.WaitVisible(css(`#runbooks a[href="#/runbooks/restart"]`)))
	do("open a runbook", chromedp.Navigate(base+"/ui/#/runbooks/restart"),
		chromedp.WaitVisible(css(`#main table.list td.mono`)))
	do("open cluster", chromedp.Navigate(base+"/ui/#/cluster"), chromedp.WaitVisible(css(`#cluster td.mono`)))
	if nodes := text("#cluster"); !strings.Contains(nodes, "ui-node") {
		t.Errorf("cluster page lacks the node:\n%s", nodes)
	}
	checkDeadLetters(t, svc, base, failed, do, text)
	do("back to the execution", chromedp.Navigate(page), chromedp.WaitVisible(css(`.card.approval button.approve`)))
	// Approve it as alice; the run completes.
	do("approve", chromedp.SendKeys(css(`#who`), "alice"),
		chromedp.Click(css(`.card.approval button.approve`)),
		chromedp.WaitVisible(css(`#exec-head .badge.s-completed`)),
		chromedp.WaitVisible(css(`#result`)),
		chromedp.WaitVisible(css(`#logs .log-info`)))
	shot, err := chromedp.Run(bctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	for _, want := range []string{"call check", "fan_out", "call probe", "item 1", "approval", "waiting"} {
		if !strings.Contains(steps, want) {
			t.Errorf("timeline lacks %q:\n%s", want, steps)
		}
	}
	if !strings.Contains(list, e.ID) || !strings.Contains(list, "restart") {
		t.Errorf("list lacks the execution:\n%s", list)
	}
	if !strings.Contains(source, "wait_for_approval") {
		t.Errorf("current line = %q, want the wait_for_approval call", source)
	}
	end, history, err := svc.Execution(ctx, e.ID)
	if err != nil || end.Status != sbruntime.StatusCompleted || string(end.Result) != `"restarted"` {
		t.Fatalf("execution = %+v, %v", end, err)
	}
	if last := history[len(history)-1]; last.Kind != sbruntime.KindApproval || !strings.Contains(string(last.Result), `"alice"`) {
		t.Errorf("approval event = %+v", last)
	}
	if path := os.Getenv("STARBOOK_UI_SCREENSHOT"); path != "" {
		_ = os.WriteFile(path, shot, 0o644)
	}
	checkNotBlank(t, shot)
}

// checkNotBlank decodes a PNG and wants its pixels to vary: a blank or
// single-colour page has (almost) no variance and few colours.
func checkNotBlank(t *testing.T, shot []byte) {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(shot))
	if err != nil {
		t.Fatalf("screenshot is not a PNG: %v", err)
	}
	b := img.Bounds()
	if b.Dx() < 200 || b.Dy() < 200 {
		t.Fatalf("screenshot is %dx%d", b.Dx(), b.Dy())
	}
	var n, sum, sumSq float64
	colours := map[uint32]bool{}
	for y := b.Min.Y; y < b.Max.Y; y += 2 {
		for x := b.Min.X; x < b.Max.X; x += 2 {
			l := luma(img, x, y)
			n, sum, sumSq = n+1, sum+l, sumSq+l*l
			r, g, bl, _ := img.At(x, y).RGBA()
			colours[(r>>11)<<10|(g>>11)<<5|bl>>11] = true
		}
	}
	mean := sum / n
	variance := sumSq/n - mean*mean
	if variance < 100 || len(colours) < 8 {
		t.Errorf("screenshot looks blank: luma variance %.1f, %d colours", variance, len(colours))
	}
}

func luma(img image.Image, x, y int) float64 {
	r, g, b, _ := img.At(x, y).RGBA()
	return (0.299*float64(r) + 0.587*float64(g) + 0.114*float64(b)) / 257
}
