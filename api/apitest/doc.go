// Package apitest provides a fake [starbook.Service] for tests of the API and of its
// callers. It owns no behaviour: each method calls the function field of the
// same name, or fails with [ErrUnimplemented] when the field is nil.
package apitest
