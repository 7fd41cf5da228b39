// Package buildinfo says which build of starbook is running: its version,
// the commit it was built from, when, with which Go and which etcd.
//
// The values come from what the Go toolchain stamps into every binary
// (runtime/debug.ReadBuildInfo: the module version, and the vcs.* settings
// when the build ran in a git checkout without -buildvcs=false). A release
// build overrides them with the linker, which is what the Dockerfile does
// because its build context has no .git:
//
//	go build -trimpath -ldflags "\
//	  -X github.com/starbook/starbook/buildinfo.Version=v1.2.3 \
//	  -X github.com/starbook/starbook/buildinfo.Commit=$(git rev-parse HEAD) \
//	  -X github.com/starbook/starbook/buildinfo.BuildTime=$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
//	  ./cmd/starbook
//
// starbook stores no format or schema version of its own (etcd keys are
// read as they are, see cluster/keys.go), so there is none to report.
package buildinfo
