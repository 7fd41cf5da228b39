package stdlib_test

import (
	"encoding/json"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/starbook/starbook/enginetest"
	sbruntime "github.com/starbook/starbook/runtime"
	"github.com/starbook/starbook/stdlib"
)

// apiServer serves the Kubernetes API responses of tests/testdata/k8s (see
// its README) by method and path, over real HTTP, and records the
// requests it gets.
type apiServer struct {
	t      *testing.T
	routes map[string]apiResponse // "GET /api/v1/..." -> response
	mu     sync.Mutex
	got    []apiRequest
}

// apiResponse is a testdata file served with a status.
type apiResponse struct {
	status int
	file   string
}

// apiRequest is one request the server got.
type apiRequest struct {
	Method, Path, Query, Auth, ContentType, Accept string
	Body                                           map[string]any
}

func (s *apiServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	req := apiRequest{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Auth: r.Header.Get("Authorization"),
		ContentType: r.Header.Get("Content-Type"), Accept: r.Header.Get("Accept")}
	if len(body) > 0 {
		if err := json.Unmarshal(body, &req.Body); err != nil {
			s.t.Errorf("%s %s: body is not JSON: %s", r.Method, r.URL, body)
		}
	}
	s.mu.Lock()
	s.got = append(s.got, req)
	s.mu.Unlock()
	route, ok := s.routes[r.Method+" "+r.URL.Path]
	if !ok {
		s.t.Errorf("unexpected request %s %s", r.Method, r.URL)
		http.Error(w, "no route", http.StatusNotImplemented)
		return
	}
	data, err := os.ReadFile(filepath.Join("tests", "testdata", "k8s", route.file))
	if err != nil {
		s.t.Fatal(err)
	}
	if strings.HasSuffix(route.file, ".json") {
		w.Header().Set("Content-Type", "application/json")
	} else {
		w.Header().Set("Content-Type", "text/plain")
	}
	w.WriteHeader(route.status)
	_, _ = w.Write(data)
}

// requests returns the requests with method and path.
func (s *apiServer) requests(method, path string) []apiRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []apiRequest
	for _, r := range s.got {
		if r.Method == method && r.Path == path {
			out = append(out, r)
		}
	}
	return out
}

// runK8s runs src, a runbook loading the embedded @std/k8s.star, on the
// engine with the real built-ins (http.* included), input {"server": URL},
// to want.
func runK8s(t *testing.T, srv *httptest.Server, src string, want sbruntime.Status) sbruntime.Outcome {
	t.Helper()
	module, err := fs.ReadFile(stdlib.Embedded(), "k8s.star")
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{"k8s_live.star": src, "@std/k8s.star": string(module)}
	b := &sbruntime.Bundle{Name: "k8s_live", Main: "k8s_live.star", Files: files, Version: sbruntime.BundleVersion(files)}
	f := enginetest.NewFixture(t, enginetest.NewMemBackend(t), enginetest.Options{Secrets: map[string]string{"K8S_TOKEN": "t0ken-k8s"}})
	p, err := sbruntime.Compile(b, f.Predeclared)
	if err != nil {
		t.Fatal(err)
	}
	input, _ := json.Marshal(map[string]string{"server": srv.URL})
	return f.RunToEnd(f.Start(p, string(input)), p, want).Outcome
}

const (
	podPath    = "/api/v1/namespaces/shop/pods/api-7f9c5d8b4-x2x9q"
	deployPath = "/apis/apps/v1/namespaces/shop/deployments/api"
)

