package snapshot

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Periodic configures the leader's periodic snapshots: one file every
// Every in Dir, named by the time it was taken, the newest Keep kept.
type Periodic struct {
	Dir   string
	Every time.Duration
	Keep  int
	// Logger gets a line per snapshot and per failure; nil discards.
	Logger *slog.Logger
	// OnSaved, when set, is told each snapshot saved (metrics).
	OnSaved func(path string, size int64, at time.Time)
	// OnFailed, when set, is told each failed attempt (metrics).
	OnFailed func(error)
	// Now is the clock that names files; nil is time.Now.
	Now func() time.Time
}

// Validate reports a configuration Task cannot run.
func (p Periodic) Validate() error {
	switch {
	case p.Dir == "":
		return errors.New("snapshot dir is empty")
	case p.Every <= 0:
		return fmt.Errorf("snapshot interval %s: want more than 0", p.Every)
	case p.Keep < 1:
		return fmt.Errorf("snapshots to keep %d: want at least 1", p.Keep)
	}
	return nil
}

// File names: filePrefix + UTC time in fileTime + fileSuffix, so that names
// sort as times do.
const (
	filePrefix = "starbook-"
	fileTime   = "20060102T150405.000Z"
	fileSuffix = ".snapshot"
)

// retryAfter bounds the wait after a failed snapshot: an hourly snapshot
// that failed is tried again before the next hour.
const retryAfter = time.Minute

// Task returns a leader task (node.Config.LeaderTasks) that saves a
// snapshot of the member cli is connected to every p.Every while the node
// leads, and deletes all but the newest p.Keep. The first is due p.Every
// after the newest file already in p.Dir (at once if there is none), so a
// change of leader neither skips nor doubles one. It returns when ctx is
// done.
func (p Periodic) Task(cli *clientv3.Client) func(ctx context.Context) {
	if p.Logger == nil {
		p.Logger = slog.New(slog.DiscardHandler)
	}
	if p.Now == nil {
		p.Now = time.Now
	}
	return func(ctx context.Context) {
		next := time.Time{}
		if names, err := p.files(); err == nil && len(names) > 0 {
			// A file from the future (a clock set back) delays none by more than Every.
			next = timeOf(names[len(names)-1]).Add(p.Every)
			if latest := p.Now().Add(p.Every); next.After(latest) {
				next = latest
			}
		}
		timer := time.NewTimer(0)
		defer timer.Stop()
		for {
			timer.Reset(max(next.Sub(p.Now()), 0))
			select {
			case <-ctx.Done():
				return
			case <-timer.C:
			}
			at := p.Now()
			path, n, err := p.SaveOnce(ctx, cli, at)
			if err != nil && ctx.Err() != nil {
				return // leadership ended mid-snapshot: not a failure
			}
			if err != nil {
				p.Logger.Warn("periodic snapshot", "err", err)
				if p.OnFailed != nil {
					p.OnFailed(err)
				}
				next = at.Add(min(p.Every, retryAfter))
				continue
			}
			p.Logger.Info("snapshot saved", "path", path, "bytes", n, "took", p.Now().Sub(at))
			if p.OnSaved != nil {
				p.OnSaved(path, n, at)
			}
			next = at.Add(p.Every)
		}
	}
}

// SaveOnce saves one snapshot named by at into p.Dir and prunes the oldest
// files beyond p.Keep; it returns the new file's path and size.
func (p Periodic) SaveOnce(ctx context.Context, cli *clientv3.Client, at time.Time) (string, int64, error) {
	if err := os.MkdirAll(p.Dir, 0o700); err != nil {
		return "", 0, fmt.Errorf("snapshot dir: %w", err)
	}
	path := filepath.Join(p.Dir, filePrefix+at.UTC().Format(fileTime)+fileSuffix)
	n, err := Save(ctx, cli, path)
	if err != nil {
		return "", 0, err
	}
	if err := p.prune(); err != nil {
		return path, n, err
	}
	return path, n, nil
}

// files lists the snapshot files in p.Dir, oldest first.
func (p Periodic) files() ([]string, error) {
	entries, err := os.ReadDir(p.Dir)
	if err != nil {
		return nil, fmt.Errorf("list snapshot dir: %w", err)
	}
	var names []string
	for _, e := range entries {
		if name := e.Name(); e.Type().IsRegular() && !timeOf(name).IsZero() {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names, nil
}

// prune deletes all but the newest p.Keep snapshot files.
func (p Periodic) prune() error {
	names, err := p.files()
	if err != nil {
		return err
	}
	var errs []error
	for _, name := range names[:max(len(names)-p.Keep, 0)] {
		if err := os.Remove(filepath.Join(p.Dir, name)); err != nil {
			errs = append(errs, fmt.Errorf("prune snapshot: %w", err))
		}
	}
	return errors.Join(errs...)
}

// timeOf returns the time in a snapshot file's name; zero for a name that
// is not one of ours.
func timeOf(name string) time.Time {
	s, ok := strings.CutPrefix(name, filePrefix)
	if !ok {
		return time.Time{}
	}
	if s, ok = strings.CutSuffix(s, fileSuffix); !ok {
		return time.Time{}
	}
	t, err := time.Parse(fileTime, s)
	if err != nil {
		return time.Time{}
	}
	return t
}
