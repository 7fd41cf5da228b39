package e2e

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	sbruntime "github.com/starbook/starbook/runtime"
	"github.com/starbook/starbook/stdlib"
)

// pinnedRunbook loads a module of @std before and after it parks on an
// approval: its result says which module source each half ran.
const pinnedRunbook = `load("@std/pinprobe.star", "pinprobe")

def main(event):
    before = pinprobe.tag()
    wait_for_approval("Go on?", timeout = "1h")
    return {"before": before, "after": pinprobe.tag()}
`

// pinprobeModule is the test's @std module, tagged with its release.
func pinprobeModule(tag string) string {
	return `"""pinprobe says which release of itself runs."""

def tag():
    """Returns this module's tag."""
    return "` + tag + `"

pinprobe = struct(tag = tag)
`
}

// TestStdlibPinnedAcrossRestart is the library's pinning promise, on the real
// binary: a runbook applied with @std/pinprobe.star v1 (served from
// STARBOOK_STD_DIR) parks; the node is SIGKILLed, the module changed to v2 in
// the directory, the node restarted and the runbook applied again (a new
// version holding v2). The parked run then replays and finishes on v1, the
// module source its version was applied with; a new run gets v2.
func TestStdlibPinnedAcrossRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the real binary")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	stdDir, rbDir := t.TempDir(), t.TempDir()
	writeFile(t, filepath.Join(stdDir, "pinprobe.star"), pinprobeModule("v1"))
	writeFile(t, filepath.Join(rbDir, "pinned.star"), pinnedRunbook)
	t.Setenv(stdlib.EnvDir, stdDir) // the node and the CLI inherit it
	dataDir := t.TempDir() + "/node"
	d := startDaemon(t, dataDir)

	out, err := run(ctx, d.URL, "apply", rbDir)
	applied := regexp.MustCompile(`applied pinned (\w+)`).FindStringSubmatch(out)
	if err != nil || applied == nil {
		t.Fatalf("starbook apply: %v: %s", err, out)
	}
	v1 := applied[1]
	b1, err := d.Client.RunbookVersion(ctx, "pinned", v1)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b1.Files["@std/pinprobe.star"], `"v1"`) || b1.Libraries[stdlib.Std] == "" {
		t.Fatalf("version %s does not hold pinprobe v1 and its release: libraries %v, files %v", v1, b1.Libraries, b1.Files)
	}
	parked, err := d.Client.Start(ctx, "pinned", json.RawMessage(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	awaitApprovals(ctx, t, d.Client, parked.ID)

	d.kill(t)
	writeFile(t, filepath.Join(stdDir, "pinprobe.star"), pinprobeModule("v2"))
	d = startDaemon(t, dataDir)

	out, err = run(ctx, d.URL, "apply", rbDir)
	applied = regexp.MustCompile(`applied pinned (\w+)`).FindStringSubmatch(out)
	if err != nil || applied == nil || applied[1] == v1 {
		t.Fatalf("starbook apply after the module changed: want a new version, not %s: %v: %s", v1, err, out)
	}
	v2 := applied[1]
	b2, err := d.Client.RunbookVersion(ctx, "pinned", v2)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b2.Files["@std/pinprobe.star"], `"v2"`) {
		t.Errorf("version %s holds %q, want pinprobe v2", v2, b2.Files["@std/pinprobe.star"])
	}
	if b2.Libraries[stdlib.Std] == b1.Libraries[stdlib.Std] {
		t.Errorf("both versions name @std release %s: the release must change with the modules", b1.Libraries[stdlib.Std])
	}
	if b1, err = d.Client.RunbookVersion(ctx, "pinned", v1); err != nil || !strings.Contains(b1.Files["@std/pinprobe.star"], `"v1"`) {
		t.Errorf("the old version no longer holds pinprobe v1 after the restart: %v", err)
	}

	out, err = run(ctx, d.URL, "approve", parked.ID, "--as", "alice")
	if err != nil || !strings.Contains(out, "approved by alice") {
		t.Fatalf("starbook approve: %v: %s", err, out)
	}
	end, _, err := d.Client.Wait(ctx, parked.ID, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if end.Status != sbruntime.StatusCompleted || string(end.Result) != `{"after":"v1","before":"v1"}` {
		t.Fatalf("the parked run: %s %s %s, want completed on pinprobe v1 throughout", end.Status, end.Result, end.Error)
	}
	if end.Version != v1 {
		t.Errorf("the parked run is on version %s, want %s", end.Version, v1)
	}

	fresh, err := d.Client.Start(ctx, "pinned", json.RawMessage(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	if fresh.Version != v2 {
		t.Errorf("a new run is on version %s, want %s", fresh.Version, v2)
	}
	awaitApprovals(ctx, t, d.Client, fresh.ID)
	if out, err = run(ctx, d.URL, "approve", fresh.ID, "--as", "alice"); err != nil {
		t.Fatalf("starbook approve: %v: %s", err, out)
	}
	end, _, err = d.Client.Wait(ctx, fresh.ID, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if end.Status != sbruntime.StatusCompleted || string(end.Result) != `{"after":"v2","before":"v2"}` {
		t.Fatalf("the new run: %s %s %s, want completed on pinprobe v2", end.Status, end.Result, end.Error)
	}

	out, err = run(ctx, d.URL, "show", parked.ID)
	if err != nil || !regexp.MustCompile(`Libraries: @std \S+\+`+regexp.QuoteMeta(strings.SplitN(b1.Libraries[stdlib.Std], "+", 2)[1])).MatchString(out) {
		t.Errorf("starbook show of the parked run does not name its @std release %s: %v\n%s", b1.Libraries[stdlib.Std], err, out)
	}
}

// writeFile writes src to path or fails the test.
func writeFile(t *testing.T, path, src string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
}
