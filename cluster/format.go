package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/starbook/starbook/buildinfo"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// CurrentFormat is the store format this build writes and understands.
// A store's format is one number for the shape of everything under its
// prefix, kept in one marker key (format, see Keys):
//
//	1  the release before store formats; its stores carry no marker
//	2  the marker itself; no record changed shape
//	3  kept signals, one key each (signals/<id>/<name>/<rev>-<ulid>); a
//	   node of format 3 still reads and consumes the lists format 2 kept
//	   in signals/<id>/<name>, and never writes them; group keys
//	4  the execution and dead-letter indexes (ix/, ixs/, see index.go and
//	   deadindex.go) and the SLO and usage rollups (rollups.go), built for
//	   what format 3 stored by the migration (resumable: migrating/4,
//	   migrating/4/deadletters and slo/built say how far it got); ended
//	   records stored compressed (zstd), their history folded in (fold.go)
//
// Records carry no version of their own: a field per record would cost
// bytes on every checkpoint (the hot path), and the marker already says
// what every record may look like. A later format that changes one
// record's shape adds "v": N to that record type only, written by the
// release that bumps the format, and that type's decoder accepts every
// shape since format 1 (an absent "v" is the oldest). A field added with
// omitempty changes no shape a decoder cares about, but an older node that
// rewrites such a record drops it: that too needs a format bump, so that
// older nodes stop before the new release writes it.
const CurrentFormat = 4

// formatBeforeMarker is the format of a store with data and no marker.
const formatBeforeMarker = 1

// Format is the store's format marker, as stored.
type Format struct {
	Format int `json:"format"`
	// WrittenBy is the build that wrote the marker last ("starbook v1.2.0").
	WrittenBy string    `json:"written_by"`
	At        time.Time `json:"at"`
}

// FormatError is a store whose format this build does not understand: a
// newer release wrote it. The node must not start (it would misread or
// clobber records).
type FormatError struct {
	Store     int    // the store's format
	WrittenBy string // the build that wrote its marker
	Known     int    // CurrentFormat
}

func (e *FormatError) Error() string {
	return fmt.Sprintf("store format %d (written by %s) is newer than this starbook understands (%d): upgrade starbook",
		e.Store, e.WrittenBy, e.Known)
}

// Migration moves a store from format To-1 to To. Apply must be
// idempotent (a node can die half way; the next start runs it again) and
// must add fence to the compares of every txn it writes with, so that a
// migrator that lost the migration lock writes nothing more.
type Migration struct {
	To    int
	Name  string
	Apply func(ctx context.Context, s *Store, fence []clientv3.Cmp) error
}

// migrations are the registered migrations, in order: one per format
// after formatBeforeMarker. 1 → 2 only writes the marker; 2 → 3 changes
// nothing stored.
var migrations = []Migration{
	{To: 2, Name: "store format marker", Apply: func(context.Context, *Store, []clientv3.Cmp) error { return nil }},
	// Nothing to rewrite: format 3 reads format 2's kept signal lists. The
	// bump keeps format 2 nodes, which would not see kept signals stored
	// one key each, from starting beside format 3 ones.
	{To: 3, Name: "kept signals one key each", Apply: func(context.Context, *Store, []clientv3.Cmp) error { return nil }},
	{To: 4, Name: "execution index and rollups", Apply: func(ctx context.Context, s *Store, fence []clientv3.Cmp) error {
		if err := s.buildIndex(ctx, fence); err != nil {
			return err
		}
		return s.BuildRollups(ctx, fence...)
	}},
}

// buildName is what a marker's WrittenBy says of this build.
func buildName() string { return "starbook " + buildinfo.Read().Version }

// ReadFormat returns the store's marker; a store with data and no marker
// is format 1 (At zero), an empty one format 0.
func (s *Store) ReadFormat(ctx context.Context) (Format, error) {
	f, _, err := s.readFormat(ctx)
	return f, err
}

// readFormat returns the marker and its mod revision (0 when absent).
func (s *Store) readFormat(ctx context.Context) (Format, int64, error) {
	resp, err := s.cli.Txn(ctx).Then(
		clientv3.OpGet(s.k.format()),
		clientv3.OpGet(s.k.prefix, clientv3.WithPrefix(), clientv3.WithCountOnly()),
	).Commit()
	if err != nil {
		return Format{}, 0, fmt.Errorf("read store format: %w", err)
	}
	if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) > 0 {
		var f Format
		if err := json.Unmarshal(kvs[0].Value, &f); err != nil || f.Format < 1 {
			return Format{}, 0, fmt.Errorf("store format marker %s: %q is not a format", s.k.format(), kvs[0].Value)
		}
		return f, kvs[0].ModRevision, nil
	}
	if resp.Responses[1].GetResponseRange().Count > 0 {
		return Format{Format: formatBeforeMarker, WrittenBy: "starbook before store formats"}, 0, nil
	}
	return Format{}, 0, nil
}