// TestK8sAgainstRecordedResponses runs every read and write of @std/k8s
// over real HTTP against an API server that answers with the Kubernetes
// objects of testdata/k8s, and checks what the module made of them and what
// it sent.
func TestK8sAgainstRecordedResponses(t *testing.T) {
	api := &apiServer{t: t, routes: map[string]apiResponse{
		"GET " + podPath:          {200, "pod.json"},
		"GET " + podPath + "/log": {200, "pod_log.txt"},
		"DELETE " + podPath:       {403, "status_forbidden.json"},
		"GET /apis/apps/v1/namespaces/shop/replicasets/api-7f9c5d8b4": {200, "replicaset.json"},
		"GET /apis/apps/v1/namespaces/shop/replicasets":               {200, "replicasets.json"},
		"GET " + deployPath:                                 {200, "deployment.json"},
		"PATCH " + deployPath:                               {200, "deployment.json"},
		"GET " + deployPath + "/scale":                      {200, "scale.json"},
		"PATCH " + deployPath + "/scale":                    {200, "scale_patched.json"},
		"GET /api/v1/namespaces/shop/events":                {200, "events.json"},
		"GET /apis/apps/v1/namespaces/shop/deployments/web": {404, "status_not_found.json"},
	}}
	srv := httptest.NewServer(api)
	defer srv.Close()

	o := runK8s(t, srv, `
load("@std/k8s.star", "k8s")

def main(event):
    c = k8s.client(server = event["server"])
    p = c.get("pods", "api-7f9c5d8b4-x2x9q", namespace = "shop")
    rs = c.get("replicasets", k8s.owner(p, "ReplicaSet"), namespace = "shop")
    deploy = k8s.owner(rs, "Deployment")
    return {
        "deployment": deploy,
        "restarts": p["status"]["containerStatuses"][0]["restartCount"],
        "status": c.rollout_status("shop", deploy),
        "events": c.events("shop", involved = p["metadata"]["name"]),
        "logs": c.pod_logs("shop", p["metadata"]["name"], container = "api", tail = 40, previous = True),
        "scaled": c.scale("deployments", deploy, 5, namespace = "shop"),
        "restarted": c.rollout_restart("shop", deploy),
        "undone": c.rollout_undo("shop", deploy),
    }
`, sbruntime.StatusCompleted)

	var got struct {
		Deployment string
		Restarts   int
		Status     map[string]any
		Events     []map[string]any
		Logs       string
		Scaled     map[string]int
		Restarted  map[string]any
		Undone     map[string]int
	}
	if err := json.Unmarshal(o.Result, &got); err != nil {
		t.Fatalf("%v: %s", err, o.Result)
	}
	if got.Deployment != "api" || got.Restarts != 7 {
		t.Errorf("owner chain: deployment %q, %d restarts", got.Deployment, got.Restarts)
	}
	if got.Status["ready"] != false || got.Status["message"] != "3 of 3 updated, 2 ready, 2 available" {
		t.Errorf("rollout_status %v", got.Status)
	}
	if len(got.Events) != 2 || got.Events[1]["reason"] != "BackOff" || got.Events[1]["count"] != float64(31) ||
		got.Events[1]["object"] != "Pod/api-7f9c5d8b4-x2x9q" || got.Events[1]["last"] != "2026-12-07T10:06:40Z" {
		t.Errorf("events %v", got.Events)
	}
	if !strings.Contains(got.Logs, "panic: assignment to entry in nil map") {
		t.Errorf("logs %q", got.Logs)
	}
	if got.Scaled["previous"] != 3 || got.Scaled["replicas"] != 5 {
		t.Errorf("scale %v", got.Scaled)
	}
	if got.Restarted["generation"] != float64(12) || got.Restarted["restarted_at"] == "" {
		t.Errorf("rollout_restart %v", got.Restarted)
	}
	if got.Undone["from_revision"] != 12 || got.Undone["to_revision"] != 11 {
		t.Errorf("rollout_undo %v", got.Undone)
	}

	// What went over the wire.
	for _, r := range api.got {
		if r.Auth != "Bearer t0ken-k8s" {
			t.Errorf("%s %s: Authorization %q", r.Method, r.Path, r.Auth)
		}
	}
	if q := api.requests("GET", podPath+"/log")[0].Query; q != "container=api&previous=true&tailLines=40" {
		t.Errorf("log query %q", q)
	}
	if q := api.requests("GET", "/api/v1/namespaces/shop/events")[0].Query; q != "fieldSelector=involvedObject.name%3Dapi-7f9c5d8b4-x2x9q" {
		t.Errorf("events query %q", q)
	}
	if q := api.requests("GET", "/apis/apps/v1/namespaces/shop/replicasets")[0].Query; q != "labelSelector=app%3Dapi" {
		t.Errorf("replicasets query %q", q)
	}
	scale := api.requests("PATCH", deployPath+"/scale")
	if len(scale) != 1 || scale[0].ContentType != "application/merge-patch+json" || mustJSON(scale[0].Body) != `{"spec":{"replicas":5}}` {
		t.Errorf("scale patch %+v", scale)
	}
	patches := api.requests("PATCH", deployPath)
	if len(patches) != 2 {
		t.Fatalf("deployment patches %+v", patches)
	}
	restart, undo := patches[0], patches[1]
	if restart.ContentType != "application/strategic-merge-patch+json" ||
		!strings.HasPrefix(mustJSON(restart.Body), `{"spec":{"template":{"metadata":{"annotations":{"kubectl.kubernetes.io/restartedAt":"`) {
		t.Errorf("restart patch %s %s", restart.ContentType, mustJSON(restart.Body))
	}
	template := undo.Body["spec"].(map[string]any)["template"].(map[string]any)
	if undo.ContentType != "application/merge-patch+json" ||
		mustJSON(template["metadata"]) != `{"labels":{"app":"api"}}` ||
		!strings.Contains(mustJSON(template["spec"]), `"image":"registry.example.com/shop/api:1.4.1"`) {
		t.Errorf("undo patch %s %s", undo.ContentType, mustJSON(undo.Body))
	}

	// The API server's Status messages in the run's error.
	o = runK8s(t, srv, `
load("@std/k8s.star", "k8s")

def main(event):
    k8s.delete("pods", "api-7f9c5d8b4-x2x9q", namespace = "shop", server = event["server"])
`, sbruntime.StatusFailed)
	if want := `k8s.delete pods shop/api-7f9c5d8b4-x2x9q: HTTP 403 Forbidden: pods "api-7f9c5d8b4-x2x9q" is forbidden: User "system:serviceaccount:ops:starbook" cannot delete resource "pods"`; !strings.Contains(o.Error, want) {
		t.Errorf("delete error %q, want %q", o.Error, want)
	}
	o = runK8s(t, srv, `
load("@std/k8s.star", "k8s")

def main(event):
    k8s.rollout_status("shop", "web", server = event["server"])
`, sbruntime.StatusFailed)
	if want := `k8s.rollout_status deployments shop/web: HTTP 404 NotFound: deployments.apps "web" not found`; !strings.Contains(o.Error, want) {
		t.Errorf("rollout_status error %q, want %q", o.Error, want)
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
