package reference

import (
	"cmp"
	"slices"
	"strings"
	"sync"
)

// Kind says what an entry documents.
type Kind int

// Kinds of entries.
const (
	Function Kind = iota // a built-in or library function: call(...)
	Module               // a module of members: http, trigger, @std/k8s.star
	Value                // a name a runbook sets (input_schema)
)

// Entry is the documentation of one name.
type Entry struct {
	// Name is how a runbook spells it: "call", "http.post", "k8s.rollout_restart".
	Name string
	// Signature is the call with its parameters, "http.post(url, json=, ...)";
	// a module's is its name.
	Signature string
	// Summary is one line.
	Summary string
	// Doc is Markdown; it may be empty when Summary says all.
	Doc string
	// Kind is what the name is.
	Kind Kind
	// Module is the load() path of a library entry ("@std/k8s.star");
	// empty for a built-in.
	Module string
}

// Markdown is the entry as hover shows it: the signature in a code block,
// then the summary and the doc.
func (e Entry) Markdown() string {
	var b strings.Builder
	b.WriteString("```python\n" + e.Signature + "\n```\n\n")
	if e.Module != "" {
		b.WriteString("From `load(\"" + e.Module + "\", ...)`.\n\n")
	}
	b.WriteString(e.Summary)
	if e.Doc != "" {
		b.WriteString("\n\n" + e.Doc)
	}
	return b.String()
}

// Text is the entry as `starbook doc NAME` prints it in a terminal.
func (e Entry) Text() string {
	var b strings.Builder
	b.WriteString(e.Signature + "\n")
	if e.Module != "" {
		b.WriteString("    load(\"" + e.Module + "\", ...)\n")
	}
	b.WriteString("\n" + e.Summary + "\n")
	if e.Doc != "" {
		b.WriteString("\n" + strings.TrimRight(e.Doc, "\n") + "\n")
	}
	return b.String()
}

// Params are the parameter names of a function's signature, in order, as
// written ("*args", "retry=" -> "retry"); nil for a module.
func (e Entry) Params() []string {
	open := strings.Index(e.Signature, "(")
	end := strings.LastIndex(e.Signature, ")")
	if open < 0 || end < open {
		return nil
	}
	var out []string
	depth := 0
	start := open + 1
	inner := e.Signature[:end]
	for i := open + 1; i <= len(inner); i++ {
		if i < len(inner) {
			switch inner[i] {
			case '(', '[', '{':
				depth++
				continue
			case ')', ']', '}':
				depth--
				continue
			case ',':
				if depth != 0 {
					continue
				}
			default:
				continue
			}
		}
		p := strings.TrimSpace(inner[start:i])
		start = i + 1
		if p != "" {
			out = append(out, p)
		}
	}
	return out
}

var (
	once  sync.Once
	all   []Entry
	index map[string]int
)

func load() {
	all = append(slices.Clone(builtinEntries), stdEntries()...)
	slices.SortStableFunc(all, func(a, b Entry) int { return cmp.Compare(a.Name, b.Name) })
	index = make(map[string]int, len(all))
	for i, e := range all {
		index[e.Name] = i
	}
}

// All returns every entry, sorted by name. The slice is the caller's.
func All() []Entry {
	once.Do(load)
	return slices.Clone(all)
}

// Lookup returns the entry of name ("http.post", "k8s", "@std/k8s.star").
func Lookup(name string) (Entry, bool) {
	once.Do(load)
	if strings.HasPrefix(name, "@std/") {
		name = strings.TrimSuffix(strings.TrimPrefix(name, "@std/"), ".star")
	}
	i, ok := index[name]
	if !ok {
		return Entry{}, false
	}
	return all[i], true
}

// Members returns the entries of a module's members ("http" ->
// http.get, http.post, ...), sorted.
func Members(module string) []Entry {
	once.Do(load)
	var out []Entry
	for _, e := range all {
		if strings.HasPrefix(e.Name, module+".") {
			out = append(out, e)
		}
	}
	return out
}
