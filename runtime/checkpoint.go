package runtime

import (
	"errors"
	"fmt"
	"time"
)

// checkpointHold bounds how long a finished step's event may wait, while the
// script computes, for the run's next write. A node killed in that time
// redoes the step on resume, as one killed while the event commits would.
const checkpointHold = 2 * time.Millisecond

// hold keeps ev, the main thread's latest step event, until the run's next
// write (the next step starting, a wait, the outcome) or checkpointHold,
// whichever comes first: a script whose last step is followed only by
// computing has that step recorded with its outcome, in one write.
func (rs *run) hold(ev *Event) {
	rs.heldMu.Lock()
	defer rs.heldMu.Unlock()
	rs.held = ev
	if rs.heldTimer == nil {
		rs.heldTimer = time.AfterFunc(checkpointHold, func() { _ = rs.flushHeld() })
	} else {
		rs.heldTimer.Reset(checkpointHold)
	}
}

// flushHeld records the held event, if any. It is called before anything
// the run does next that the world or the store can see. An event that
// cannot be recorded stays held, for the next flush or the outcome.
func (rs *run) flushHeld() error {
	rs.heldMu.Lock()
	defer rs.heldMu.Unlock()
	if rs.held == nil {
		return nil
	}
	if err := rs.record(rs.held); err != nil {
		return err
	}
	rs.held = nil
	return nil
}

// takeHeld returns the event still held when the run ends, for the caller to
// record with the outcome (Outcome.Checkpoint).
func (rs *run) takeHeld() *Event {
	rs.heldMu.Lock()
	defer rs.heldMu.Unlock()
	if rs.heldTimer != nil {
		rs.heldTimer.Stop()
	}
	ev := rs.held
	rs.held = nil
	return ev
}

// record appends ev to the journal. A position taken means another owner
// wrote it: the claim was lost.
func (rs *run) record(ev *Event) error {
	if err := rs.journal.Append(rs.ctx, ev); err != nil {
		if errors.Is(err, ErrNotOwner) || errors.Is(err, ErrPositionTaken) {
			return fmt.Errorf("record %s: %w", ev.Position, ErrNotOwner)
		}
		return wrapStore(fmt.Errorf("record %s: %w", ev.Position, err))
	}
	return nil
}
