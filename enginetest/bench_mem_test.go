package enginetest_test

import (
	"testing"

	"github.com/starbook/starbook/enginetest"
)

// BenchmarkSequentialCallMem is the engine's CPU per durable step, storage
// aside: one op is one no-op call() step against the in-memory journal.
//
//	go test ./enginetest -run '^$' -bench SequentialCallMem -benchmem
func BenchmarkSequentialCallMem(b *testing.B) {
	enginetest.BenchSequentialCalls(b, nil)
}
