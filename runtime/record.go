package runtime

import (
	"fmt"
	"sort"

	"go.starlark.net/starlark"
	"go.starlark.net/syntax"
)

// Record is a JSON object as a Starlark value: a read-only mapping whose keys
// are also attributes, so event["labels"] and event.labels both work. Data keys
// shadow the methods get, keys, values and items.
type Record struct {
	dict *starlark.Dict
}

var (
	_ starlark.IterableMapping = (*Record)(nil)
	_ starlark.HasAttrs        = (*Record)(nil)
	_ starlark.Comparable      = (*Record)(nil)
)

// NewRecord returns a record holding a copy of the string-keyed entries of d.
func NewRecord(d *starlark.Dict) *Record {
	c := starlark.NewDict(d.Len())
	for _, it := range d.Items() {
		_ = c.SetKey(it[0], it[1])
	}
	return &Record{dict: c}
}

func (r *Record) String() string        { return r.dict.String() }
func (r *Record) Type() string          { return "record" }
func (r *Record) Freeze()               { r.dict.Freeze() }
func (r *Record) Truth() starlark.Bool  { return r.dict.Len() > 0 }
func (r *Record) Hash() (uint32, error) { return 0, fmt.Errorf("unhashable type: record") }
func (r *Record) Len() int              { return r.dict.Len() }

// Get implements starlark.Mapping.
func (r *Record) Get(k starlark.Value) (starlark.Value, bool, error) { return r.dict.Get(k) }

// Iterate implements starlark.Iterable over the keys.
func (r *Record) Iterate() starlark.Iterator { return r.dict.Iterate() }

// Items implements starlark.IterableMapping.
func (r *Record) Items() []starlark.Tuple { return r.dict.Items() }

// Dict returns a new mutable dict with the record's entries.
func (r *Record) Dict() *starlark.Dict {
	c := starlark.NewDict(r.dict.Len())
	for _, it := range r.dict.Items() {
		_ = c.SetKey(it[0], it[1])
	}
	return c
}

var recordMethods = map[string]bool{"get": true, "keys": true, "values": true, "items": true}

// Attr returns the data key name, else one of the dict methods.
func (r *Record) Attr(name string) (starlark.Value, error) {
	if v, found, _ := r.dict.Get(starlark.String(name)); found {
		return v, nil
	}
	if recordMethods[name] {
		return r.dict.Attr(name)
	}
	return nil, nil
}

// AttrNames lists data keys and methods.
func (r *Record) AttrNames() []string {
	names := []string{"get", "items", "keys", "values"}
	for _, k := range r.dict.Keys() {
		if s, ok := k.(starlark.String); ok && !recordMethods[string(s)] {
			names = append(names, string(s))
		}
	}
	sort.Strings(names)
	return names
}

// CompareSameType compares records for equality like dicts.
func (r *Record) CompareSameType(op syntax.Token, y starlark.Value, depth int) (bool, error) {
	return starlark.CompareDepth(op, r.dict, y.(*Record).dict, depth)
}
