package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
	"github.com/rogpeppe/go-internal/txtar"
)

// TestMain lets testscript run this test binary as the starbook command
// (docs/tutorial.md's commands run the real CLI in a process of its own).
func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"starbook": func() { main() },
	})
}

// docAddr is the address the docs give a node; the tutorial's node listens
// on a free port instead, and the commands are pointed at it.
const docAddr = "127.0.0.1:7070"

// tutorialStep is one "$ " command of the tutorial and the output it shows.
type tutorialStep struct {
	line int
	cmd  string
	want []string
}

// tutorial is what docs/tutorial.md holds: its files (fenced blocks whose
// info string names one: ```python disk_full.star) and its commands
// (```console blocks: "$ " lines, each followed by the output it shows).
type tutorial struct {
	files map[string]string
	steps []tutorialStep
}

// parseTutorial reads the files and commands out of the tutorial's
// Markdown, in order.
func parseTutorial(src string) (*tutorial, error) {
	tut := &tutorial{files: map[string]string{}}
	lines := strings.Split(src, "\n")
	for i := 0; i < len(lines); i++ {
		info, ok := strings.CutPrefix(lines[i], "```")
		if !ok {
			continue
		}
		fields := strings.Fields(info)
		start := i + 1
		for i++; i < len(lines) && !strings.HasPrefix(lines[i], "```"); i++ {
		}
		if i == len(lines) {
			return nil, fmt.Errorf("line %d: unclosed code block", start)
		}
		body := lines[start:i]
		switch {
		case len(fields) == 1 && fields[0] == "console":
			for j, l := range body {
				if cmd, ok := strings.CutPrefix(l, "$ "); ok {
					tut.steps = append(tut.steps, tutorialStep{line: start + j + 1, cmd: cmd})
				} else if len(tut.steps) > 0 && strings.TrimSpace(l) != "" {
					s := &tut.steps[len(tut.steps)-1]
					s.want = append(s.want, l)
				}
			}
		case len(fields) == 2:
			tut.files[fields[1]] = strings.Join(body, "\n") + "\n"
		}
	}
	return tut, nil
}

// shellWords splits a command line as sh would for the quoting the docs
// use: single and double quotes and backslash escapes, no expansion.
func shellWords(s string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		case c == '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return nil, fmt.Errorf("unclosed ' in %q", s)
			}
			cur.WriteString(s[i+1 : i+1+j])
			i += j + 1
			inWord = true
		case c == '"':
			i++
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) {
					i++
				}
				cur.WriteByte(s[i])
			}
			if i == len(s) {
				return nil, fmt.Errorf("unclosed \" in %q", s)
			}
			inWord = true
		case c == '\\' && i+1 < len(s):
			i++
			cur.WriteByte(s[i])
			inWord = true
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}

var placeholder = regexp.MustCompile(`<([A-Z]+)>`)

// wantLine turns one shown output line into a regexp over a printed line:
// runs of blanks match any blanks, "..." anything, and <NAME> the value of
// $NAME where a command set it, else any word (captured as NAME).
func wantLine(line string, getenv func(string) string) *regexp.Regexp {
	var b strings.Builder
	b.WriteString(`^\s*`)
	rest := strings.TrimSpace(line)
	for rest != "" {
		loc := regexp.MustCompile(`\s+|\.\.\.|<[A-Z]+>`).FindStringIndex(rest)
		if loc == nil {
			b.WriteString(regexp.QuoteMeta(rest))
			break
		}
		b.WriteString(regexp.QuoteMeta(rest[:loc[0]]))
		tok := rest[loc[0]:loc[1]]
		switch {
		case strings.TrimSpace(tok) == "":
			b.WriteString(`\s+`)
		case tok == "...":
			b.WriteString(`.*`)
		default:
			name := tok[1 : len(tok)-1]
			if v := getenv(name); v != "" {
				b.WriteString(regexp.QuoteMeta(v))
			} else if !strings.Contains(b.String(), "(?P<"+name+">") {
				b.WriteString(`(?P<` + name + `>\S+?)`)
			} else {
				b.WriteString(`\S+?`)
			}
		}
		rest = rest[loc[1]:]
	}
	b.WriteString(`\s*$`)
	return regexp.MustCompile(b.String())
}

