package node_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/starbook/starbook"
	"github.com/starbook/starbook/api"
	"github.com/starbook/starbook/cluster"
	sbruntime "github.com/starbook/starbook/runtime"
	"github.com/starbook/starbook/triggers"
)

func schemaData(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "schema", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// schemaServer is a node with scale.star and its schema applied, served by
// the HTTP API with its hooks; dead letters are kept.
func schemaServer(t *testing.T) (*testNode, *httptest.Server) {
	t.Helper()
	tn := startTestNode(t, t.TempDir())
	tn.apply(t, map[string]string{"scale.star": schemaData(t, "scale.star"), "scale.schema.json": schemaData(t, "scale.schema.json")})
	tr := cluster.NewTriggers(tn.svc.Store, nil, nil)
	d := &triggers.Dispatcher{Index: tr.Index(), Starter: tr, Resolver: tr, DeadLetters: tr,
		Env: func(name string) (string, bool) { return "scale-hook-token", name == "SCALE_HOOK_TOKEN" }}
	srv := httptest.NewServer(api.NewHandler(tn.svc, nil, api.WithHooks(d, api.AlertmanagerAuth{})))
	t.Cleanup(srv.Close)
	return tn, srv
}

// TestStartRefusesInputTheSchemaRefuses: a start through the API whose
// input the runbook's schema refuses is a 400 naming the JSON pointer and
// the rule, and stores no execution; a valid input runs.
func TestStartRefusesInputTheSchemaRefuses(t *testing.T) {
	tn, srv := schemaServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := &api.Client{BaseURL: srv.URL}
	for name, input := range map[string]string{
		"minimum":  schemaData(t, "bad_input.json"),
		"no input": "",
	} {
		_, err := c.Start(ctx, "scale", json.RawMessage(input))
		var ae *api.Error
		if !errors.As(err, &ae) || ae.Status != http.StatusBadRequest {
			t.Fatalf("%s: start = %v, want 400", name, err)
		}
		want := map[string]string{
			"minimum":  "runbook scale refuses its input /replicas: minimum: got 0, want >= 1",
			"no input": "runbook scale refuses its input (root): type: got null, want object",
		}[name]
		if ae.Message != want {
			t.Errorf("%s: message %q, want %q", name, ae.Message, want)
		}
	}
	if list, err := tn.svc.Executions(ctx, starbook.Filter{Limit: 10}); err != nil || len(list) != 0 {
		t.Fatalf("executions after refused starts: %v, %v: want none", list, err)
	}
	e, err := c.Start(ctx, "scale", json.RawMessage(schemaData(t, "good_input.json")))
	if err != nil {
		t.Fatal(err)
	}
	end, err := tn.svc.AwaitEnd(ctx, e.ID)
	if err != nil || end.Status != sbruntime.StatusCompleted || string(end.Result) != `"scale api to 3"` {
		t.Fatalf("valid input ran to %+v, %v", end, err)
	}
}

// TestWebhookBodyTheSchemaRefusesIsADeadLetter: a webhook body the schema
// refuses starts nothing, answers 400 naming why, and is kept as a dead
// letter (reason refused) with the body.
func TestWebhookBodyTheSchemaRefusesIsADeadLetter(t *testing.T) {
	tn, srv := schemaServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	body := schemaData(t, "bad_input.json")
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/hooks/scale", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer scale-hook-token")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	answer, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var apiErr struct{ Error string }
	if err := json.Unmarshal(answer, &apiErr); err != nil || resp.StatusCode != http.StatusBadRequest ||
		apiErr.Error != "webhook scale: runbook scale refuses its input /replicas: minimum: got 0, want >= 1" {
		t.Fatalf("webhook answered %d %s, want 400 naming /replicas and minimum", resp.StatusCode, answer)
	}
	dls, err := tn.svc.Store.DeadLetters(ctx, starbook.DeadLetterFilter{Reason: starbook.ReasonRefused})
	if err != nil || len(dls) != 1 {
		t.Fatalf("refused dead letters %v, %v: want one", dls, err)
	}
	dl := dls[0]
	if dl.Kind != starbook.DeadEvent || dl.Runbook != "scale" || dl.Source != "webhook:scale" ||
		dl.Detail != "runbook scale refuses its input /replicas: minimum: got 0, want >= 1" || !sameJSON(t, dl.Payload, body) {
		t.Errorf("dead letter %+v (payload %s)", dl, dl.Payload)
	}
	if list, err := tn.svc.Executions(ctx, starbook.Filter{Limit: 10}); err != nil || len(list) != 0 {
		t.Fatalf("executions after a refused webhook: %v, %v: want none", list, err)
	}
}

