package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"
)

// clusterFlags are serve flags the Kubernetes manifests use before serve
// has them (a cluster of embedded members is being built): they are
// accepted while serve lacks them, and checked like the others once it has.
var clusterFlags = []string{"initial-cluster", "peer-listen"}

// TestDeployCommandLines parses the command lines that the files in deploy/
// give starbook with the commands' own flags, so that renaming or removing a
// flag fails here rather than in a container.
func TestDeployCommandLines(t *testing.T) {
	deploy := filepath.Join("..", "..", "deploy")
	tests := []struct {
		name string
		args func(t *testing.T) []string
	}{
		{"Dockerfile CMD", func(t *testing.T) []string {
			return dockerfileArgs(t, filepath.Join(deploy, "docker", "Dockerfile"), "CMD")
		}},
		{"Dockerfile HEALTHCHECK", func(t *testing.T) []string {
			args := dockerfileArgs(t, filepath.Join(deploy, "docker", "Dockerfile"), "HEALTHCHECK")
			if len(args) == 0 || args[0] != "/usr/local/bin/starbook" {
				t.Fatalf("HEALTHCHECK runs %q, want the binary", args)
			}
			return args[1:]
		}},
		{"systemd ExecStart", func(t *testing.T) []string {
			return systemdArgs(t, filepath.Join(deploy, "systemd"))
		}},
		{"StatefulSet args", func(t *testing.T) []string {
			return statefulSetArgs(t, filepath.Join(deploy, "kubernetes", "statefulset.yaml"))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := tt.args(t)
			if len(args) == 0 {
				t.Fatal("no command line")
			}
			var cmd *cobra.Command
			for _, c := range rootCmd.Commands() {
				if c.Name() == args[0] {
					cmd = c
				}
			}
			if cmd == nil {
				t.Fatalf("%q is no starbook command", args[0])
			}
			t.Cleanup(func() { resetFlags(cmd) })
			flags := args[1:]
			if cmd == serveCmd {
				flags = withoutPending(t, flags)
			}
			if err := cmd.ParseFlags(flags); err != nil {
				t.Fatalf("starbook %s %s: %v", args[0], strings.Join(flags, " "), err)
			}
			if rest := cmd.Flags().Args(); len(rest) > 0 {
				t.Errorf("starbook %s takes no arguments, given %q", args[0], rest)
			}
		})
	}
}

// withoutPending drops the clusterFlags serve does not have yet.
func withoutPending(t *testing.T, args []string) []string {
	var out []string
	for _, a := range args {
		name, _, _ := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		pending := false
		for _, f := range clusterFlags {
			if name == f && serveCmd.Flags().Lookup(f) == nil {
				t.Logf("serve has no --%s yet: not checked", f)
				pending = true
			}
		}
		if !pending {
			out = append(out, a)
		}
	}
	return out
}

// dockerfileArgs returns the JSON-array command of the Dockerfile's
// instruction (CMD, or HEALTHCHECK's CMD), continued lines joined.
func dockerfileArgs(t *testing.T, path, instruction string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	joined := strings.ReplaceAll(string(data), "\\\n", " ")
	for _, line := range strings.Split(joined, "\n") {
		rest, ok := strings.CutPrefix(line, instruction+" ")
		if !ok {
			continue
		}
		if instruction != "CMD" {
			_, rest, _ = strings.Cut(rest, " CMD ")
		}
		var args []string
		if err := json.Unmarshal([]byte(rest), &args); err != nil {
			t.Fatalf("%s: %s %q: %v", path, instruction, rest, err)
		}
		return args
	}
	t.Fatalf("%s: no %s", path, instruction)
	return nil
}

// systemdArgs returns the unit's ExecStart after the binary, with
// $STARBOOK_OPTS replaced by its value in the shipped environment file.
func systemdArgs(t *testing.T, dir string) []string {
	t.Helper()
	unit, err := os.ReadFile(filepath.Join(dir, "starbook.service"))
	if err != nil {
		t.Fatal(err)
	}
	env, err := os.ReadFile(filepath.Join(dir, "starbook.env"))
	if err != nil {
		t.Fatal(err)
	}
	opts := ""
	for _, line := range strings.Split(string(env), "\n") {
		if v, ok := strings.CutPrefix(line, "STARBOOK_OPTS="); ok {
			opts = strings.Trim(v, `"`)
		}
	}
	if opts == "" {
		t.Error("starbook.env sets no STARBOOK_OPTS")
	}
	for _, line := range strings.Split(string(unit), "\n") {
		if v, ok := strings.CutPrefix(line, "ExecStart="); ok {
			fields := strings.Fields(strings.ReplaceAll(v, "$STARBOOK_OPTS", opts))
			if fields[0] != "/usr/local/bin/starbook" {
				t.Fatalf("ExecStart runs %s", fields[0])
			}
			return fields[1:]
		}
	}
	t.Fatal("starbook.service has no ExecStart=")
	return nil
}

// statefulSetArgs returns the args of the StatefulSet's container.
func statefulSetArgs(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var sts struct {
		Spec struct {
			Template struct {
				Spec struct {
					Containers []struct {
						Args []string `json:"args"`
					} `json:"containers"`
				} `json:"spec"`
			} `json:"template"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal(data, &sts); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if c := sts.Spec.Template.Spec.Containers; len(c) == 1 {
		return c[0].Args
	}
	t.Fatalf("%s: want one container", path)
	return nil
}
