package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/starbook/starbook"
	"github.com/starbook/starbook/api"
	"github.com/starbook/starbook/builtins"
	"github.com/starbook/starbook/cluster"
	"github.com/starbook/starbook/service"
	"github.com/starbook/starbook/stdlib"
)

// startRunbookPage applies testdata/runbookpage (a runbook with an input
// schema, a loaded file and every kind of trigger) on a real etcd and
// returns the service and its API.
func startRunbookPage(t *testing.T) (*service.Service, *cluster.Store, http.Handler) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	emb, err := cluster.StartEmbedded(ctx, cluster.EmbeddedConfig{Dir: t.TempDir(), Fast: true, NoFsync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(emb.Close)
	store := cluster.NewStore(emb.Client, "/runbookpage/")
	t.Cleanup(store.Close)
	svc := service.New(store, builtins.New(builtins.Options{}))
	files := map[string]string{}
	for _, name := range []string{"deploy.star", "steps.star", "deploy.schema.json"} {
		b, err := os.ReadFile(filepath.Join("testdata", "runbookpage", name))
		if err != nil {
			t.Fatal(err)
		}
		files[name] = string(b)
	}
	if _, err := svc.Apply(ctx, files); err != nil {
		t.Fatal(err)
	}
	return svc, store, api.NewHandler(svc, nil)
}

// TestRunbookPageRoute: GET /api/v1/runbooks/{name} adds to the stored
// versions what the runbook page shows: the description, every file, the
// input schema, the triggers in words and the next fires of its schedule in
// the schedule's zone; ?fires= asks for more or fewer.
func TestRunbookPageRoute(t *testing.T) {
	_, _, h := startRunbookPage(t)
	w := do(t, h, "GET", "/api/v1/runbooks/deploy", "", "")
	if w.Code != 200 {
		t.Fatalf("GET runbook: %d %s", w.Code, w.Body)
	}
	var got api.RunbookResponse
	if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if got.RunbookInfo == nil || got.Name != "deploy" || len(got.Versions) != 1 || got.Current != got.Versions[0].Version {
		t.Errorf("the stored versions are gone: %+v", got.RunbookInfo)
	}
	if want := "Roll a service out to a namespace, a few replicas at a time.\n\n  starbook run deploy --input '{\"namespace\": \"shop\", \"replicas\": 3}'"; got.Description != want {
		t.Errorf("description = %q, want %q", got.Description, want)
	}
	if got.Main != "deploy.star" || !strings.Contains(got.Files["steps.star"], "def scale") || !strings.Contains(got.Files["deploy.star"], "def main") {
		t.Errorf("files: main %q, %d files", got.Main, len(got.Files))
	}
	if !strings.Contains(string(got.InputSchema), `"kube-system"`) || got.InputSchemaAt != "deploy.schema.json" {
		t.Errorf("input schema %s at %q", got.InputSchema, got.InputSchemaAt)
	}
	wantWords := []string{
		"alert: alertname=KubePodCrashLooping, at most 5 at once",
		"cron: 0 3 * * * (Europe/Paris)",
		"webhook: deploy-finished (HMAC signature), at most 5 at once",
	}
	if !slices.Equal(got.TriggersInWords, wantWords) {
		t.Errorf("triggers in words = %q, want %q", got.TriggersInWords, wantWords)
	}
	if len(got.Schedules) != 1 || got.Schedules[0].Zone != "Europe/Paris" || got.Schedules[0].Spec != "0 3 * * *" {
		t.Fatalf("schedules = %+v", got.Schedules)
	}
	paris, _ := time.LoadLocation("Europe/Paris")
	next := got.Schedules[0].Next
	if len(next) != api.DefaultNextFires {
		t.Fatalf("%d next fires, want %d", len(next), api.DefaultNextFires)
	}
	for i, at := range next {
		local := at.In(paris)
		if local.Hour() != 3 || local.Minute() != 0 || !at.After(time.Now()) || (i > 0 && !at.After(next[i-1])) {
			t.Errorf("next fire %d = %s (%s in Paris)", i, at, local)
		}
		if _, off := at.Zone(); off != 0 && off != 3600 && off != 7200 {
			t.Errorf("next fire %d is not written in Paris time: %s", i, at)
		}
	}
	if w := do(t, h, "GET", "/api/v1/runbooks/deploy?fires=2", "", ""); !strings.Contains(w.Body.String(), `"next":[`) ||
		strings.Count(w.Body.String()[strings.Index(w.Body.String(), `"next":[`):], "T03:00:00") != 2 {
		t.Errorf("?fires=2: %d %s", w.Code, w.Body)
	}
	for _, path := range []string{"/api/v1/runbooks/deploy?fires=-1", "/api/v1/runbooks/deploy?fires=101", "/api/v1/runbooks/deploy?fires=x"} {
		if w := do(t, h, "GET", path, "", ""); w.Code != 400 || !strings.Contains(w.Body.String(), "invalid fires") {
			t.Errorf("%s: %d %s", path, w.Code, w.Body)
		}
	}
	if w := do(t, h, "GET", "/api/v1/runbooks/nope", "", ""); w.Code != 404 {
		t.Errorf("unknown runbook: %d %s", w.Code, w.Body)
	}
}

// TestRunFormRoute: GET /api/v1/runbooks/{name}/form is the form of the
// current version's input schema (schema.FormOf); a runbook without one gets
// the JSON text form.
func TestRunFormRoute(t *testing.T) {
	svc, _, h := startRunbookPage(t)
	w := do(t, h, "GET", "/api/v1/runbooks/deploy/form", "", "")
	if w.Code != 200 {
		t.Fatalf("GET form: %d %s", w.Code, w.Body)
	}
	var got api.FormResponse
	if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	var fields []string
	for _, f := range got.Form.Fields {
		fields = append(fields, f.Pointer+" "+f.Kind)
	}
	if want := []string{"/dry_run boolean", "/namespace string", "/replicas integer"}; !slices.Equal(sorted(fields), want) {
		t.Errorf("form fields = %q, want %q", fields, want)
	}
	if got.Runbook != "deploy" || got.Version == "" || got.Form.Raw || len(got.Schema) == 0 {
		t.Errorf("form = %+v", got)
	}
	if _, err := svc.Apply(context.Background(), map[string]string{"plain.star": "def main(event):\n    return event\n"}); err != nil {
		t.Fatal(err)
	}
	if w := do(t, h, "GET", "/api/v1/runbooks/plain/form", "", ""); w.Code != 200 || !strings.Contains(w.Body.String(), `"raw":true`) {
		t.Errorf("form without a schema: %d %s", w.Code, w.Body)
	}
	if w := do(t, h, "GET", "/api/v1/runbooks/nope/form", "", ""); w.Code != 404 {
		t.Errorf("form of an unknown runbook: %d %s", w.Code, w.Body)
	}
}

func sorted(s []string) []string { s = slices.Clone(s); slices.Sort(s); return s }

// TestStartRefusalNamesThePointer: a start whose input the schema refuses is
// a 400 whose pointer names the refused value, and nothing is stored; a
// good input starts the run.
func TestStartRefusalNamesThePointer(t *testing.T) {
	svc, _, h := startRunbookPage(t)
	for _, tt := range []struct{ input, pointer, says string }{
		{`{"namespace": "kube-system"}`, "/namespace", "not"},
		{`{"namespace": "shop", "replicas": 11}`, "/replicas", "maximum"},
		{`{"namespace": "shop", "replicas": "3"}`, "/replicas", "integer"},
	} {
		w := do(t, h, "POST", "/api/v1/runbooks/deploy/executions", `{"input": `+tt.input+`}`, "")
		var body struct{ Error, Pointer string }
		_ = json.Unmarshal(w.Body.Bytes(), &body)
		if w.Code != 400 || body.Pointer != tt.pointer || !strings.Contains(body.Error, tt.says) {
			t.Errorf("start with %s: %d %s, want 400 at %s saying %q", tt.input, w.Code, w.Body, tt.pointer, tt.says)
		}
	}
	list, err := svc.Executions(context.Background(), starbook.Filter{Limit: 10})
	if err != nil || len(list) != 0 {
		t.Fatalf("refused starts stored %d executions (%v)", len(list), err)
	}
	if w := do(t, h, "POST", "/api/v1/runbooks/deploy/executions", `{"input": {"namespace": "shop", "replicas": 3}}`, ""); w.Code != 201 {
		t.Errorf("good start: %d %s", w.Code, w.Body)
	}
}

// TestSchedulesRoute: GET /api/v1/schedules lists every cron trigger with
// its zone and next tick; the last tick is the one the leader recorded.
func TestSchedulesRoute(t *testing.T) {
	svc, store, h := startRunbookPage(t)
	ctx := context.Background()
	if _, err := svc.Apply(ctx, map[string]string{
		"nightly.star": "trigger.cron(\"CRON_TZ=Asia/Tokyo 30 1 * * *\")\n\ndef main(event):\n    pass\n",
		"quiet.star":   "def main(event):\n    pass\n",
	}); err != nil {
		t.Fatal(err)
	}
	tick := time.Date(2026, 1, 2, 16, 30, 0, 0, time.UTC)
	if err := cluster.NewTriggers(store, nil, nil).SkipTo(ctx, "nightly", tick); err != nil {
		t.Fatal(err)
	}
	w := do(t, h, "GET", "/api/v1/schedules", "", "")
	var got api.SchedulesResponse
	if err := json.Unmarshal(w.Body.Bytes(), &got); w.Code != 200 || err != nil {
		t.Fatalf("GET schedules: %d %s (%v)", w.Code, w.Body, err)
	}
	var rows []string
	for _, s := range got.Schedules {
		rows = append(rows, s.Runbook+" "+s.Spec+" "+s.Zone)
		if !s.Next.After(got.At) {
			t.Errorf("%s: next %s is not after %s", s.Runbook, s.Next, got.At)
		}
	}
	if want := []string{"deploy 0 3 * * * Europe/Paris", "nightly 30 1 * * * Asia/Tokyo"}; !slices.Equal(rows, want) {
		t.Fatalf("schedules = %q, want %q", rows, want)
	}
	tokyo, _ := time.LoadLocation("Asia/Tokyo")
	if n := got.Schedules[1].Next.In(tokyo); n.Hour() != 1 || n.Minute() != 30 {
		t.Errorf("nightly's next tick %s is not 01:30 in Tokyo", n)
	}
	if !got.Schedules[1].LastTick.Equal(tick) || !got.Schedules[0].LastTick.IsZero() {
		t.Errorf("last ticks: deploy %s, nightly %s (want none, %s)", got.Schedules[0].LastTick, got.Schedules[1].LastTick, tick)
	}
	if got.Schedules[0].Pause != nil {
		t.Errorf("deploy is not paused: %+v", got.Schedules[0].Pause)
	}

	// A paused runbook's schedule says by whom; the pause of every runbook
	// shows on each, as "all".
	if _, err := svc.Pause(ctx, "nightly", starbook.PauseRequest{Paused: true, Reason: "db migration", By: "alice"}); err != nil {
		t.Fatal(err)
	}
	pauses := func() []*starbook.PauseState {
		t.Helper()
		var got api.SchedulesResponse
		w := do(t, h, "GET", "/api/v1/schedules", "", "")
		if err := json.Unmarshal(w.Body.Bytes(), &got); w.Code != 200 || err != nil || len(got.Schedules) != 2 {
			t.Fatalf("GET schedules: %d %s (%v)", w.Code, w.Body, err)
		}
		return []*starbook.PauseState{got.Schedules[0].Pause, got.Schedules[1].Pause}
	}
	if p := pauses(); p[0] != nil || p[1] == nil || p[1].By != "alice" || p[1].Reason != "db migration" || p[1].All {
		t.Errorf("nightly paused: pauses %+v, %+v", p[0], p[1])
	}
	if _, err := svc.Pause(ctx, starbook.AllRunbooks, starbook.PauseRequest{Paused: true, Reason: "freeze", By: "bob"}); err != nil {
		t.Fatal(err)
	}
	if p := pauses(); p[0] == nil || !p[0].All || p[0].By != "bob" || p[0].Runbook != "deploy" || p[1] == nil || p[1].By != "alice" {
		t.Errorf("all paused: pauses %+v, %+v", p[0], p[1])
	}
}

// TestShippedRunbookForm: runbooks/disk_cleanup declares an input schema,
// so its run form has real fields; the schema refuses a threshold out of
// range at its pointer, and still takes the input of a cron tick (the
// runbook's own trigger) and no input at all.
func TestShippedRunbookForm(t *testing.T) {
	svc, _, h := startRunbookPage(t)
	files := map[string]string{}
	for _, name := range []string{"disk_cleanup.star", "disk_cleanup.schema.json"} {
		b, err := os.ReadFile(filepath.Join("..", "runbooks", name))
		if err != nil {
			t.Fatal(err)
		}
		files[name] = string(b)
	}
	if _, err := svc.Apply(context.Background(), files); err != nil {
		t.Fatal(err)
	}
	w := do(t, h, "GET", "/api/v1/runbooks/disk_cleanup/form", "", "")
	var got api.FormResponse
	if err := json.Unmarshal(w.Body.Bytes(), &got); w.Code != 200 || err != nil {
		t.Fatalf("form: %d %s (%v)", w.Code, w.Body, err)
	}
	var fields []string
	for _, f := range got.Form.Fields {
		fields = append(fields, fmt.Sprintf("%s %s %v", f.Pointer, f.Kind, f.Default))
	}
	if want := []string{"/hosts array <nil>", "/threshold integer 85"}; !slices.Equal(sorted(fields), want) || got.Form.Raw {
		t.Errorf("disk_cleanup's form: %q (raw %v), want %q", fields, got.Form.Raw, want)
	}
	for _, tt := range []struct {
		body    string
		status  int
		pointer string
	}{
		{`{"input": {"hosts": ["web-1"], "threshold": 120}}`, 400, "/threshold"},
		{`{"input": {"hosts": ["Web 1"]}}`, 400, "/hosts/0"},
		{`{"input": {"tick": "2026-01-01T10:17:00Z", "schedule": "17 * * * *", "late": false}}`, 201, ""},
		{``, 201, ""},
	} {
		w := do(t, h, "POST", "/api/v1/runbooks/disk_cleanup/executions", tt.body, "")
		var body struct{ Pointer string }
		_ = json.Unmarshal(w.Body.Bytes(), &body)
		if w.Code != tt.status || body.Pointer != tt.pointer {
			t.Errorf("start with %s: %d %s, want %d at %q", tt.body, w.Code, w.Body, tt.status, tt.pointer)
		}
	}
}

// TestRunbookPageLibraries: the runbook page and the version route name the
// library releases a version pinned, and its files hold the modules.
func TestRunbookPageLibraries(t *testing.T) {
	svc, _, h := startRunbookPage(t)
	set, err := stdlib.Default(func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	svc.Libraries = set
	if _, err := svc.Apply(context.Background(), map[string]string{"mark.star": "load(\"@std/grafana.star\", \"grafana\")\n\ndef main(event):\n    return grafana.annotate(event.url, \"hi\")\n"}); err != nil {
		t.Fatal(err)
	}
	release := set.Release(stdlib.Std)
	var page api.RunbookResponse
	if w := do(t, h, "GET", "/api/v1/runbooks/mark", "", ""); w.Code != 200 || json.Unmarshal(w.Body.Bytes(), &page) != nil {
		t.Fatalf("GET runbook: %d %s", w.Code, w.Body)
	}
	if page.Libraries[stdlib.Std] != release || !strings.Contains(page.Files["@std/grafana.star"], "def annotate") ||
		len(page.Versions) != 1 || page.Versions[0].Libraries[stdlib.Std] != release {
		t.Errorf("runbook page: libraries %v, versions %+v, files %d; want @std %s and grafana.star", page.Libraries, page.Versions, len(page.Files), release)
	}
	var version api.BundleResponse
	if w := do(t, h, "GET", "/api/v1/runbooks/mark/versions/current", "", ""); w.Code != 200 || json.Unmarshal(w.Body.Bytes(), &version) != nil {
		t.Fatalf("GET version: %d %s", w.Code, w.Body)
	}
	if version.Libraries[stdlib.Std] != release || version.Files["@std/grafana.star"] == "" {
		t.Errorf("version route: libraries %v, files %d", version.Libraries, len(version.Files))
	}
	// An upload of an @std module is refused, whatever the route.
	for _, body := range []string{
		`{"files": {"up.star": "def main(event):\n    return 1\n", "@std/grafana.star": "grafana = struct()\n"}}`,
		`{"files": {"up.star": "def main(event):\n    return 1\n", "@std/grafana.star": "grafana = struct()\n"}, "migrate": true}`,
	} {
		w := do(t, h, "POST", "/api/v1/runbooks", body, "")
		if w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), "@std modules are the node's own") {
			t.Errorf("POST of an @std module: %d %s, want 400", w.Code, w.Body)
		}
	}
	if w := do(t, h, "GET", "/api/v1/runbooks/up", "", ""); w.Code != http.StatusNotFound {
		t.Errorf("a refused upload stored its runbook: %d", w.Code)
	}
	// A runbook that loads no library names none.
	if w := do(t, h, "GET", "/api/v1/runbooks/deploy", "", ""); strings.Contains(w.Body.String(), `"libraries"`) {
		t.Errorf("deploy names libraries: %s", w.Body)
	}
}