// matchOutput finds want's lines in got, in order ("..." alone skips
// lines, which is what any gap does): it returns the captured placeholders,
// or the first line it could not find.
func matchOutput(got string, want []string, getenv func(string) string) (map[string]string, string) {
	captured := map[string]string{}
	lookup := func(name string) string {
		if v, ok := captured[name]; ok {
			return v
		}
		return getenv(name)
	}
	gotLines := strings.Split(got, "\n")
	next := 0
	for _, w := range want {
		if strings.TrimSpace(w) == "..." {
			continue
		}
		re := wantLine(w, lookup)
		found := false
		for ; next < len(gotLines); next++ {
			m := re.FindStringSubmatch(gotLines[next])
			if m == nil {
				continue
			}
			for i, name := range re.SubexpNames() {
				if name != "" {
					captured[name] = m[i]
				}
			}
			next++
			found = true
			break
		}
		if !found {
			return nil, w
		}
	}
	return captured, ""
}

// readOnly are the commands a step may run again until its output shows:
// the run they look at moves on its own, as a reader who looks too early
// would look again.
var readOnly = map[string]bool{"ls": true, "show": true}

// TestTutorial runs docs/tutorial.md: its files are written, its commands
// run in order by testscript against a real node (this binary's starbook
// serve on embedded etcd, on free ports), and each output it shows must
// be in what the command printed. The script is made from the Markdown at
// every run, so the page cannot drift from it.
func TestTutorial(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a node")
	}
	src := readDoc(t, "docs/tutorial.md")
	tut, err := parseTutorial(src)
	if err != nil {
		t.Fatal(err)
	}
	if len(tut.steps) < 8 || len(tut.files) < 3 {
		t.Fatalf("found %d commands and %d files in docs/tutorial.md: the parser is broken", len(tut.steps), len(tut.files))
	}
	ar := &txtar.Archive{Comment: []byte("# made from docs/tutorial.md by TestTutorial\n")}
	var script strings.Builder
	for i, s := range tut.steps {
		words, err := shellWords(s.cmd)
		if err != nil {
			t.Fatalf("docs/tutorial.md:%d: %v", s.line, err)
		}
		if len(words) >= 2 && words[0] == "starbook" && words[1] == "serve" {
			// A node runs until stopped: in the background, then wait until
			// it is ready.
			fmt.Fprintf(&script, "exec")
			for _, w := range words {
				if w == docAddr {
					script.WriteString(" $ADDR") // testscript expands it outside quotes only
					continue
				}
				if strings.Contains(w, "$") {
					t.Fatalf("docs/tutorial.md:%d: %s: testscript would expand $ in %q", s.line, s.cmd, w)
				}
				fmt.Fprintf(&script, " '%s'", strings.ReplaceAll(w, "'", "''"))
			}
			fmt.Fprintf(&script, " &\nwaitready\n")
			continue
		}
		ar.Files = append(ar.Files,
			txtar.File{Name: fmt.Sprintf("steps/%d.cmd", i), Data: []byte(s.cmd + "\n")},
			txtar.File{Name: fmt.Sprintf("steps/%d.want", i), Data: []byte(strings.Join(s.want, "\n") + "\n")})
		fmt.Fprintf(&script, "# docs/tutorial.md:%d\ndoc %d %d\n", s.line, i, s.line)
	}
	// The placeholders a command uses (<ID>) are set by the output that
	// shows them first; the others (<TIME>) stand for any word.
	vars := map[string]bool{}
	for _, s := range tut.steps {
		for _, m := range placeholder.FindAllStringSubmatch(s.cmd, -1) {
			vars[m[1]] = true
		}
	}
	var names []string
	for name := range vars {
		names = append(names, name)
	}
	ar.Files = append(ar.Files, txtar.File{Name: "steps/vars", Data: []byte(strings.Join(names, "\n") + "\n")})
	ar.Comment = append(ar.Comment, script.String()...)
	for name, data := range tut.files {
		ar.Files = append(ar.Files, txtar.File{Name: name, Data: []byte(data)})
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "tutorial.txtar"), txtar.Format(ar), 0o644); err != nil {
		t.Fatal(err)
	}

	deadline := time.Now().Add(3 * time.Minute)
	if d, ok := t.Deadline(); ok && d.Before(deadline) {
		deadline = d.Add(-10 * time.Second)
	}
	testscript.Run(t, testscript.Params{
		Dir:                 dir,
		RequireExplicitExec: true,
		Deadline:            deadline,
		Setup: func(env *testscript.Env) error {
			addr, err := freeAddr()
			if err != nil {
				return err
			}
			env.Setenv("ADDR", addr)
			env.Setenv("STARBOOK_SERVER", "http://"+addr)
			env.Setenv("STARBOOK_USER", "tutorial")
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"waitready": waitReady,
			"doc":       runDocStep,
		},
	})
}

