package runtime_test

import (
	"testing"

	"github.com/starbook/starbook/runtime/runtimetest"
)

// BenchmarkSequentialCallMem is the engine's CPU per durable step, storage
// aside: one op is one no-op call() step against the in-memory journal.
//
//	go test ./runtime -run '^$' -bench SequentialCallMem -benchmem
func BenchmarkSequentialCallMem(b *testing.B) {
	runtimetest.BenchSequentialCalls(b, nil)
}
