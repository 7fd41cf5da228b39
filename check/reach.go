package check

import (
	"cmp"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"go.starlark.net/syntax"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// Facts are what a runbook's code can reach, as far as the scan sees:
// effects called directly or through call()/compensate(), and secrets read
// by a literal name. Arguments that are not literal show as "*".
type Facts struct {
	Effects []Effect
	Secrets []string // sorted, each once
}

// Effect is one effect call site: an HTTP request by method and host, a
// Slack message by channel, or an SSH command by host and user.
type Effect struct {
	Kind    string // "http", "slack" or "ssh"
	Method  string // upper case; "*" for http.request with a computed method
	Host    string // "*" when the URL (or SSH host) is not a literal (or a literal prefix + ...)
	Channel string // "*" when not a literal
	User    string // an SSH command's user; "*" when not a literal
	Runbook string // the runbook a run_runbook starts; "*" when not a literal
	File    string
	Line    int
}

// Unknown stands for a value the scan cannot know.
const Unknown = "*"

func (f *Facts) addSecret(name string) {
	if !slices.Contains(f.Secrets, name) {
		f.Secrets = append(f.Secrets, name)
	}
}

func (f *Facts) sorted() *Facts {
	slices.Sort(f.Secrets)
	slices.SortFunc(f.Effects, func(a, b Effect) int {
		return cmp.Or(cmp.Compare(a.File, b.File), cmp.Compare(a.Line, b.Line), cmp.Compare(a.Kind, b.Kind))
	})
	f.Effects = slices.Compact(f.Effects)
	if f.Secrets == nil {
		f.Secrets = []string{}
	}
	if f.Effects == nil {
		f.Effects = []Effect{}
	}
	return f
}

// reach records the effect name ("http.delete") called at pos with args.
func (s *scanner) reach(name string, pos syntax.Position, args []syntax.Expr) {
	module, member, _ := strings.Cut(name, ".")
	e := Effect{Kind: module, File: pos.Filename(), Line: int(pos.Line)}
	positional, named := splitArgs(args)
	switch module {
	case "http":
		urlArg := 0
		e.Method = strings.ToUpper(member)
		if member == "request" {
			e.Method = strings.ToUpper(literalString(argument(positional, named, 0, "method")))
			urlArg = 1
		}
		e.Host = Unknown
		e.Host = hostOf(argument(positional, named, urlArg, "url"))
	case "slack":
		e.Channel = literalString(argument(positional, named, 0, "channel"))
	case "ssh":
		e.Host = literalString(argument(positional, named, 0, "host"))
		e.User = literalString(named["user"])
		s.knownHost(e.Host, named, pos)
	}
	s.facts.Effects = append(s.facts.Effects, e)
}

// knownHost warns when ssh.run's host and known_hosts are literals and no
// line of known_hosts names the host: the call will be refused.
func (s *scanner) knownHost(host string, named map[string]syntax.Expr, pos syntax.Position) {
	text := literalString(named["known_hosts"])
	if host == Unknown || text == Unknown {
		return
	}
	want := host
	if port, ok := named["port"].(*syntax.Literal); ok && port.Token == syntax.INT {
		if p := fmt.Sprint(port.Value); p != "22" {
			want = "[" + host + "]:" + p
		}
	}
	for rest := []byte(text); len(rest) > 0; {
		_, hosts, _, _, next, err := ssh.ParseKnownHosts(rest)
		if err != nil {
			break
		}
		for _, h := range hosts {
			if strings.HasPrefix(h, "|1|") { // hashed: cannot tell
				return
			}
			if h == want || knownhosts.Normalize(h) == knownhosts.Normalize(want) {
				return
			}
		}
		rest = next
	}
	s.c.at(pos, Warning, "ssh.run to %s: known_hosts has no line for it (want one beginning %q, as ssh-keyscan prints it): every call will be refused", host, want)
}

func splitArgs(args []syntax.Expr) (positional []syntax.Expr, named map[string]syntax.Expr) {
	named = map[string]syntax.Expr{}
	for _, a := range args {
		if kw, ok := a.(*syntax.BinaryExpr); ok && kw.Op == syntax.EQ {
			if id, ok := kw.X.(*syntax.Ident); ok {
				named[id.Name] = kw.Y
			}
			continue
		}
		positional = append(positional, a)
	}
	return positional, named
}

func argument(positional []syntax.Expr, named map[string]syntax.Expr, i int, name string) syntax.Expr {
	if i < len(positional) {
		return positional[i]
	}
	return named[name]
}

// literalString is e's value if it is a string literal, else Unknown.
func literalString(e syntax.Expr) string {
	if lit, ok := e.(*syntax.Literal); ok && lit.Token == syntax.STRING {
		if s, _ := lit.Value.(string); s != "" {
			return s
		}
	}
	return Unknown
}

// literalPrefix is the constant start of a string expression: a literal,
// or the literal left of a + or of a % format; "" when there is none.
func literalPrefix(e syntax.Expr) string {
	switch e := e.(type) {
	case *syntax.Literal:
		if s, ok := e.Value.(string); ok && e.Token == syntax.STRING {
			return s
		}
	case *syntax.ParenExpr:
		return literalPrefix(e.X)
	case *syntax.BinaryExpr:
		if e.Op == syntax.PLUS {
			return literalPrefix(e.X)
		}
		if e.Op == syntax.PERCENT {
			p := literalPrefix(e.X)
			if i := strings.Index(p, "%"); i >= 0 {
				return p[:i]
			}
			return p
		}
	}
	return ""
}

// hostOf is the host of a URL expression: of a literal, or of a literal
// prefix that reaches past the host ("http://api/v1/" + x); else Unknown.
func hostOf(e syntax.Expr) string {
	prefix := literalPrefix(e)
	whole := literalString(e) == prefix
	scheme, rest, ok := strings.Cut(prefix, "://")
	if !ok || (scheme != "http" && scheme != "https") || (!whole && !strings.ContainsAny(rest, "/?#")) {
		return Unknown
	}
	u, err := url.Parse(prefix)
	if err != nil || u.Hostname() == "" {
		return Unknown
	}
	return u.Hostname()
}
