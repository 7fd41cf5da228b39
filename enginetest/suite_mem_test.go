package enginetest_test

import (
	"testing"

	"github.com/starbook/starbook/enginetest"
)

func TestSuiteMem(t *testing.T) {
	enginetest.RunSuite(t, enginetest.NewMemBackend)
}
