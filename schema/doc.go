// Package schema compiles the JSON Schema a runbook declares for its input
// (input_schema = {...} at top level, or NAME.schema.json beside NAME.star)
// and validates inputs against it.
//
// It owns the wording of both kinds of failure: a schema that does not
// compile is a *CompileError naming where it was declared (file:line), and
// an input it refuses is an *Error naming the JSON pointer of the refused
// value and the keyword (rule) that refused it, so that a person can fix the
// input without reading the schema.
//
// Schemas are JSON Schema 2020-12 unless they say otherwise ($schema), with
// "format" asserted. A schema is self-contained: a $ref to anything outside
// the document (a file, a URL) is refused at compile time, so that a runbook
// cannot make a node read files or fetch URLs. A compiled *Schema is
// immutable and safe for concurrent use.
package schema
