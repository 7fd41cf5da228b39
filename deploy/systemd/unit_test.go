package systemd_test

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// unit is a parsed unit file: section -> key -> values, in file order (a
// key may repeat, as SystemCallFilter= does).
type unit map[string]map[string][]string

// parseUnit reads a unit file: [Section] headers, Key=Value lines, '#' and
// ';' comments, and lines continued with a trailing backslash.
func parseUnit(data []byte) (unit, error) {
	u := unit{}
	section := ""
	sc := bufio.NewScanner(bytes.NewReader(data))
	n, pending := 0, ""
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if pending != "" {
			line, pending = pending+" "+line, ""
		}
		if strings.HasSuffix(line, `\`) {
			pending = strings.TrimSuffix(line, `\`)
			continue
		}
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case line[0] == '[' && line[len(line)-1] == ']':
			section = line[1 : len(line)-1]
			if u[section] != nil {
				return nil, fmt.Errorf("line %d: section [%s] again", n, section)
			}
			u[section] = map[string][]string{}
		default:
			key, value, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				return nil, fmt.Errorf("line %d: %q is not Key=Value in a section", n, line)
			}
			key = strings.TrimSpace(key)
			u[section][key] = append(u[section][key], strings.TrimSpace(value))
		}
	}
	if pending != "" {
		return nil, fmt.Errorf("line %d: continued past the end", n)
	}
	return u, sc.Err()
}

// last returns the value that counts for key: the last one.
func (u unit) last(section, key string) (string, bool) {
	v := u[section][key]
	if len(v) == 0 {
		return "", false
	}
	return v[len(v)-1], true
}

func readUnit(t *testing.T) unit {
	t.Helper()
	data, err := os.ReadFile("starbook.service")
	if err != nil {
		t.Fatal(err)
	}
	u, err := parseUnit(data)
	if err != nil {
		t.Fatalf("starbook.service: %v", err)
	}
	return u
}

func TestParseUnit(t *testing.T) {
	tests := []struct {
		name, in string
		want     unit
		wantErr  string
	}{
		{"sections and repeats", "# c\n[Service]\nA=1\n; c\nA=2\nB = x y\n",
			unit{"Service": {"A": {"1", "2"}, "B": {"x y"}}}, ""},
		{"continuation", "[Service]\nExecStart=/bin/x \\\n  --flag\n",
			unit{"Service": {"ExecStart": {"/bin/x  --flag"}}}, ""},
		{"outside a section", "A=1\n", nil, "not Key=Value in a section"},
		{"no equals", "[Service]\nA\n", nil, "not Key=Value"},
		{"section twice", "[Service]\n[Service]\n", nil, "section [Service] again"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseUnit([]byte(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestUnitDirectives(t *testing.T) {
	u := readUnit(t)
	tests := []struct {
		key  string
		want string // the exact value
	}{
		{"DynamicUser", "yes"},
		{"StateDirectory", "starbook"},
		{"ProtectSystem", "strict"},
		{"ProtectHome", "yes"},
		{"PrivateTmp", "yes"},
		{"PrivateDevices", "yes"},
		{"NoNewPrivileges", "yes"},
		{"CapabilityBoundingSet", ""},
		{"AmbientCapabilities", ""},
		{"RestrictAddressFamilies", "AF_UNIX AF_INET AF_INET6"},
		{"SystemCallArchitectures", "native"},
		{"MemoryDenyWriteExecute", "yes"},
		{"RestrictSUIDSGID", "yes"},
		{"LockPersonality", "yes"},
		{"LimitNOFILE", "65536"},
		{"Restart", "on-failure"},
		{"EnvironmentFile", "-/etc/starbook/starbook.env"},
		{"UMask", "0077"},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			got, ok := u.last("Service", tt.key)
			if !ok {
				t.Fatalf("[Service] has no %s=", tt.key)
			}
			if got != tt.want {
				t.Errorf("%s=%s, want %s=%s", tt.key, got, tt.key, tt.want)
			}
		})
	}
	if filters := u["Service"]["SystemCallFilter"]; !slices.Contains(filters, "@system-service") {
		t.Errorf("SystemCallFilter %v: want @system-service", filters)
	}
	execStart, _ := u.last("Service", "ExecStart")
	if !strings.HasPrefix(execStart, "/usr/local/bin/starbook serve ") || !strings.Contains(execStart, "--data-dir=/var/lib/starbook") {
		t.Errorf("ExecStart=%s: want starbook serve with its data in the StateDirectory", execStart)
	}
	if got, _ := u.last("Install", "WantedBy"); got != "multi-user.target" {
		t.Errorf("WantedBy=%s, want multi-user.target", got)
	}
}

// TestSystemdAnalyze has systemd itself parse the unit (any warning fails)
// and rate its sandbox, where systemd-analyze is installed. CI does not
// install systemd for it.
func TestSystemdAnalyze(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not installed")
	}
	// verify wants ExecStart's binary to exist: point it at a stand-in.
	dir := t.TempDir()
	bin := filepath.Join(dir, "starbook")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile("starbook.service")
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "starbook.service")
	data = bytes.ReplaceAll(data, []byte("/usr/local/bin/starbook"), []byte(bin))
	if err := os.WriteFile(file, data, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.CommandContext(t.Context(), analyze, "verify", file).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	// Exposure runs 0 (locked down) to 10; 2.0 is far inside "OK".
	out, err = exec.CommandContext(t.Context(), analyze, "security", "--offline=true", "--threshold=20", file).CombinedOutput()
	if err != nil {
		t.Errorf("systemd-analyze security: exposure above 2.0 (%v):\n%s", err, out)
	}
}