// freeAddr is a loopback address with a port free a moment ago.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// waitReady waits until the node at $ADDR answers /readyz with 200.
func waitReady(ts *testscript.TestScript, neg bool, args []string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	url := "http://" + ts.Getenv("ADDR") + "/readyz"
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-ctx.Done():
			ts.Fatalf("the node at %s was not ready within a minute", url)
		case <-tick.C:
		}
	}
}

// runDocStep runs step N of the tutorial (steps/N.cmd; LINE is where the
// page has it): <NAME> in the command is $NAME as an earlier output set it,
// the docs' node address the test node's; it must exit 0 and print the
// lines of steps/N.want. A read-only command runs again until they show.
func runDocStep(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 || neg {
		ts.Fatalf("usage: doc N LINE")
	}
	where := "docs/tutorial.md:" + args[1]
	cmdLine := strings.TrimSpace(ts.ReadFile("steps/" + args[0] + ".cmd"))
	want := strings.Split(strings.TrimRight(ts.ReadFile("steps/"+args[0]+".want"), "\n"), "\n")
	if len(want) == 1 && want[0] == "" {
		want = nil
	}
	words, err := shellWords(cmdLine)
	if err != nil {
		ts.Fatalf("%s: %v", where, err)
	}
	for i, w := range words {
		w = strings.ReplaceAll(w, docAddr, ts.Getenv("ADDR"))
		words[i] = placeholder.ReplaceAllStringFunc(w, func(p string) string {
			v := ts.Getenv(p[1 : len(p)-1])
			if v == "" {
				ts.Fatalf("%s: %s: no earlier output gave %s", where, cmdLine, p)
			}
			return v
		})
	}
	vars := strings.Fields(ts.ReadFile("steps/vars"))
	getenv := func(name string) string {
		if slices.Contains(vars, name) {
			return ts.Getenv(name)
		}
		return ""
	}
	retry := words[0] == "starbook" && len(words) > 1 && readOnly[words[1]]
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	missing := ""
	for {
		err := ts.Exec(words[0], words[1:]...)
		if err != nil && !retry {
			ts.Fatalf("%s: %s: %v", where, cmdLine, err)
		}
		if err == nil {
			var captured map[string]string
			captured, missing = matchOutput(ts.ReadFile("stdout"), want, getenv)
			if missing == "" {
				for name, v := range captured {
					if slices.Contains(vars, name) {
						ts.Setenv(name, v)
					}
				}
				return
			}
			if !retry {
				ts.Fatalf("%s: %s: the page shows %q, the command did not print it", where, cmdLine, missing)
			}
		}
		select {
		case <-ctx.Done():
			ts.Fatalf("%s: %s: the page shows %q, the command did not print it within 30s (last error: %v)", where, cmdLine, missing, err)
		case <-tick.C:
		}
	}
}
