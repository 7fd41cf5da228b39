package main

import (
	"bytes"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"unicode"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"

	"github.com/starbook/starbook/api"
	"github.com/starbook/starbook/service"
	"github.com/starbook/starbook/slackapp"
	"github.com/starbook/starbook/sso"
	"github.com/starbook/starbook/triggers"
)

var update = flag.Bool("update", false, "rewrite docs/cli from the commands' own help")

// repoRoot is the repository, seen from this package's directory.
var repoRoot = filepath.Join("..", "..")

// markdownFiles is README.md and every page under docs/, relative to the
// repository root.
func markdownFiles(t *testing.T) []string {
	t.Helper()
	files := []string{"README.md"}
	err := filepath.WalkDir(filepath.Join(repoRoot, "docs"), func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(path, ".md") {
			rel, err := filepath.Rel(repoRoot, path)
			if err != nil {
				return err
			}
			files = append(files, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func readDoc(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, filepath.FromSlash(name)))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// mdLine is one line of a Markdown file and whether it is code (in a
// fenced block or indented as one).
type mdLine struct {
	n    int
	text string
	code bool
}

// mdLines splits a Markdown file into lines, marking the code ones.
func mdLines(src string) []mdLine {
	var out []mdLine
	fence := ""
	for i, l := range strings.Split(src, "\n") {
		trimmed := strings.TrimSpace(l)
		if fence != "" {
			if strings.HasPrefix(trimmed, fence) {
				fence = ""
			}
			out = append(out, mdLine{i + 1, l, true})
			continue
		}
		if strings.HasPrefix(trimmed, "```") || strings.HasPrefix(trimmed, "~~~") {
			fence = trimmed[:3]
			out = append(out, mdLine{i + 1, l, true})
			continue
		}
		out = append(out, mdLine{i + 1, l, strings.HasPrefix(l, "    ") && !strings.HasPrefix(trimmed, "|")})
	}
	return out
}

var codeSpan = regexp.MustCompile("`+[^`]*`+")

// slug is the anchor GitHub gives a heading: lower case, punctuation
// dropped, spaces to hyphens.
func slug(heading string) string {
	heading = strings.ToLower(strings.TrimSpace(heading))
	var b strings.Builder
	for _, r := range heading {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
			b.WriteRune(r)
		}
	}
	return b.String()
}

// anchors are the #fragments a Markdown file's headings define, with
// GitHub's -1, -2 suffixes for repeated ones.
func anchors(src string) map[string]bool {
	out := map[string]bool{}
	seen := map[string]int{}
	for _, l := range mdLines(src) {
		if l.code || !strings.HasPrefix(l.text, "#") {
			continue
		}
		title := strings.TrimLeft(l.text, "#")
		if !strings.HasPrefix(title, " ") {
			continue
		}
		s := slug(strings.ReplaceAll(title, "`", ""))
		if n := seen[s]; n > 0 {
			out[fmt.Sprintf("%s-%d", s, n)] = true
		} else {
			out[s] = true
		}
		seen[s]++
	}
	return out
}

var mdLink = regexp.MustCompile(`\]\(([^)\s]+)\)`)

// TestDocsLinks follows every relative link in README.md and docs/: the
// file must exist and its #anchor must be one of that file's headings.
func TestDocsLinks(t *testing.T) {
	links := 0
	for _, file := range markdownFiles(t) {
		src := readDoc(t, file)
		for _, l := range mdLines(src) {
			if l.code {
				continue
			}
			for _, m := range mdLink.FindAllStringSubmatch(codeSpan.ReplaceAllString(l.text, ""), -1) {
				target := m[1]
				if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
					continue
				}
				links++
				path, anchor, _ := strings.Cut(target, "#")
				dest := file
				if path != "" {
					dest = filepath.ToSlash(filepath.Join(filepath.Dir(file), path))
				}
				b, err := os.ReadFile(filepath.Join(repoRoot, filepath.FromSlash(dest)))
				if err != nil {
					t.Errorf("%s:%d: link %s: no file %s", file, l.n, target, dest)
					continue
				}
				if anchor != "" && !anchors(string(b))[anchor] {
					t.Errorf("%s:%d: link %s: %s has no heading #%s", file, l.n, target, dest, anchor)
				}
			}
		}
	}
	if links < 50 {
		t.Fatalf("found %d relative links: the parser is broken", links)
	}
}

// cliDocs writes the generated CLI reference into dir.
func cliDocs(t *testing.T, dir string) {
	t.Helper()
	// The generated files must not depend on the machine or on which test
	// ran first: no date stamp, --server's default rather than
	// $STARBOOK_SERVER, and cobra's own help and completion commands added
	// as Execute adds them.
	rootCmd.DisableAutoGenTag = true
	server := rootCmd.PersistentFlags().Lookup("server")
	saved := server.DefValue
	server.DefValue = defaultServer
	defer func() { server.DefValue = saved }()
	rootCmd.InitDefaultHelpCmd()
	rootCmd.InitDefaultCompletionCmd()
	if err := doc.GenMarkdownTree(rootCmd, dir); err != nil {
		t.Fatal(err)
	}
}

// TestCLIDocs regenerates docs/cli from the commands' own help with cobra's
// doc generator and fails when the committed files differ (-update rewrites
// them).
func TestCLIDocs(t *testing.T) {
	want := filepath.Join(repoRoot, "docs", "cli")
	got := t.TempDir()
	cliDocs(t, got)
	if *update {
		if err := os.RemoveAll(want); err != nil {
			t.Fatal(err)
		}
		if err := os.CopyFS(want, os.DirFS(got)); err != nil {
			t.Fatal(err)
		}
		return
	}
	gotFiles, _ := filepath.Glob(filepath.Join(got, "*.md"))
	wantFiles, _ := filepath.Glob(filepath.Join(want, "*.md"))
	base := func(paths []string) []string {
		out := make([]string, len(paths))
		for i, p := range paths {
			out[i] = filepath.Base(p)
		}
		sort.Strings(out)
		return out
	}
	if g, w := base(gotFiles), base(wantFiles); !slices.Equal(g, w) {
		t.Fatalf("docs/cli has %v, the commands make %v: run go test ./cmd/starbook -run TestCLIDocs -update", w, g)
	}
	for _, p := range gotFiles {
		g, _ := os.ReadFile(p)
		w, err := os.ReadFile(filepath.Join(want, filepath.Base(p)))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(g, w) {
			t.Errorf("docs/cli/%s differs from the command's help: run go test ./cmd/starbook -run TestCLIDocs -update", filepath.Base(p))
		}
	}
	if len(gotFiles) < 30 {
		t.Errorf("only %d generated pages: is rootCmd missing commands?", len(gotFiles))
	}
}

// servedRoutes are the routes a node serves ("METHOD /path", wildcards
// as {}), from the patterns registered on its mux and on its API handler,
// with every optional part configured (hooks, members, single sign-on,
// Slack).
func servedRoutes(t *testing.T) []string {
	t.Helper()
	h := api.NewHandler(service.New(nil, nil), nil,
		api.WithHooks(&triggers.Dispatcher{}, api.AlertmanagerAuth{}), api.WithMembers(nil))
	lister, ok := h.(interface{ Patterns() []string })
	if !ok {
		t.Fatal("the API handler lists no patterns")
	}
	mux := nodeMux(http.NotFoundHandler(), &sso.RelyingParty{}, h, &slackapp.App{})
	var out []string
	for _, p := range append(mux.patterns, lister.Patterns()...) {
		if !strings.Contains(p, " ") {
			continue // "/": the API's mount, listed by its own patterns
		}
		out = append(out, normalizeRoute(p))
	}
	return out
}

var wildcard = regexp.MustCompile(`\{[^}]*\}`)

// normalizeRoute makes a pattern and a documented route comparable:
// wildcards as {}, "/{$}" as "/", no query.
func normalizeRoute(r string) string {
	r, _, _ = strings.Cut(r, "?")
	r, _, _ = strings.Cut(r, "[")
	r = strings.ReplaceAll(r, "{$}", "")
	return wildcard.ReplaceAllString(r, "{}")
}

var docRoute = regexp.MustCompile("`((?:GET|POST|PUT|PATCH|DELETE) /[^` ]*)")

// documentedRoutes are the routes docs/api.md's tables list: each code
// span opening with a method in a row's first cell.
func documentedRoutes(t *testing.T) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, l := range mdLines(readDoc(t, "docs/api.md")) {
		if l.code || !strings.HasPrefix(l.text, "| `") {
			continue
		}
		cell := strings.Split(l.text, " | ")[0]
		for _, m := range docRoute.FindAllStringSubmatch(cell, -1) {
			out[normalizeRoute(m[1])] = l.n
		}
	}
	return out
}

