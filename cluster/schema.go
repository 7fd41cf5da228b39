package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	sbruntime "github.com/starbook/starbook/runtime"
	"github.com/starbook/starbook/schema"
)

// schemaCache holds the compiled input schemas of runbook versions, nil for
// a version that declares none. A version is immutable: each is read and
// compiled once per store.
type schemaCache struct {
	mu sync.Mutex
	m  map[string]*schema.Schema // runbook@version
}

// InputSchema returns the compiled input schema of a runbook version, nil
// when it declares none.
func (s *Store) InputSchema(ctx context.Context, runbook, version string) (*schema.Schema, error) {
	key := runbook + "@" + version
	s.schemas.mu.Lock()
	sch, ok := s.schemas.m[key]
	s.schemas.mu.Unlock()
	if ok {
		return sch, nil
	}
	b, _, err := s.Bundle(ctx, runbook, version)
	if err != nil {
		return nil, err
	}
	return s.bundleSchema(b)
}

// bundleSchema compiles b's input schema, once per version.
func (s *Store) bundleSchema(b *sbruntime.Bundle) (*schema.Schema, error) {
	key := b.Name + "@" + b.Version
	s.schemas.mu.Lock()
	defer s.schemas.mu.Unlock()
	if sch, ok := s.schemas.m[key]; ok {
		return sch, nil
	}
	var sch *schema.Schema
	if len(b.InputSchema) > 0 {
		var err error
		// Apply compiled it: failing now means the stored record is damaged.
		if sch, err = schema.Compile(b.InputSchemaAt, b.InputSchema); err != nil {
			return nil, fmt.Errorf("input schema of %s: %w", key, err)
		}
	}
	if s.schemas.m == nil {
		s.schemas.m = map[string]*schema.Schema{}
	}
	s.schemas.m[key] = sch
	return sch, nil
}

// ValidateInput checks input against the schema of a runbook version: nil
// when it has none or the input conforms, an *InputError naming the JSON
// pointer and the rule when it does not.
func (s *Store) ValidateInput(ctx context.Context, runbook, version string, input json.RawMessage) error {
	sch, err := s.InputSchema(ctx, runbook, version)
	if err != nil || sch == nil {
		return err
	}
	return inputError(runbook, sch.Validate(input))
}

// inputError is a validation error as a start refuses it.
func inputError(runbook string, err error) error {
	var se *schema.Error
	if errors.As(err, &se) {
		return &sbruntime.InputError{Msg: fmt.Sprintf("runbook %s refuses its %s", runbook, se), Pointer: se.Pointer}
	}
	if err != nil {
		return &sbruntime.InputError{Msg: err.Error()}
	}
	return nil
}

// refuseAll refuses every input, with the reason the schema is unusable.
type refuseAll struct{ err error }

func (r refuseAll) Validate(json.RawMessage) error { return r.err }
