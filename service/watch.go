package service

import (
	"context"

	"github.com/starbook/starbook"
)

// WatchChanges tells w of every execution record written and every approval
// resolved from now until ctx is done (see cluster.Store.WatchChanges: after
// a broken watch it resumes at the then current revision, so a front end
// that must not miss an end also reads the state it follows). ready, if not
// nil, is called once the watch's start is chosen.
func (s *Service) WatchChanges(ctx context.Context, w starbook.ChangeWatcher, ready func()) {
	s.Store.WatchChanges(ctx, w, ready)
}
