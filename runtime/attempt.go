package runtime

import "slices"

// Effective returns the history that attempt n of an execution replays,
// from every event recorded under it: at each position the event of the
// latest attempt, except that an event an earlier attempt recorded as
// failed is void, so the position runs again. Successful events of earlier
// attempts are kept and replayed as they are. Events are not copied.
func Effective(events []*Event, attempt int) map[string]*Event {
	out := make(map[string]*Event, len(events))
	for _, ev := range events {
		if cur, ok := out[ev.Position]; ok && eventAttempt(cur) > eventAttempt(ev) {
			continue
		}
		out[ev.Position] = ev
	}
	if attempt > 1 {
		for pos, ev := range out {
			if ev.Failed() && eventAttempt(ev) < attempt {
				delete(out, pos)
			}
		}
	}
	return out
}

// EffectiveList is Effective as a list in position order.
func EffectiveList(events []*Event, attempt int) []*Event {
	m := Effective(events, attempt)
	out := make([]*Event, 0, len(m))
	for _, ev := range m {
		out = append(out, ev)
	}
	slices.SortFunc(out, func(a, b *Event) int { return ComparePositions(a.Position, b.Position) })
	return out
}

// Rerun lists the positions attempt n runs again: those whose latest event
// an earlier attempt recorded as failed, in position order.
func Rerun(events []*Event, attempt int) []string {
	all := Effective(events, 1)
	var out []string
	for pos, ev := range all {
		if ev.Failed() && eventAttempt(ev) < attempt {
			out = append(out, pos)
		}
	}
	slices.SortFunc(out, ComparePositions)
	return out
}

// Compensated reports whether a history ran undos: such an execution can
// only be redriven from the start, since its effects were undone.
func Compensated(events []*Event) bool {
	for _, ev := range events {
		if ev.Kind == KindUndo {
			return true
		}
	}
	return false
}

func eventAttempt(ev *Event) int { return max(ev.Attempt, 1) }

// stamp is the Attempt field of what attempt n records: 0 for the first.
func stamp(n int) int {
	if n <= 1 {
		return 0
	}
	return n
}