// TestAPIDocsRoutes holds docs/api.md against the routes the node
// registers: an undocumented route fails, and so does a documented one
// the node does not serve.
func TestAPIDocsRoutes(t *testing.T) {
	served := servedRoutes(t)
	documented := documentedRoutes(t)
	for _, r := range served {
		if _, ok := documented[r]; !ok {
			t.Errorf("route %s is served but not in docs/api.md", r)
		}
	}
	for r, line := range documented {
		if !slices.Contains(served, r) {
			t.Errorf("docs/api.md:%d: %s is documented but not served", line, r)
		}
	}
	if len(served) < 50 {
		t.Errorf("only %d routes served: is a part of the node missing?", len(served))
	}
	// A route named anywhere else must exist too (the library page names
	// other services' APIs; "/api/v1/..." is a family, not a route).
	for _, file := range markdownFiles(t) {
		if file == "docs/library.md" || strings.HasPrefix(file, "docs/cli/") {
			continue
		}
		for _, l := range mdLines(readDoc(t, file)) {
			for _, m := range docRoute.FindAllStringSubmatch(l.text, -1) {
				r := normalizeRoute(angleWildcard.ReplaceAllString(m[1], "{}"))
				if !strings.Contains(r, "...") && !slices.Contains(served, r) {
					t.Errorf("%s:%d: %s is not a route the node serves", file, l.n, m[1])
				}
			}
		}
	}
}

