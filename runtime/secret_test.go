package runtime_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"log/slog"
	"net/url"
	"strings"
	"testing"

	"github.com/starbook/starbook/runtime"
)

func TestScrubberForms(t *testing.T) {
	const value = `p<a>s"s&w\rd`
	s := runtime.NewScrubber()
	s.Add(value, "<secret PW>")
	s.Add("ab", "<secret SHORT>") // too short to scrub
	forms := []string{
		value,
		`p\u003ca\u003es\"s\u0026w\\rd`,        // json.Marshal
		`p<a>s\"s&w\\rd`,                       // without HTML escaping
		`p\\u003ca\\u003es\\\"s\\u0026w\\\\rd`, // escaped twice: a JSON body inside a result
		base64.StdEncoding.EncodeToString([]byte(value)),
		base64.RawURLEncoding.EncodeToString([]byte(value)),
		url.QueryEscape(value),
		url.PathEscape(value),
	}
	for _, f := range forms {
		got := s.Scrub("before " + f + " after")
		if got != "before <secret PW> after" {
			t.Errorf("Scrub(%q) = %q", f, got)
		}
		if !s.Contains("x" + f) {
			t.Errorf("Contains(%q) = false", f)
		}
	}
	if got := s.Scrub("ab cd"); got != "ab cd" {
		t.Errorf("a two-character secret was scrubbed: %q", got)
	}
	// A secret that contains another is replaced whole.
	s.Add("token-123", "<secret A>")
	s.Add("prefix-token-123-suffix", "<secret B>")
	if got := s.Scrub("prefix-token-123-suffix"); got != "<secret B>" {
		t.Errorf("nested secrets: %q", got)
	}
	var nilScrubber *runtime.Scrubber
	if nilScrubber.Scrub("x") != "x" || nilScrubber.Contains("x") || !nilScrubber.Empty() {
		t.Error("a nil scrubber changes text")
	}
}

func TestScrubberLogHandler(t *testing.T) {
	const value = "hunter2-very-secret"
	var buf bytes.Buffer
	s := runtime.NewScrubber()
	logger := slog.New(s.LogHandler(slog.NewJSONHandler(&buf, nil)))
	logger.Info("before any secret is known", "v", "plain")
	s.Add(value, "<secret PW>")
	logger.With("with", "w "+value).WithGroup("g").Info("msg "+value, "str", value, "err", errors.New("failed: "+value),
		value, 1, slog.Group("grp", "inner", value), "any", struct{ S string }{value}, "n", 42)
	out := buf.String()
	if strings.Contains(out, value) || strings.Contains(out, base64.StdEncoding.EncodeToString([]byte(value))) {
		t.Fatalf("log holds the secret:\n%s", out)
	}
	for _, want := range []string{`"msg":"msg <secret PW>"`, `"with":"w <secret PW>"`, `"str":"<secret PW>"`,
		`"err":"failed: <secret PW>"`, `"<secret PW>":1`, `"inner":"<secret PW>"`, `"n":42`, `"v":"plain"`} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %s:\n%s", want, out)
		}
	}
}
