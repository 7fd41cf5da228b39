package buildinfo

import (
	"runtime"
	"runtime/debug"
	"strconv"

	etcdversion "go.etcd.io/etcd/api/v3/version"
)

// Set with -ldflags "-X github.com/starbook/starbook/buildinfo.NAME=VALUE";
// an empty one falls back to what the toolchain stamped.
var (
	// Version is the release, such as v1.2.3.
	Version string
	// Commit is the git commit the binary was built from.
	Commit string
	// BuildTime is when the binary was built, RFC 3339 in UTC.
	BuildTime string
)

// Info describes one build of starbook.
type Info struct {
	// Version is the release: -X Version, else the module version the
	// toolchain stamped (a tag with go install ...@v1.2.3), else "devel".
	Version string `json:"version"`
	// Commit is -X Commit, else vcs.revision; "" when neither is known.
	Commit string `json:"commit,omitempty"`
	// Modified reports a build from a checkout with uncommitted changes
	// (vcs.modified); never set when Commit came from -X.
	Modified bool `json:"modified,omitempty"`
	// BuildTime is -X BuildTime; "" when not stamped.
	BuildTime string `json:"build_time,omitempty"`
	// CommitTime is vcs.time, the time of Commit; "" when not known.
	CommitTime string `json:"commit_time,omitempty"`
	// GoVersion is the toolchain that built the binary.
	GoVersion string `json:"go_version"`
	// Platform is GOOS/GOARCH.
	Platform string `json:"platform"`
	// EtcdVersion is the version of the etcd client and of the embedded
	// etcd server (one version: go.etcd.io/etcd/api/v3/version).
	EtcdVersion string `json:"etcd_version"`
}

// Read returns the running binary's build information.
func Read() Info {
	bi, _ := debug.ReadBuildInfo()
	return From(bi, Version, Commit, BuildTime)
}

// From builds Info from bi (nil when the binary carries none) and the linker
// overrides version, commit and buildTime (empty for none).
func From(bi *debug.BuildInfo, version, commit, buildTime string) Info {
	info := Info{
		Version:     version,
		Commit:      commit,
		BuildTime:   buildTime,
		GoVersion:   runtime.Version(),
		Platform:    runtime.GOOS + "/" + runtime.GOARCH,
		EtcdVersion: etcdversion.Version,
	}
	if bi == nil {
		if info.Version == "" {
			info.Version = "devel"
		}
		return info
	}
	if bi.GoVersion != "" {
		info.GoVersion = bi.GoVersion
	}
	if info.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		info.Version = bi.Main.Version
	}
	if info.Version == "" {
		info.Version = "devel"
	}
	vcsCommit := info.Commit == ""
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			if vcsCommit {
				info.Commit = s.Value
			}
		case "vcs.modified":
			if vcsCommit {
				info.Modified, _ = strconv.ParseBool(s.Value)
			}
		case "vcs.time":
			if vcsCommit {
				info.CommitTime = s.Value
			}
		}
	}
	return info
}
