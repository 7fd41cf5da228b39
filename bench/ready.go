package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"time"
)

// readyAfterLaunch starts `starbook serve` on a fresh data dir and returns
// the seconds until /healthz answers 200.
func readyAfterLaunch(ctx context.Context, binary string) float64 {
	dir, err := os.MkdirTemp("", "starbook-ready-")
	if err != nil {
		return math.NaN()
	}
	defer os.RemoveAll(dir)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return math.NaN()
	}
	addr := l.Addr().String()
	l.Close()
	start := time.Now()
	cmd := exec.CommandContext(ctx, binary, "serve", "--data-dir", dir, "--listen", addr)
	if err := cmd.Start(); err != nil {
		return math.NaN()
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	client := &http.Client{Timeout: time.Second}
	url := fmt.Sprintf("http://%s/healthz", addr)
	for time.Since(start) < 30*time.Second {
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return time.Since(start).Seconds()
			}
		}
		time.Sleep(2 * time.Millisecond)
	}
	return math.NaN()
}

// parkedInFreshProcess runs `starbook bench --parked-only` (with --quick when
// cfg.Quick) and returns the RSS its last JSON line reports.
func parkedInFreshProcess(ctx context.Context, cfg Config) float64 {
	args := []string{"bench", "--parked-only"}
	if cfg.Quick {
		args = append(args, "--quick")
	}
	if cfg.Budget {
		args = append(args, "--budget")
	}
	out, err := exec.CommandContext(ctx, cfg.Binary, args...).Output()
	if err != nil {
		return math.NaN()
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	var last struct {
		RSS float64 `json:"parked_100k_rss_mb"`
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &last); err != nil || last.RSS == 0 {
		return math.NaN()
	}
	return last.RSS
}
