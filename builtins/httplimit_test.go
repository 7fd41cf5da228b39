package builtins

import (
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/starbook/starbook/downstream"
)

// TestHTTPGuardLabels: requests to a limited host are counted under its
// name, every other host as "other"; an unlimited host is not throttled.
func TestHTTPGuardLabels(t *testing.T) {
	_, srv := newRecorder(t, response{status: http.StatusOK})
	u, _ := url.Parse(srv.URL)
	var mu sync.Mutex
	counted := map[string]int{}
	g := downstream.New(downstream.Config{Hooks: downstream.Hooks{Request: func(host, code string) {
		mu.Lock()
		counted[host+" "+code]++
		mu.Unlock()
	}}})
	g.SetStatic([]downstream.Limit{{Host: "127.0.0.1", Concurrency: 1, Failures: 5, Cooldown: time.Minute, RetryRatio: 0.2}})
	run := runHTTP(t, HTTPOptions{Guards: g}, nil, srv.URL, `
def main(event):
    call(http.get, event.url)
    call(http.get, event.url.replace("127.0.0.1", "localhost"))
    return call(http.get, event.url)
`)
	run.result(t)
	mu.Lock()
	defer mu.Unlock()
	if counted["127.0.0.1 200"] != 2 || counted["other 200"] != 1 || len(counted) != 2 {
		t.Errorf("counted %v, want 2 for 127.0.0.1 and 1 for other (port %s)", counted, u.Port())
	}
}