// OpenFormat makes the store one of CurrentFormat before a node uses it,
// and returns its marker. It writes nothing to a store of a newer format
// (a *FormatError) nor to one of the current format (one read). An empty
// store is marked with the current format (create if absent); an older
// store is migrated: under the migration lock, each registered migration
// from its format on runs and bumps the marker, fenced on the marker's
// revision and the lock, so nodes starting at once migrate it once.
func (s *Store) OpenFormat(ctx context.Context) (Format, error) {
	return s.openFormat(ctx, CurrentFormat, migrations)
}

// openFormat is OpenFormat for a build that understands format current and
// registered migs.
func (s *Store) openFormat(ctx context.Context, current int, migs []Migration) (Format, error) {
	f, _, err := s.readFormat(ctx)
	switch {
	case err != nil:
		return Format{}, err
	case f.Format > current:
		return f, &FormatError{Store: f.Format, WrittenBy: f.WrittenBy, Known: current}
	case f.Format == current:
		return f, nil
	case f.Format == 0: // an empty store
		mark := Format{Format: current, WrittenBy: buildName(), At: s.now().UTC()}
		ok, err := s.putFormat(ctx, mark, []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(s.k.format()), "=", 0)})
		if err != nil || ok {
			return mark, err
		}
		// Another node marked it (or wrote data) meanwhile: read it again.
		return s.openFormat(ctx, current, migs)
	}
	return s.migrate(ctx, current, migs)
}

// migrate runs the migrations from the store's format to current while
// holding the migration lock.
func (s *Store) migrate(ctx context.Context, current int, migs []Migration) (Format, error) {
	sess, err := concurrency.NewSession(s.cli, concurrency.WithTTL(10), concurrency.WithContext(ctx))
	if err != nil {
		return Format{}, fmt.Errorf("migrate store: session: %w", err)
	}
	defer sess.Close()
	lock := concurrency.NewMutex(sess, s.k.migrationLock())
	if err := lock.Lock(ctx); err != nil {
		return Format{}, fmt.Errorf("migrate store: lock: %w", err)
	}
	defer func() {
		unlockCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = lock.Unlock(unlockCtx)
	}()
	for {
		f, rev, err := s.readFormat(ctx)
		if err != nil {
			return Format{}, err
		}
		if f.Format > current {
			return f, &FormatError{Store: f.Format, WrittenBy: f.WrittenBy, Known: current}
		}
		if f.Format == current {
			return f, nil // done, perhaps by the node that held the lock before
		}
		m, err := migrationTo(migs, f.Format+1)
		if err != nil {
			return f, err
		}
		// rev 0: no marker yet (format 1), so fence on its absence.
		fence := []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(s.k.format()), "=", rev), lock.IsOwner()}
		if err := m.Apply(ctx, s, fence); err != nil {
			return f, fmt.Errorf("migrate store format %d to %d (%s): %w", f.Format, m.To, m.Name, err)
		}
		next := Format{Format: m.To, WrittenBy: buildName(), At: s.now().UTC()}
		ok, err := s.putFormat(ctx, next, fence)
		if err != nil {
			return f, fmt.Errorf("migrate store format %d to %d: %w", f.Format, m.To, err)
		}
		if !ok {
			return f, fmt.Errorf("migrate store format %d to %d: the marker changed under the migration lock", f.Format, m.To)
		}
	}
}

// migrationTo returns the registered migration to format to.
func migrationTo(migs []Migration, to int) (Migration, error) {
	for _, m := range migs {
		if m.To == to {
			return m, nil
		}
	}
	return Migration{}, fmt.Errorf("no migration to store format %d", to)
}

// putFormat writes the marker if cmps hold, and reports whether they did.
func (s *Store) putFormat(ctx context.Context, f Format, cmps []clientv3.Cmp) (bool, error) {
	data, err := json.Marshal(f)
	if err != nil {
		return false, err
	}
	resp, err := s.cli.Txn(ctx).If(cmps...).Then(clientv3.OpPut(s.k.format(), string(data))).Commit()
	if err != nil {
		return false, fmt.Errorf("write store format %d: %w", f.Format, err)
	}
	return resp.Succeeded, nil
}
