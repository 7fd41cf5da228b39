package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
)

// TestDebugListen: the profiler answers on its own listener while the
// node's context lives, a bad address is refused before anything starts,
// and no flag starts nothing.
func TestDebugListen(t *testing.T) {
	logger := slog.New(slog.DiscardHandler)
	if err := (&debugFlags{listen: "not an address"}).start(context.Background(), logger); err == nil || !strings.Contains(err.Error(), "--debug-listen") {
		t.Fatalf("bad address: %v", err)
	}
	if err := (&debugFlags{}).start(context.Background(), logger); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	d := &debugFlags{listen: "127.0.0.1:0"}
	var addr string
	logger = slog.New(slog.NewTextHandler(writerFunc(func(p []byte) {
		if i := strings.Index(string(p), "addr="); i >= 0 {
			addr = strings.Fields(string(p[i+5:]))[0]
		}
	}), nil))
	if err := d.start(ctx, logger); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + addr + "/debug/pprof/heap?debug=1")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "heap profile") {
		t.Fatalf("GET heap: %d %.100s", resp.StatusCode, body)
	}
}

type writerFunc func([]byte)

func (f writerFunc) Write(p []byte) (int, error) { f(p); return len(p), nil }
