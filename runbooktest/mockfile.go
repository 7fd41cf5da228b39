package runbooktest

import (
	"os"
	"path/filepath"

	"go.starlark.net/starlark"

	sbruntime "github.com/starbook/starbook/runtime"
)

// LoadMocks runs a Starlark file whose top level calls mock.* (as a test
// function would) and keeps what it sets up in m: how `run --dry-run
// --mocks FILE` overrides the agreeable defaults.
func (m *Mocks) LoadMocks(file string) error {
	src, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	all := testPredeclared()
	pre := starlark.StringDict{"mock": MockModule, "struct": all["struct"], "json": all["json"], "time": all["time"]}
	_, prog, err := starlark.SourceProgramOptions(sbruntime.FileOptions, filepath.Base(file), src, pre.Has)
	if err != nil {
		return err
	}
	th := &starlark.Thread{Name: "mocks " + file}
	th.SetMaxExecutionSteps(sbruntime.DefaultLimits.MaxSteps)
	SetMocks(th, m)
	_, err = prog.Init(th, pre)
	return err
}
