package runtime_test

import (
	"fmt"
	"strings"
	"testing"

	sbruntime "github.com/starbook/starbook/runtime"
)

// TestResolveLoad maps load() strings to bundle file names: relative paths
// inside the runbook directory, library modules as @LIB/FILE.star, and a
// library module's relative loads kept inside its library; every escape and
// bad name is an error naming the load.
func TestResolveLoad(t *testing.T) {
	for _, tc := range []struct {
		from, module string
		want         string // the file name, or
		err          string // a part of the error
	}{
		{"runbook.star", "lib/util.star", "lib/util.star", ""},
		{"ops/runbook.star", "../lib/util.star", "lib/util.star", ""},
		{"runbook.star", "@std/k8s.star", "@std/k8s.star", ""},
		{"ops/runbook.star", "@std/k8s.star", "@std/k8s.star", ""},
		{"runbook.star", "@team/payments.star", "@team/payments.star", ""},
		{"runbook.star", "@team/sub/x.star", "@team/sub/x.star", ""},
		{"runbook.star", "@std/./k8s.star", "@std/k8s.star", ""},
		{"runbook.star", "@std/sub/../k8s.star", "@std/k8s.star", ""},
		// A library module's relative loads stay in its library.
		{"@std/k8s.star", "util.star", "@std/util.star", ""},
		{"@std/sub/a.star", "../b.star", "@std/b.star", ""},
		{"@std/k8s.star", "@team/x.star", "@team/x.star", ""},
		{"@std/k8s.star", "../runbook.star", "", "outside the library @std"},
		{"@std/k8s.star", "../@team/x.star", "", "outside the library @std"},
		{"@team/x.star", "../../etc/passwd.star", "", "outside"},
		// Escapes from a library by its module string.
		{"runbook.star", "@std/../x.star", "", "outside the library @std"},
		{"runbook.star", "@std/../../x.star", "", "outside the library @std"},
		{"runbook.star", "@std/a/../../x.star", "", "outside the library @std"},
		{"runbook.star", "@std/.", "", "outside the library @std"},
		// Bad library names and shapes.
		{"runbook.star", "@Std/k8s.star", "", "a library is @ and a lower-case name"},
		{"runbook.star", "@/k8s.star", "", "a library is @ and a lower-case name"},
		{"runbook.star", "@-x/k8s.star", "", "a library is @ and a lower-case name"},
		{"runbook.star", "@std", "", "@LIBRARY/FILE.star"},
		{"runbook.star", "@std/k8s", "", "modules are .star files"},
		{"runbook.star", "@std\\k8s.star", "", "relative"},
		{"runbook.star", "/etc/x.star", "", "relative"},
		{"runbook.star", "../x.star", "", "outside the runbook directory"},
	} {
		got, err := sbruntime.ResolveLoad(tc.from, tc.module, nil)
		switch {
		case tc.err == "" && (err != nil || got != tc.want):
			t.Errorf("ResolveLoad(%q, %q) = %q, %v; want %q", tc.from, tc.module, got, err, tc.want)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("ResolveLoad(%q, %q) = %q, %v; want an error with %q", tc.from, tc.module, got, err, tc.err)
		case tc.err != "" && !strings.Contains(err.Error(), fmt.Sprintf("%q", tc.module)):
			t.Errorf("ResolveLoad(%q, %q): error %q does not name the load", tc.from, tc.module, err)
		}
	}
}

// TestResolveLoadInFiles: with the bundle's files given, a library module
// that is not among them is named as the library's missing module.
func TestResolveLoadInFiles(t *testing.T) {
	files := map[string]string{"runbook.star": "", "@std/k8s.star": ""}
	if got, err := sbruntime.ResolveLoad("runbook.star", "@std/k8s.star", files); err != nil || got != "@std/k8s.star" {
		t.Errorf("a held module: %q, %v", got, err)
	}
	_, err := sbruntime.ResolveLoad("runbook.star", "@std/k9s.star", files)
	if err == nil || !strings.Contains(err.Error(), "library @std has no module k9s.star") {
		t.Errorf("a missing module: %v", err)
	}
	_, err = sbruntime.ResolveLoad("runbook.star", "util.star", files)
	if err == nil || !strings.Contains(err.Error(), "no such file util.star") {
		t.Errorf("a missing file: %v", err)
	}
}

// TestLibraryOf says which file names are a library's.
func TestLibraryOf(t *testing.T) {
	for name, want := range map[string]string{"@std/k8s.star": "@std", "@team/a/b.star": "@team", "runbook.star": "", "lib/@x.star": ""} {
		if lib, ok := sbruntime.LibraryOf(name); lib != want || ok != (want != "") {
			t.Errorf("LibraryOf(%q) = %q, %v; want %q", name, lib, ok, want)
		}
	}
}