// TestAlertTheSchemaRefusesIsADeadLetter: Alertmanager gets 200 for an
// alert the matching runbook's schema refuses (a 4xx would be dropped, a
// 5xx retried forever); each alert is kept once as a dead letter, even when
// Alertmanager repeats the notification.
func TestAlertTheSchemaRefusesIsADeadLetter(t *testing.T) {
	tn, srv := schemaServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	payload, err := os.ReadFile(filepath.Join("..", "testdata", "alertmanager", "valid_firing.json"))
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		resp, err := http.Post(srv.URL+"/hooks/alertmanager", "application/json", bytes.NewReader(payload))
		if err != nil {
			t.Fatal(err)
		}
		answer, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(answer), `"refused"`) {
			t.Fatalf("alertmanager answered %d %s, want 200 with the refusals", resp.StatusCode, answer)
		}
	}
	dls, err := tn.svc.Store.DeadLetters(ctx, starbook.DeadLetterFilter{Reason: starbook.ReasonRefused})
	if err != nil || len(dls) != 2 {
		t.Fatalf("refused dead letters %v, %v: want one per alert", dls, err)
	}
	for _, dl := range dls {
		if dl.Runbook != "scale" || dl.Source != "alertmanager" || dl.Fingerprint == "" || len(dl.Payload) == 0 ||
			!strings.HasPrefix(dl.Detail, "runbook scale refuses its input (root): ") {
			t.Errorf("dead letter %+v", dl)
		}
	}
	if list, err := tn.svc.Executions(ctx, starbook.Filter{Limit: 10}); err != nil || len(list) != 0 {
		t.Fatalf("executions after refused alerts: %v, %v: want none", list, err)
	}
}

// TestApplyRefusesABadInputSchema: a schema file that is no JSON Schema is
// refused at its file:line, and nothing of the request is stored.
func TestApplyRefusesABadInputSchema(t *testing.T) {
	tn := startTestNode(t, t.TempDir())
	ctx := context.Background()
	_, err := tn.svc.Apply(ctx, map[string]string{
		"scale.star": schemaData(t, "scale.star"), "scale.schema.json": schemaData(t, "bad.schema.json"),
		"other.star": "def main(event):\n    pass\n",
	})
	var ie *sbruntime.InputError
	if !errors.As(err, &ie) || err.Error() != "scale.schema.json:1: invalid input schema: at /properties/replicas/minimum: got string, want number" {
		t.Fatalf("apply: %v, want an input error at scale.schema.json:1", err)
	}
	resp, err := tn.svc.Store.Client().Get(ctx, tn.svc.Store.Keys().Prefix(), clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range resp.Kvs {
		if strings.Contains(string(kv.Key), "/runbooks/") {
			t.Errorf("a refused apply stored %s", kv.Key)
		}
	}
}

func sameJSON(t *testing.T, a json.RawMessage, b string) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		return false
	}
	if err := json.Unmarshal([]byte(b), &y); err != nil {
		t.Fatal(err)
	}
	xb, _ := json.Marshal(x)
	yb, _ := json.Marshal(y)
	return bytes.Equal(xb, yb)
}
