package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestScaleSmoke runs the scale bench (starbook bench --scale) at N=200 on
// a node process of a freshly built binary: every figure is measured, the
// key families account for every key, and the table, the ratio column and
// the JSON line are written. Figures are not judged: a smoke run on a loaded
// CI machine says nothing about speed.
func TestScaleSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs a node process")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	binary := filepath.Join(t.TempDir(), "starbook")
	build := exec.CommandContext(ctx, "go", "build", "-o", binary, "../cmd/starbook")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build starbook: %v\n%s", err, out)
	}
	var out, log bytes.Buffer
	rep, err := RunScale(ctx, ScaleConfig{Sizes: []int{200, 100}, Binary: binary, Repeats: 1, Dir: t.TempDir(),
		Rest: time.Second, Out: &out, Log: &log})
	if err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	if len(rep.Results) != 2 || rep.Results[0].N != 100 || rep.Results[1].N != 200 {
		t.Fatalf("results not one per size, smallest first: %+v", rep.Results)
	}
	for _, res := range rep.Results {
		for _, f := range ScaleFigures {
			if v, ok := res.Figures[f.Name]; !ok || !(v > 0) {
				t.Errorf("N=%d: %s = %v, want a positive figure", res.N, f.Name, v)
			}
		}
		// Each run keeps its record and its history, wherever the store
		// keeps them: at least one key per execution.
		if k := res.Figures["keys_per_execution"]; k < 1 {
			t.Errorf("N=%d: %.2f keys per execution", res.N, k)
		}
		if len(res.Families) < 2 {
			t.Errorf("N=%d: key families %v", res.N, res.Families)
		}
	}
	text := out.String()
	for _, want := range []string{"200/100", "list_page_25_ms", "key family", `"list_page_25_ms_200":`, `"restart_ready_s_100":`} {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %q:\n%s", want, text)
		}
	}

	out.Reset()
	if _, err := RunScale(ctx, ScaleConfig{Sizes: []int{50}, Binary: binary, Repeats: 1, Dir: t.TempDir(),
		Rest: time.Second, Out: &out, Log: &log, JSON: true}); err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	var doc ScaleReport
	if err := json.Unmarshal(out.Bytes(), &doc); err != nil || len(doc.Results) != 1 || doc.Results[0].Figures["slo_ms"] <= 0 {
		t.Errorf("--json: %v: %s", err, out.String())
	}
	if testing.Verbose() {
		os.Stdout.Write(log.Bytes())
	}
}
