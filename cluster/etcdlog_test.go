package cluster

import (
	"bytes"
	"sync"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// testLogTo returns where the embedded members a test starts log (logTo): a
// buffer the test's log shows only if the test fails. A test that closes a
// member's listeners under it makes etcd log their errors, stack traces and
// all; a passing run prints none of them.
func testLogTo(t testing.TB) zapcore.Core {
	b := &lockedBuffer{}
	t.Cleanup(func() {
		if t.Failed() && b.Len() > 0 {
			t.Logf("embedded etcd's log:\n%s", b)
		}
	})
	enc := zap.NewProductionEncoderConfig()
	enc.StacktraceKey = "" // the message and error say enough here
	enc.EncodeTime = zapcore.ISO8601TimeEncoder
	return zapcore.NewCore(zapcore.NewJSONEncoder(enc), zapcore.AddSync(b), zapcore.ErrorLevel)
}

// lockedBuffer is a bytes.Buffer that members write from their goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Len()
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
