package ui_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/starbook/starbook"
	"github.com/starbook/starbook/api"
	"github.com/starbook/starbook/auth"
	sbruntime "github.com/starbook/starbook/runtime"
	"github.com/starbook/starbook/service"
)

// browser is one headless Chromium tab and the steps the tests take in it.
type browser struct {
	t   *testing.T
	ctx context.Context
}

// browse starts headless Chromium with a window of width x height.
func browse(ctx context.Context, t *testing.T, width, height int) *browser {
	t.Helper()
	chrome := chromium(t)
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chrome), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.Flag("lang", "en-US"),
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(width, height),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	bctx, cancelBrowser := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelBrowser(); cancelAlloc() })
	return &browser{t: t, ctx: bctx}
}

func (b *browser) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, steps...); err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
}

func (b *browser) text(sel string) string {
	b.t.Helper()
	s, err := chromedp.Run(b.ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		b.t.Fatalf("text of %s: %v", sel, err)
	}
	return s
}

func evalIn[T any](b *browser, js string) T {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[T](js))
	if err != nil {
		b.t.Fatalf("evaluate %s: %v", js, err)
	}
	return v
}

// click clicks what css selects in one step in the page: a polled page
// re-renders, so a node looked up first and clicked after may be gone.
func (b *browser) click(css string) {
	b.t.Helper()
	if !evalIn[bool](b, fmt.Sprintf(`(e => !!e && (e.click(), true))(document.querySelector(%q))`, css)) {
		b.t.Fatalf("nothing to click at %s", css)
	}
}

// waitFor waits until the JavaScript condition js holds.
func (b *browser) waitFor(what, js string) {
	b.t.Helper()
	b.do(what, chromedp.Poll[chromedp.Void](js))
}

// applyConsole applies testdata/console: deploy (an input schema with every
// kind of field, a loaded file, every kind of trigger, an SLO and a budget)
// and wait (a run that waits for a signal).
func applyConsole(ctx context.Context, t *testing.T, svc *service.Service) {
	t.Helper()
	files := map[string]string{}
	for _, name := range []string{"deploy.star", "steps.star", "deploy.schema.json", "wait.star"} {
		b, err := os.ReadFile(filepath.Join("testdata", "console", name))
		if err != nil {
			t.Fatal(err)
		}
		files[name] = string(b)
	}
	if _, err := svc.Apply(ctx, files); err != nil {
		t.Fatal(err)
	}
}

