package runtime_test

import (
	"testing"

	"github.com/starbook/starbook/runtime/runtimetest"
)

func TestSuiteMem(t *testing.T) {
	runtimetest.RunSuite(t, runtimetest.NewMemBackend)
}
