package builtins_test

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/starbook/starbook/builtins"
	"github.com/starbook/starbook/enginetest"
	sbruntime "github.com/starbook/starbook/runtime"
)

// echo answers with the request body as it is, JSON-escaped and in base64.
func echo(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]string{"raw": string(b), "b64": base64.StdEncoding.EncodeToString(b),
		"auth": r.Header.Get("Authorization")})
}

// TestSecretReadAtTopLevelIsScrubbed: a secret read while the runbook's top
// level runs (not in main) is scrubbed from results, errors, log lines and
// their keys, like one read in main.
func TestSecretReadAtTopLevelIsScrubbed(t *testing.T) {
	const value = "top-level-secret-value-42"
	srv := httptest.NewServer(http.HandlerFunc(echo))
	defer srv.Close()
	f := enginetest.NewFixture(t, enginetest.NewMemBackend(t), enginetest.Options{Secrets: map[string]string{"TOKEN": value}})
	p := f.Source("leak", `
TOKEN = secret("TOKEN")

def leak_in_step(url):
    r = http.post(url, body = TOKEN, headers = {"Authorization": "Bearer " + TOKEN})
    raw = r["json"]["raw"]
    log("inside", **{raw: raw, "k": r["body"]})
    print(r["body"])
    fail("echoed: " + raw)

def main(event):
    r = call(http.post, event.url, body = TOKEN)
    log("echo", body = r.body, key = r.json.raw)
    step = call(leak_in_step, event.url)
    return r
`)
	id := f.Start(p, `{"url": "`+srv.URL+`"}`)
	res := f.RunToEnd(id, p, sbruntime.StatusFailed)
	h, _ := json.Marshal(f.History(id))
	all := string(h) + res.Outcome.Error + string(res.Outcome.Result) + f.Logs()
	for _, form := range []string{value, base64.StdEncoding.EncodeToString([]byte(value))} {
		if strings.Contains(all, form) {
			t.Fatalf("the secret (%q) leaked:\n%s", form, all)
		}
	}
	if !strings.Contains(string(h), `\u003csecret TOKEN\u003e`) || !strings.Contains(res.Outcome.Error, "echoed: <secret TOKEN>") {
		t.Errorf("placeholder missing: history %s, error %s", h, res.Outcome.Error)
	}
}

func TestSecretRefusesNodeConfiguration(t *testing.T) {
	f := enginetest.NewFixture(t, enginetest.NewMemBackend(t), enginetest.Options{Secrets: map[string]string{"STARBOOK_TOKENS": "a:admin:xxxxxxxxxxxxxxxxxxxx"}})
	p := f.Source("s", `
def main(event):
    return str(secret("starbook_tokens"))
`)
	id := f.Start(p, "")
	res := f.RunToEnd(id, p, sbruntime.StatusFailed)
	if !strings.Contains(res.Outcome.Error, "the node's own configuration") || strings.Contains(res.Outcome.Error, "xxxx") {
		t.Fatalf("error %q", res.Outcome.Error)
	}
	if builtins.ReservedSecretPrefix != "STARBOOK_" {
		t.Fatal("prefix changed")
	}
}

// TestNodeScrubberLearnsSecrets: the node-wide scrubber learns each value
// secret() reads, for the node's logs and API.
func TestNodeScrubberLearnsSecrets(t *testing.T) {
	node := sbruntime.NewScrubber()
	bi := builtins.New(builtins.Options{Secrets: func(string) (string, bool) { return "node-wide-value", true }, Scrubber: node})
	f := enginetest.NewFixture(t, enginetest.NewMemBackend(t), enginetest.Options{})
	f.Engine.Builtins = bi
	p, err := sbruntime.Compile(&sbruntime.Bundle{Name: "s", Main: "s.star", Files: map[string]string{"s.star": `
def main(event):
    return str(secret("X"))
`}}, bi)
	if err != nil {
		t.Fatal(err)
	}
	id := f.Start(p, "")
	if res := f.RunToEnd(id, p, sbruntime.StatusCompleted); string(res.Outcome.Result) != `"\u003csecret X\u003e"` {
		t.Fatalf("result %s", res.Outcome.Result)
	}
	if got := node.Scrub("a node-wide-value b"); got != "a <secret X> b" {
		t.Fatalf("node scrubber: %q", got)
	}
}