// TestUIRunFromTheForm: the Run button of a runbook opens the form its
// input schema maps to; a value only the server refuses comes back as a 400
// shown at its field, and nothing starts; a good value starts the run and
// the page moves to it; "Run again with this input" opens the form filled
// with that input.
func TestUIRunFromTheForm(t *testing.T) {
	svc, base := startNode(t)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	applyConsole(ctx, t, svc)
	b := browse(ctx, t, 1280, 1000)

	b.do("open runbooks", chromedp.Navigate(base+"/ui/#/runbooks"),
		chromedp.WaitVisible(chromedp.CSS(`#runbooks tr[data-runbook="deploy"] a.run`)))
	b.click(`#runbooks tr[data-runbook="deploy"] a.run`)
	field := func(ptr string) string { return `form.run-form [data-pointer="` + ptr + `"]` }
	b.do("open the form", chromedp.WaitVisible(chromedp.CSS(field("/namespace")+` input`)))
	if loc := evalIn[string](b, `location.hash`); loc != "#/runbooks/deploy/run" {
		t.Errorf("the Run button went to %q", loc)
	}
	// The controls are the schema's: defaults, bounds, kinds.
	controls := evalIn[map[string]string](b, `(() => {
		const q = s => document.querySelector("form.run-form " + s);
		const f = p => '[data-pointer="' + p + '"] ';
		return {
			ns: q(f("/namespace") + "input").type + " required=" + q(f("/namespace") + "input").required + " max=" + q(f("/namespace") + "input").maxLength,
			replicas: q(f("/replicas") + "input").type + " " + q(f("/replicas") + "input").value + " " + q(f("/replicas") + "input").min + ".." + q(f("/replicas") + "input").max + " step " + q(f("/replicas") + "input").step,
			tags: q(f("/tags")).tagName + " rows=" + document.querySelectorAll("form.run-form " + f("/tags") + ".rows .row").length,
			region: q(f("/target/region") + "select").tagName + " " + [...q(f("/target/region") + "select").options].map(o => o.textContent).join("|") + " " + q(f("/target/region") + "select").selectedOptions[0].textContent,
			notify: q(f("/target/notify") + "input").type,
			dry: q(f("/dry_run") + "input").type,
			help: q(f("/dry_run") + ".help").textContent,
		};
	})()`)
	want := map[string]string{
		"ns": "text required=true max=63", "replicas": "number 2 1..10 step 1", "tags": "FIELDSET rows=0",
		"region": "SELECT —|eu|us eu", "notify": "email", "dry": "checkbox", "help": "Only say what would change.",
	}
	for k, w := range want {
		if controls[k] != w {
			t.Errorf("control %s = %q, want %q", k, controls[k], w)
		}
	}

	// A value the browser cannot judge (the schema's "not"): the server's
	// 400 names /namespace and the form shows it there.
	b.click(field("/tags") + ` button.add`)
	b.do("fill a bad namespace", chromedp.WaitVisible(chromedp.CSS(field("/tags/0")+` input`)),
		chromedp.SendKeys(chromedp.CSS(field("/namespace")+` input`), "kube-system"),
		chromedp.SendKeys(chromedp.CSS(field("/tags/0")+` input`), "blue"))
	b.click(`form.run-form button[type=submit]`)
	b.do("see the refusal at the field", chromedp.WaitVisible(chromedp.CSS(field("/namespace")+`.invalid > .field-error`)))
	if msg := b.text(field("/namespace") + ` > .field-error`); !strings.Contains(msg, "/namespace") || !strings.Contains(msg, "deploy") {
		t.Errorf("the field says %q, want the server's refusal of /namespace", msg)
	}
	if top := b.text(`form.run-form .form-error`); top != "" {
		t.Errorf("the refusal also went to the top: %q", top)
	}
	if list, err := svc.Executions(ctx, starbook.Filter{Runbook: "deploy", Limit: 10}); err != nil || len(list) != 0 {
		t.Fatalf("a refused start stored %d executions (%v)", len(list), err)
	}

	// A good one starts the run, and the page follows it.
	evalIn[bool](b, fmt.Sprintf(`(document.querySelector(%q).value = "", true)`, field("/namespace")+` input`))
	b.do("fix the namespace", chromedp.SendKeys(chromedp.CSS(field("/namespace")+` input`), "shop"),
		chromedp.SendKeys(chromedp.CSS(field("/target/notify")+` input`), "oncall@example.com"))
	b.click(`form.run-form button[type=submit]`)
	b.do("land on the execution", chromedp.WaitVisible(chromedp.CSS(`#exec-head .badge.s-completed`)))
	list, err := svc.Executions(ctx, starbook.Filter{Runbook: "deploy", Limit: 10})
	if err != nil || len(list) != 1 {
		t.Fatalf("after the good start: %d executions (%v)", len(list), err)
	}
	if loc := evalIn[string](b, `location.hash`); loc != "#/executions/"+list[0].ID {
		t.Errorf("after the start the page is %q, want the execution %s", loc, list[0].ID)
	}
	var input map[string]any
	if err := json.Unmarshal(list[0].Input, &input); err != nil {
		t.Fatal(err)
	}
	if got, want := string(list[0].Input), `{"dry_run":false,"namespace":"shop","replicas":2,"tags":["blue"],"target":{"notify":"oncall@example.com","region":"eu"}}`; !sameJSON(got, want) {
		t.Errorf("input = %s, want %s", got, want)
	}
	if list[0].Trigger.Type != "manual" {
		t.Errorf("trigger = %+v, want manual", list[0].Trigger)
	}

	// Run again: the form comes back filled with that input.
	b.do("run again", chromedp.WaitVisible(chromedp.CSS(`#exec-actions a.run`)))
	b.click(`#exec-actions a.run`)
	b.do("the form, filled", chromedp.WaitVisible(chromedp.CSS(field("/tags/0")+` input`)))
	filled := evalIn[[]string](b, `["/namespace", "/tags/0", "/target/notify", "/replicas"].map(p =>
		document.querySelector('form.run-form [data-pointer="' + p + '"] input').value)`)
	if strings.Join(filled, " ") != "shop blue oncall@example.com 2" {
		t.Errorf("the rerun form holds %q", filled)
	}

	// A runbook without a schema gets a JSON editor: text that is not JSON
	// starts nothing, an object starts the run with it.
	b.do("open the JSON form", chromedp.Navigate(base+"/ui/#/runbooks/wait/run"),
		chromedp.WaitVisible(chromedp.CSS(`#input-json`)),
		chromedp.SendKeys(chromedp.CSS(`#input-json`), `{"ticket": `))
	b.click(`form.run-form button[type=submit]`)
	if valid := evalIn[bool](b, `document.querySelector("#input-json").validity.valid`); valid {
		t.Error("the JSON editor takes text that is not JSON")
	}
	b.do("finish the JSON", chromedp.SendKeys(chromedp.CSS(`#input-json`), `"INC-7"}`))
	if list, err := svc.Executions(ctx, starbook.Filter{Runbook: "wait", Limit: 10}); err != nil || len(list) != 0 {
		t.Fatalf("JSON that does not parse started %d executions (%v)", len(list), err)
	}
	b.click(`form.run-form button[type=submit]`)
	b.do("land on the waiting run", chromedp.WaitVisible(chromedp.CSS(`#exec-head .badge.s-waiting`)))
	if list, err := svc.Executions(ctx, starbook.Filter{Runbook: "wait", Limit: 10}); err != nil || len(list) != 1 || string(list[0].Input) != `{"ticket":"INC-7"}` {
		t.Errorf("the JSON form started %+v (%v)", list, err)
	}
}

