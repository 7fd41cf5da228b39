package archtest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"slices"
	"strings"
)

// Package is one package of a [Graph]: what its non-test files import, what
// its in-package _test.go files add, and what its external (package x_test)
// tests import. All are import paths.
type Package struct {
	Path         string
	Imports      []string
	TestImports  []string
	XTestImports []string
}

// Graph is an import graph: the packages of Module and everything they and
// their tests import, keyed by import path.
type Graph struct {
	Module   string
	Packages map[string]*Package
}

// Load lists patterns (import paths or patterns such as "example.com/m/...")
// and their dependencies, tests included, with `go list -deps -test`, run from
// the current directory with the go command on PATH. The graph's Module is
// the main module's path. Loading fails if go list reports any error, such as a
// package that does not compile its imports.
func Load(ctx context.Context, patterns ...string) (*Graph, error) {
	args := append([]string{"list", "-deps", "-test", "-json=ImportPath,ForTest,Imports,TestImports,XTestImports,Module"}, patterns...)
	cmd := exec.CommandContext(ctx, "go", args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("go list: %w\n%s", err, stderr.Bytes())
	}
	g := &Graph{Packages: map[string]*Package{}}
	dec := json.NewDecoder(&stdout)
	for {
		var p struct {
			ImportPath, ForTest                string
			Imports, TestImports, XTestImports []string
			Module                             *struct {
				Path string
				Main bool
			}
		}
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, fmt.Errorf("decode go list output: %w", err)
		}
		// Keep the plain packages: -test adds variants compiled for one
		// package's test ("p [q.test]", "q_test [q.test]") and test mains
		// ("q.test"), whose imports are those of the plain packages plus the
		// TestImports and XTestImports recorded on them.
		if p.ForTest != "" || strings.Contains(p.ImportPath, " ") || strings.HasSuffix(p.ImportPath, ".test") {
			continue
		}
		if p.Module != nil && p.Module.Main {
			g.Module = p.Module.Path
		}
		g.Packages[p.ImportPath] = &Package{Path: p.ImportPath, Imports: p.Imports, TestImports: p.TestImports, XTestImports: p.XTestImports}
	}
	if g.Module == "" {
		return nil, fmt.Errorf("go list %s: no package of the main module", strings.Join(patterns, " "))
	}
	return g, nil
}

// Rule says that the packages Pkg matches must not import any package Forbid
// matches, directly or transitively, unless Except matches it.
//
// Patterns are relative to the module: "runtime" is the package
// <module>/runtime, "runtime/..." it and every package under it, "." the
// module's root package and "..." every package of the module. A pattern
// whose first element holds a dot ("go.etcd.io/...") is a full import path.
// A package other than the root may always import its own sub-packages.
type Rule struct {
	Pkg    string
	Tests  bool // the imports of Pkg's tests count too
	Forbid []string
	Except []string
	Why    string // why the edge is forbidden, for the reader who hits it
}

// Allowed is a forbidden import that is allowed for now: From (a package a
// rule is about) reaches To (a package it forbids). An entry is temporary and
// should say when it goes away.
type Allowed struct {
	From, To string
	Why      string
}

// Violation is a package reaching a forbidden one. Chain is the shortest
// chain of imports from From to To, From first; "p_test" is p's external
// test package and "p (test)" p's in-package tests.
type Violation struct {
	From, To string
	Chain    []string
	Why      string   // the rule's
	Allowed  *Allowed // the entry that allows it for now, or nil
}

func (v Violation) String() string {
	return fmt.Sprintf("forbidden import: %s -> %s (via %s) : %s", v.From, v.To, strings.Join(v.Chain, " -> "), v.Why)
}

// Report is what [Check] found.
type Report struct {
	Violations []Violation // forbidden and not allowed
	Allowed    []Violation // forbidden but allowed for now
	Stale      []Allowed   // entries that allowed nothing: the edge is gone
	Skipped    []Rule      // rules whose Pkg matches no package of the graph
}

