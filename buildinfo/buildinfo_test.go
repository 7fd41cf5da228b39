package buildinfo_test

import (
	"runtime"
	"runtime/debug"
	"testing"

	etcdversion "go.etcd.io/etcd/api/v3/version"

	"github.com/starbook/starbook/buildinfo"
)

func TestFrom(t *testing.T) {
	vcs := []debug.BuildSetting{
		{Key: "-trimpath", Value: "true"},
		{Key: "vcs", Value: "git"},
		{Key: "vcs.revision", Value: "472e4491c0ffee"},
		{Key: "vcs.time", Value: "2026-11-30T10:00:00Z"},
		{Key: "vcs.modified", Value: "true"},
	}
	tests := []struct {
		name                       string
		bi                         *debug.BuildInfo
		version, commit, buildTime string
		want                       buildinfo.Info
	}{{
		name: "no build info",
		want: buildinfo.Info{Version: "devel"},
	}, {
		name: "go build in a checkout",
		bi:   &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}, Settings: vcs},
		want: buildinfo.Info{Version: "devel", Commit: "472e4491c0ffee", Modified: true,
			CommitTime: "2026-11-30T10:00:00Z", GoVersion: "go1.26.8"},
	}, {
		name: "go install of a tag, no vcs",
		bi:   &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v1.2.3"}},
		want: buildinfo.Info{Version: "v1.2.3", GoVersion: "go1.26.8"},
	}, {
		name:    "ldflags override vcs",
		bi:      &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}, Settings: vcs},
		version: "v1.3.0", commit: "abc123", buildTime: "2026-12-01T08:00:00Z",
		want: buildinfo.Info{Version: "v1.3.0", Commit: "abc123", BuildTime: "2026-12-01T08:00:00Z",
			GoVersion: "go1.26.8"},
	}, {
		name:    "ldflags version only keeps the vcs commit",
		bi:      &debug.BuildInfo{GoVersion: "go1.26.8", Settings: vcs},
		version: "v1.3.0",
		want: buildinfo.Info{Version: "v1.3.0", Commit: "472e4491c0ffee", Modified: true,
			CommitTime: "2026-11-30T10:00:00Z", GoVersion: "go1.26.8"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := buildinfo.From(tt.bi, tt.version, tt.commit, tt.buildTime)
			want := tt.want
			if want.GoVersion == "" {
				want.GoVersion = runtime.Version()
			}
			want.Platform = runtime.GOOS + "/" + runtime.GOARCH
			want.EtcdVersion = etcdversion.Version
			if got != want {
				t.Errorf("From() =\n%+v\nwant\n%+v", got, want)
			}
		})
	}
}

func TestRead(t *testing.T) {
	got := buildinfo.Read()
	if got.Version == "" || got.GoVersion == "" || got.EtcdVersion == "" {
		t.Errorf("Read() = %+v: want a version, a Go version and an etcd version", got)
	}
}