func sameJSON(a, b string) bool {
	var x, y any
	if json.Unmarshal([]byte(a), &x) != nil || json.Unmarshal([]byte(b), &y) != nil {
		return false
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return string(xa) == string(ya)
}

// TestUIRunbookPage: a runbook's page shows its description, every file of
// its source, its input schema, its triggers in words and the next five
// fires of its schedule in the schedule's zone, its SLO and today's budget;
// the Schedules, SLOs and Audit pages render what the API says; on an
// execution, Cancel cancels a running one and Redrive redrives a failed one.
func TestUIRunbookPage(t *testing.T) {
	svc, base := startNode(t)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	applyConsole(ctx, t, svc)
	done, err := svc.Start(ctx, "deploy", []byte(`{"namespace": "shop"}`), sbruntime.Trigger{Type: "manual", Source: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if end, err := svc.AwaitEnd(ctx, done.ID); err != nil || end.Status != sbruntime.StatusCompleted {
		t.Fatalf("deploy: %+v, %v", end, err)
	}
	b := browse(ctx, t, 1280, 1000)

	b.do("open the runbook", chromedp.Navigate(base+"/ui/#/runbooks/deploy"),
		chromedp.WaitVisible(chromedp.CSS(`#description`)), chromedp.WaitVisible(chromedp.CSS(`#runbook-source`)),
		chromedp.WaitVisible(chromedp.CSS(`#slo .slo-card`)), chromedp.WaitVisible(chromedp.CSS(`#budget .budget-use`)),
		chromedp.WaitVisible(chromedp.CSS(`#runs a[href="#/executions/`+done.ID+`"]`)))
	// The runbook runs: its pause part offers Pause, and nothing failed.
	b.do("the pause part", chromedp.WaitReady(chromedp.CSS(`#pause[data-state]`)))
	pause := evalIn[[]string](b, `[document.querySelector("#pause").dataset.state,
		String(!!document.querySelector("#pause button.pause")), String(document.querySelectorAll("#error").length)]`)
	if strings.Join(pause, " ") != "running true 0" {
		t.Errorf("pause part: state, Pause offered, errors = %q, want running true 0", pause)
	}
	if got := b.text("#description"); !strings.HasPrefix(got, "Roll a service out to a namespace") || !strings.Contains(got, "starbook run deploy") {
		t.Errorf("description = %q", got)
	}
	triggers := b.text("#triggers")
	for _, want := range []string{"alert: alertname=KubePodCrashLooping, at most 5 at once", "cron: 0 3 * * * (Europe/Paris)",
		"webhook: deploy-finished (HMAC signature), at most 5 at once"} {
		if !strings.Contains(triggers, want) {
			t.Errorf("triggers lack %q:\n%s", want, triggers)
		}
	}
	fires := evalIn[[]string](b, `[...document.querySelectorAll("#next-fires li")].map(li => li.textContent)`)
	if len(fires) != 5 {
		t.Errorf("%d next fires, want 5: %q", len(fires), fires)
	}
	for _, f := range fires {
		if !strings.Contains(f, "03:00") || !strings.Contains(f, "GMT+") && !strings.Contains(f, "CET") && !strings.Contains(f, "CEST") {
			t.Errorf("next fire %q is not 03:00 Paris time", f)
		}
	}
	if got := b.text("#input-schema"); !strings.Contains(got, `"kube-system"`) {
		t.Errorf("input schema = %q", got)
	}
	if got := b.text("#runbook-source"); !strings.Contains(got, "def main(event)") {
		t.Errorf("the main file is not shown first: %q", got)
	}
	b.click(`#source-files button[data-file="steps.star"]`)
	if got := b.text("#runbook-source"); !strings.Contains(got, "def scale(ns, n)") {
		t.Errorf("the steps.star tab shows %q", got)
	}
	if got := b.text("#slo"); !strings.Contains(got, "90% success over 7d") || !strings.Contains(got, "100% of 1 runs") {
		t.Errorf("SLO = %q", got)
	}
	if got := b.text("#budget"); !strings.Contains(got, "runs per day") || !strings.Contains(got, "/ 50") {
		t.Errorf("budget = %q", got)
	}

	b.do("open schedules", chromedp.Navigate(base+"/ui/#/schedules"),
		chromedp.WaitVisible(chromedp.CSS(`#schedules tr[data-runbook="deploy"] td.next`)))
	if got := b.text(`#schedules tr[data-runbook="deploy"]`); !strings.Contains(got, "0 3 * * *") || !strings.Contains(got, "Europe/Paris") || !strings.Contains(got, "03:00") {
		t.Errorf("schedule row = %q", got)
	}
	b.do("open SLOs", chromedp.Navigate(base+"/ui/#/slos"),
		chromedp.WaitVisible(chromedp.CSS(`#slos .slo-card[data-runbook="deploy"]`)))
	if got := b.text("#slos"); !strings.Contains(got, "Error budget left") {
		t.Errorf("SLOs page = %q", got)
	}

	// Cancel a running execution (after a confirm), redrive a failed one.
	waiting, err := svc.Start(ctx, "wait", nil, sbruntime.Trigger{Type: "manual", Source: "test"})
	if err != nil {
		t.Fatal(err)
	}
	b.do("open the waiting run", chromedp.Navigate(base+"/ui/#/executions/"+waiting.ID),
		chromedp.WaitVisible(chromedp.CSS(`#exec-actions button.cancel`)))
	if evalIn[bool](b, `!!document.querySelector("#exec-actions button.redrive")`) {
		t.Error("a running execution offers Redrive")
	}
	asked := evalIn[bool](b, `window.confirm = q => (window.asked = q, false), true`)
	b.click(`#exec-actions button.cancel`)
	if q := evalIn[string](b, `window.asked || ""`); !asked || !strings.Contains(q, waiting.ID) {
		t.Errorf("Cancel asked %q", q)
	}
	if e, _, _ := svc.Execution(ctx, waiting.ID); e.Status.Terminal() {
		t.Fatalf("declining the confirm cancelled it: %s", e.Status)
	}
	evalIn[bool](b, `window.confirm = () => true, true`)
	b.click(`#exec-actions button.cancel`)
	b.do("see it cancelled", chromedp.WaitVisible(chromedp.CSS(`#exec-head .badge.s-cancelled`)))
	if e, _, _ := svc.Execution(ctx, waiting.ID); e.Status != sbruntime.StatusCancelled {
		t.Errorf("after Cancel the execution is %s", e.Status)
	}
	failed := startFailed(ctx, t, svc)
	b.do("open the failed run", chromedp.Navigate(base+"/ui/#/executions/"+failed),
		chromedp.WaitVisible(chromedp.CSS(`#exec-actions button.redrive`)))
	evalIn[bool](b, `window.confirm = () => true, true`)
	b.click(`#exec-actions button.redrive`)
	b.do("see it redriven", chromedp.WaitVisible(chromedp.CSS(`#exec-actions .action-status[data-done="ok"]`)))
	if got := b.text(`#exec-actions .action-status`); got != "redriven: attempt 2" {
		t.Errorf("Redrive says %q", got)
	}
	if e, _, err := svc.Execution(ctx, failed); err != nil || len(e.Redrives) != 1 {
		t.Errorf("after Redrive: %+v, %v", e, err)
	}
	// Without tokens everyone may read the audit log: the entry shows, and
	// the log names what the buttons did.
	b.do("open audit", chromedp.WaitVisible(chromedp.CSS(`#nav-audit`)), chromedp.Navigate(base+"/ui/#/audit"),
		chromedp.WaitVisible(chromedp.CSS(`#audit tbody tr`)))
	log := b.text("#audit")
	for _, want := range []string{"execution.cancel", "execution.redrive", waiting.ID, failed} {
		if !strings.Contains(log, want) {
			t.Errorf("audit page lacks %q:\n%s", want, log)
		}
	}
}

// TestUIAuditEntryForAdminsOnly: with tokens, the Audit entry shows for a
// role that may read the audit log (admin) and not for one that may not
// (operator), as /api/v1/whoami says.
func TestUIAuditEntryForAdminsOnly(t *testing.T) {
	const operator, admin = "ui-operator-token-0123456789", "ui-admin-token-0123456789"
	a, err := auth.New([]auth.Token{
		{Name: "olga", Role: auth.Operator, SHA256: auth.Hash(operator)},
		{Name: "dana", Role: auth.Admin, SHA256: auth.Hash(admin)},
	})
	if err != nil {
		t.Fatal(err)
	}
	_, base := startNode(t, api.WithAuth(a))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	b := browse(ctx, t, 1280, 900)
	hidden := `document.querySelector("#nav-audit").hidden`
	b.do("open as nobody", chromedp.Navigate(base+"/ui/#/executions"), chromedp.WaitVisible(chromedp.CSS(`#token`)))
	b.do("sign in as an operator", chromedp.SendKeys(chromedp.CSS(`#token`), operator+"\n"))
	b.waitFor("signed in as olga", `document.querySelector("#signed-in").textContent.includes("olga")`)
	b.waitFor("the entry follows olga", `document.querySelector("#nav-audit").dataset.whoami === "olga"`)
	if !evalIn[bool](b, hidden) {
		t.Error("an operator sees the Audit entry")
	}
	b.do("sign in as an admin", chromedp.SendKeys(chromedp.CSS(`#token`), admin+"\n"))
	b.waitFor("the Audit entry shows", `!`+hidden)
	b.click(`#nav-audit`)
	b.do("the audit log", chromedp.WaitVisible(chromedp.CSS(`#audit`)))
}

// TestUIRolloutPromote: a runbook's page shows its active canary rollout;
// Promote (after a confirm) makes the canary current and the card goes.
func TestUIRolloutPromote(t *testing.T) {
	svc, base := startNode(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := svc.Apply(ctx, map[string]string{"greet.star": "def main(event):\n    return \"hello\"\n"}); err != nil {
		t.Fatal(err)
	}
	vs, err := svc.ApplyCanary(ctx, map[string]string{"greet.star": "def main(event):\n    return \"hi\"\n"},
		starbook.CanarySpec{Percent: 10, Runs: 20, MaxFailureRate: 0.05}, "carol")
	if err != nil || len(vs) != 1 || vs[0].Rollout == nil {
		t.Fatalf("canary: %+v, %v", vs, err)
	}
	b := browse(ctx, t, 1280, 900)
	b.do("open the runbook", chromedp.Navigate(base+"/ui/#/runbooks/greet"),
		chromedp.WaitVisible(chromedp.CSS(`#rollout .card.rollout button.promote`)))
	if got := b.text("#rollout"); !strings.Contains(got, vs[0].Version) || !strings.Contains(got, "10% of new runs") || !strings.Contains(got, "carol") {
		t.Errorf("rollout card = %q", got)
	}
	evalIn[bool](b, `window.confirm = () => true, true`)
	b.click(`#rollout button.promote`)
	b.waitFor("the card goes", `document.querySelector("#rollout").childElementCount === 0`)
	r, err := svc.Rollout(ctx, "greet")
	if err != nil || r.State != starbook.RolloutPromoted {
		t.Fatalf("after Promote: %+v, %v", r, err)
	}
	if info, err := svc.Runbook(ctx, "greet"); err != nil || info.Current != vs[0].Version {
		t.Errorf("current = %+v (%v), want the canary %s", info, err, vs[0].Version)
	}
}
