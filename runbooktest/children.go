package runbooktest

import (
	"context"
	"encoding/json"
	"fmt"

	"go.starlark.net/starlark"

	"github.com/starbook/starbook/builtins"
	sbruntime "github.com/starbook/starbook/runtime"
)

// runbookStub is one mock.runbook: what a child of that runbook ends with.
type runbookStub struct {
	name    string
	returns json.RawMessage
	raises  string
}

// mockRunbook implements mock.runbook(name, returns = None, raises = ""):
// how a child run_runbook(name) ends, completed with returns or failed
// with raises. The latest mock of a name answers.
func mockRunbook(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	m, err := mocksOf(th, b.Name())
	if err != nil {
		return nil, err
	}
	var name, raises string
	var returns starlark.Value = starlark.None
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "name", &name, "returns?", &returns, "raises?", &raises); err != nil {
		return nil, err
	}
	if name == "" {
		return nil, fmt.Errorf("%s: name must not be empty", b.Name())
	}
	if raises != "" && returns != starlark.None {
		return nil, fmt.Errorf("%s: give returns= or raises=, not both", b.Name())
	}
	raw, err := sbruntime.Encode(returns)
	if err != nil {
		return nil, fmt.Errorf("%s: returns: %w", b.Name(), err)
	}
	m.mu.Lock()
	m.runbooks = append(m.runbooks, &runbookStub{name: name, returns: raw, raises: raises})
	m.mu.Unlock()
	return starlark.None, nil
}

// StartChild is run_runbook offline (builtins.RunbookStarter): the child
// is not run; it ends as mock.runbook says, delivered to the parent's wait
// at once. Unmocked, a test's fails and a dry run's completes with None.
func (m *Mocks) StartChild(_ context.Context, c builtins.ChildRequest) (string, error) {
	m.mu.Lock()
	var stub *runbookStub
	for i := len(m.runbooks) - 1; i >= 0; i-- {
		if m.runbooks[i].name == c.Runbook {
			stub = m.runbooks[i]
			break
		}
	}
	m.children++
	id := fmt.Sprintf("mock-child-%d", m.children)
	m.mu.Unlock()
	call := &Call{Kind: "run_runbook", Position: c.Position, Runbook: c.Runbook, JSON: c.Input, Mocked: stub != nil}
	if stub == nil {
		if !m.DryRun {
			m.noteUnmatched("run_runbook " + c.Runbook)
			call.Error = "no mock"
			m.record(call)
			return "", fmt.Errorf("no mock.runbook matches %s: add mock.runbook(%q, returns = ...) to the test", c.Runbook, c.Runbook)
		}
		stub = &runbookStub{name: c.Runbook, returns: json.RawMessage("null")}
	}
	m.record(call)
	end := map[string]any{"id": id, "runbook": c.Runbook, "status": sbruntime.StatusCompleted, "result": stub.returns}
	if stub.raises != "" {
		end = map[string]any{"id": id, "runbook": c.Runbook, "status": sbruntime.StatusFailed, "error": stub.raises}
	}
	data, err := json.Marshal(end)
	if err != nil {
		return "", err
	}
	m.Signal("child."+id, data)
	return id, nil
}