var angleWildcard = regexp.MustCompile(`<[a-z_]+>`)

// invocation is one "starbook ..." command line in the docs.
type invocation struct {
	where string
	words []string
}

// starbookAt finds a command that runs starbook: at the start of a code
// span or line, or after a shell separator; after a "$ " prompt, variable
// assignments or "go run ./cmd/".
var starbookAt = regexp.MustCompile(`(?:^|[|;&(]\s*)(?:\$\s+)?(?:[A-Z_]+=\S*\s+)*(?:go run \./cmd/)?starbook\s+`)

// invocations finds the starbook command lines in code: code spans of
// prose lines and whole code lines, each up to a shell separator or a
// comment.
func invocations(t *testing.T) []invocation {
	t.Helper()
	var out []invocation
	for _, file := range markdownFiles(t) {
		if strings.HasPrefix(file, "docs/cli/") {
			continue // generated from the commands: TestCLIDocs covers it
		}
		for _, l := range mdLines(readDoc(t, file)) {
			var segments []string
			if l.code {
				segments = []string{l.text}
			} else {
				for _, s := range codeSpan.FindAllString(l.text, -1) {
					segments = append(segments, strings.Trim(s, "`"))
				}
			}
			for _, s := range segments {
				s = strings.TrimSpace(s)
				for _, loc := range starbookAt.FindAllStringIndex(s, -1) {
					rest := s[loc[1]:]
					rest = regexp.MustCompile(`\s#|;|&&|\|\||\s\|\s|\)|\$\(|>|<`).Split(rest, 2)[0]
					out = append(out, invocation{fmt.Sprintf("%s:%d", file, l.n), strings.Fields(rest)})
				}
			}
		}
	}
	return out
}

// splitAlternatives splits a word of the docs' a\|b (a table's a|b) into
// its alternatives.
func splitAlternatives(w string) []string {
	return strings.Split(strings.ReplaceAll(w, `\|`, "|"), "|")
}

var commandWord = regexp.MustCompile(`^[a-z][a-z-]*$`)

// TestDocsCommandsExist checks every "starbook CMD [SUB] --flag" in
// README.md and docs/ against rootCmd: each command word must be a command
// and each flag one of that command's (or a parent's persistent) flags.
func TestDocsCommandsExist(t *testing.T) {
	rootCmd.InitDefaultHelpCmd()
	rootCmd.InitDefaultCompletionCmd()
	checked := 0
	for _, inv := range invocations(t) {
		cmds := []*cobra.Command{rootCmd}
		positional := false
		for _, w := range inv.words {
			for _, alt := range splitAlternatives(w) {
				if problem := checkWord(&cmds, &positional, alt); problem != "" {
					t.Errorf("%s: starbook %s: %s", inv.where, strings.Join(inv.words, " "), problem)
				}
			}
			if len(cmds) == 0 {
				break
			}
			checked++
		}
	}
	if checked < 100 {
		t.Fatalf("checked %d words of starbook command lines: the parser is broken", checked)
	}
}

// checkWord moves along one word of a command line: a subcommand of each of
// cmds (alternatives a|b each), a flag they must all have, or a positional
// argument after which no subcommand follows. It returns what is wrong, if
// anything; cmds becomes empty for a sibling branch's command not yet here.
func checkWord(cmds *[]*cobra.Command, positional *bool, word string) string {
	word = strings.Trim(word, "[]`\"',.:")
	if word == "" || word == "..." {
		return ""
	}
	if strings.HasPrefix(word, "-") && word != "-" {
		name, _, _ := strings.Cut(strings.TrimLeft(word, "-"), "=")
		if name == "" || !commandWord.MatchString(name) && len(name) > 1 {
			return ""
		}
		for _, c := range *cmds {
			if !hasFlag(c, word, name) {
				return fmt.Sprintf("%s has no flag %s", c.CommandPath(), word)
			}
		}
		return ""
	}
	if *positional {
		return ""
	}
	var next []*cobra.Command
	for _, c := range *cmds {
		if sub, _, err := c.Find([]string{word}); err == nil && sub != c {
			next = append(next, sub)
		}
	}
	if len(next) > 0 {
		*cmds = next
		return ""
	}
	if len(*cmds) == 1 && (*cmds)[0] == rootCmd && commandWord.MatchString(word) {
		return fmt.Sprintf("no command %q", word)
	}
	*positional = true
	return ""
}

// hasFlag reports whether c takes the flag spelled word (name without its
// dashes); a command that parses its own flags must name it in its help.
func hasFlag(c *cobra.Command, word, name string) bool {
	if name == "h" || name == "help" {
		return true
	}
	if c.DisableFlagParsing {
		spelled, _, _ := strings.Cut(word, "=")
		return strings.Contains(c.Long, spelled)
	}
	if len(name) == 1 && !strings.HasPrefix(word, "--") {
		return c.Flags().ShorthandLookup(name) != nil || c.InheritedFlags().ShorthandLookup(name) != nil
	}
	return c.Flags().Lookup(name) != nil || c.InheritedFlags().Lookup(name) != nil
}