// Check applies rules to g. For each package a rule is about it walks the
// imports breadth first, so each violation comes with a shortest chain. It
// does not walk on through a forbidden package (fix that edge and what lies
// behind it goes too), but it does through an allowed one, so an allowed
// edge hides nothing else.
func Check(g *Graph, rules []Rule, allowed []Allowed) Report {
	var r Report
	used := make([]bool, len(allowed))
	var own []string
	for p := range g.Packages {
		if p == g.Module || strings.HasPrefix(p, g.Module+"/") {
			own = append(own, p)
		}
	}
	slices.Sort(own)
	for _, rule := range rules {
		matched := false
		for _, s := range own {
			if !g.match(rule.Pkg, s) {
				continue
			}
			matched = true
			for _, v := range g.walk(s, rule, allowed) {
				if v.allowed < 0 {
					r.Violations = append(r.Violations, v.Violation)
					continue
				}
				used[v.allowed] = true
				v.Allowed = &allowed[v.allowed]
				r.Allowed = append(r.Allowed, v.Violation)
			}
		}
		if !matched {
			r.Skipped = append(r.Skipped, rule)
		}
	}
	for i, k := range allowed {
		if !used[i] {
			r.Stale = append(r.Stale, k)
		}
	}
	return r
}

type found struct {
	Violation
	allowed int // index of the Allowed entry that allows it, or -1
}

// walk returns the forbidden packages s reaches under rule.
func (g *Graph) walk(s string, rule Rule, allowed []Allowed) []found {
	pkg := g.Packages[s]
	xtest := s + "_test" // a node of its own, so that chains name the test package
	edges := func(p string) []string {
		switch {
		case p == s && rule.Tests:
			return append(append([]string(nil), pkg.Imports...), pkg.TestImports...)
		case p == xtest:
			return pkg.XTestImports
		case g.Packages[p] != nil:
			return g.Packages[p].Imports
		}
		return nil
	}
	queue := []string{s}
	parent := map[string]string{s: ""}
	if rule.Tests && len(pkg.XTestImports) > 0 {
		queue = append(queue, xtest)
		parent[xtest] = ""
	}
	var out []found
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, q := range edges(p) {
			if _, seen := parent[q]; seen {
				continue
			}
			parent[q] = p
			if g.forbidden(rule, s, q) {
				k := g.allowedIndex(allowed, s, q)
				out = append(out, found{Violation{From: g.short(s), To: g.short(q), Chain: g.chain(parent, s, q), Why: rule.Why}, k})
				if k < 0 {
					continue
				}
			}
			queue = append(queue, q)
		}
	}
	return out
}

// forbidden reports whether rule forbids package s to reach q.
func (g *Graph) forbidden(rule Rule, s, q string) bool {
	if s != g.Module && strings.HasPrefix(q, s+"/") {
		return false // its own sub-package
	}
	return g.matchAny(rule.Forbid, q) && !g.matchAny(rule.Except, q)
}

func (g *Graph) allowedIndex(allowed []Allowed, s, q string) int {
	for i, k := range allowed {
		if g.resolve(k.From) == s && g.resolve(k.To) == q {
			return i
		}
	}
	return -1
}

// chain names the imports from s to q, following parent links back.
func (g *Graph) chain(parent map[string]string, s, q string) []string {
	var c []string
	for p := q; p != ""; p = parent[p] {
		c = append(c, p)
	}
	// c ends with the root: s itself, or its external test package.
	viaTest := c[len(c)-1] == s && !slices.Contains(g.Packages[s].Imports, c[len(c)-2])
	for i, p := range c {
		c[i] = g.short(p)
	}
	if viaTest {
		c[len(c)-1] += " (test)"
	}
	for i, j := 0, len(c)-1; i < j; i, j = i+1, j-1 {
		c[i], c[j] = c[j], c[i]
	}
	return c
}

func (g *Graph) matchAny(patterns []string, p string) bool {
	for _, pat := range patterns {
		if g.match(pat, p) {
			return true
		}
	}
	return false
}

// match reports whether import path p matches a module-relative pattern (see
// [Rule]).
func (g *Graph) match(pattern, p string) bool {
	full := g.resolve(pattern)
	if base, ok := strings.CutSuffix(full, "/..."); ok {
		return p == base || strings.HasPrefix(p, base+"/")
	}
	return p == full
}

// resolve turns a module-relative pattern or name into a full one.
func (g *Graph) resolve(pattern string) string {
	switch first, _, _ := strings.Cut(pattern, "/"); {
	case pattern == ".":
		return g.Module
	case pattern == "...":
		return g.Module + "/..."
	case strings.Contains(first, "."):
		return pattern
	}
	return g.Module + "/" + pattern
}

// short is p relative to the module; the root package keeps its full path.
func (g *Graph) short(p string) string {
	if rel, ok := strings.CutPrefix(p, g.Module+"/"); ok {
		return rel
	}
	return p
}
