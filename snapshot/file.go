package snapshot

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// ErrCorrupt is the error, wrapped with the file's name, of a snapshot whose
// sha256 trailer does not match its contents or that has none (a truncated
// or altered file).
var ErrCorrupt = errors.New("snapshot integrity check failed")

// trailer is the size of the sha256 etcd appends to a snapshot.
const trailer = sha256.Size

// hasTrailer reports whether a snapshot of n bytes can end with a trailer:
// etcd's database is a whole number of 512-byte sectors.
func hasTrailer(n int64) bool { return n%512 == trailer }

// Stream writes a snapshot of the etcd member cli is connected to (one
// member of a cluster: each holds the whole keyspace) to w, trailer
// included, and returns the bytes written. It blocks until the member has
// sent the whole database.
func Stream(ctx context.Context, cli *clientv3.Client, w io.Writer) (int64, error) {
	rc, err := cli.Snapshot(ctx)
	if err != nil {
		return 0, fmt.Errorf("etcd snapshot: %w", err)
	}
	defer rc.Close()
	n, err := io.Copy(w, rc)
	if err != nil {
		return n, fmt.Errorf("etcd snapshot after %d bytes: %w", n, err)
	}
	return n, nil
}

// Save writes a snapshot of the member cli is connected to at path (see
// WriteFile) and returns its size.
func Save(ctx context.Context, cli *clientv3.Client, path string) (int64, error) {
	rc, err := cli.Snapshot(ctx)
	if err != nil {
		return 0, fmt.Errorf("etcd snapshot: %w", err)
	}
	defer rc.Close()
	return WriteFile(path, rc)
}

// WriteFile copies a snapshot from r to path.part, checks its sha256
// trailer, fsyncs it and renames it to path: on a nil error path holds the
// whole, intact snapshot, durably. On any error (a stream cut short, a
// mismatched trailer: ErrCorrupt) path is left as it was and the .part file
// is removed.
func WriteFile(path string, r io.Reader) (n int64, err error) {
	part := path + ".part"
	f, err := os.OpenFile(part, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return 0, fmt.Errorf("create snapshot file: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(part)
		}
	}()
	v := newVerifier()
	n, err = io.Copy(io.MultiWriter(f, v), r)
	if err != nil {
		return n, fmt.Errorf("write %s after %d bytes: %w", part, n, err)
	}
	if err := v.check(); err != nil {
		return n, fmt.Errorf("snapshot received for %s (%d bytes): %w", path, n, err)
	}
	if err := f.Sync(); err != nil {
		return n, fmt.Errorf("fsync %s: %w", part, err)
	}
	if err := f.Close(); err != nil {
		return n, fmt.Errorf("close %s: %w", part, err)
	}
	if err := os.Rename(part, path); err != nil {
		return n, fmt.Errorf("rename %s: %w", part, err)
	}
	if err := syncDir(filepath.Dir(path)); err != nil {
		return n, err
	}
	return n, nil
}

// Verify checks the sha256 trailer of the snapshot file at path; the error
// wraps ErrCorrupt when the file is not intact.
func Verify(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("open snapshot: %w", err)
	}
	defer f.Close()
	v := newVerifier()
	if _, err := io.Copy(v, f); err != nil {
		return fmt.Errorf("read snapshot %s: %w", path, err)
	}
	if err := v.check(); err != nil {
		return fmt.Errorf("snapshot %s: %w", path, err)
	}
	return nil
}

// verifier hashes a stream but its last trailer bytes, which it keeps to
// compare with the hash at the end.
type verifier struct {
	h    hashWriter
	tail []byte // the last (up to) trailer bytes seen
	n    int64
}

type hashWriter interface {
	io.Writer
	Sum([]byte) []byte
}

func newVerifier() *verifier { return &verifier{h: sha256.New()} }

func (v *verifier) Write(p []byte) (int, error) {
	v.n += int64(len(p))
	if len(p) >= trailer {
		v.h.Write(v.tail)
		v.h.Write(p[:len(p)-trailer])
		v.tail = append(v.tail[:0], p[len(p)-trailer:]...)
		return len(p), nil
	}
	buf := append(append([]byte(nil), v.tail...), p...)
	if over := len(buf) - trailer; over > 0 {
		v.h.Write(buf[:over])
		buf = buf[over:]
	}
	v.tail = buf
	return len(p), nil
}

func (v *verifier) check() error {
	if !hasTrailer(v.n) {
		return fmt.Errorf("%w: %d bytes is not a database with a sha256 trailer (truncated?)", ErrCorrupt, v.n)
	}
	if sum := v.h.Sum(nil); !bytes.Equal(sum, v.tail) {
		return fmt.Errorf("%w: sha256 mismatch: contents hash to %x, trailer says %x", ErrCorrupt, sum, v.tail)
	}
	return nil
}

// syncDir fsyncs a directory so that a rename in it is durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open dir %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync dir %s: %w", dir, err)
	}
	return nil
}
