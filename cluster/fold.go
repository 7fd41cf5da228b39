package cluster

import (
	"bytes"
	"compress/flate"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"sync"

	"go.etcd.io/etcd/api/v3/etcdserverpb"

	sbruntime "github.com/starbook/starbook/runtime"
)

// An ended execution's history is folded into its record: the end's txn
// writes the events, compressed, in the record's "folded" field and
// deletes their keys (history/<id>/<pos>), so that an ended one-step
// execution is one record instead of a record and a key per event. What a
// listing needs stays plain in the record; only a read of the history
// (show, replay, redrive) inflates the field.
//
// The end folds only what its claim knows to be the whole history: the
// events it loaded with the claim and the ones it recorded since. That
// holds for a run that never waited (only the owner writes its history
// while it is owned) and was never redriven (a redriven execution's
// earlier attempts are not all in the claim's map), and has at most
// maxFolded events (the deletes go in the end's txn). Any other end keeps
// its keys. The keys are deleted one by one, never by prefix: an event
// written behind the claim's back (it cannot happen today) would survive
// as a key, and every reader merges keys and folded events. A redrive
// writes the folded events back as keys before the record changes.

// maxFolded is the most events an end folds.
const maxFolded = 32

// foldedRecord is the part of a stored record that holds folded events.
type foldedRecord struct {
	Folded []byte `json:"folded"` // flate-compressed JSON list of events
}

var flaters = sync.Pool{New: func() any {
	w, _ := flate.NewWriter(nil, flate.BestSpeed)
	return w
}}

// foldEvents encodes events as the value of a record's folded field.
func foldEvents(events []*sbruntime.Event) ([]byte, error) {
	var list bytes.Buffer
	list.WriteByte('[')
	for i, ev := range events {
		if i > 0 {
			list.WriteByte(',')
		}
		b, err := ev.EncodeJSON()
		if err != nil {
			return nil, err
		}
		list.Write(b)
	}
	list.WriteByte(']')
	var out bytes.Buffer
	w := flaters.Get().(*flate.Writer)
	defer flaters.Put(w)
	w.Reset(&out)
	if _, err := w.Write(list.Bytes()); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// withFolded appends the folded field to record, a JSON object.
func withFolded(record, folded []byte) []byte {
	out := make([]byte, 0, len(record)+base64.StdEncoding.EncodedLen(len(folded))+12)
	out = append(out, record[:len(record)-1]...)
	out = append(out, `,"folded":"`...)
	out = base64.StdEncoding.AppendEncode(out, folded)
	return append(out, `"}`...)
}

// foldedMarker finds records that carry folded events without decoding
// the others.
var foldedMarker = []byte(`"folded":"`)

// unfold returns the events folded into a stored record (none if it has
// no folded field).
func unfold(record []byte) ([]*sbruntime.Event, error) {
	if !bytes.Contains(record, foldedMarker) {
		return nil, nil
	}
	var f foldedRecord
	if err := json.Unmarshal(record, &f); err != nil {
		return nil, fmt.Errorf("decode folded history: %w", err)
	}
	if len(f.Folded) == 0 {
		return nil, nil
	}
	data, err := io.ReadAll(flate.NewReader(bytes.NewReader(f.Folded)))
	if err != nil {
		return nil, fmt.Errorf("inflate folded history: %w", err)
	}
	var events []*sbruntime.Event
	if err := json.Unmarshal(data, &events); err != nil {
		return nil, fmt.Errorf("decode folded history: %w", err)
	}
	return events, nil
}

// foldEnd returns the record of the ending execution (data) with its
// history folded in, and the deletes of the folded events' keys; ok is
// false when the end must keep its keys (see above). checkpoint is the
// outcome's step, if any: folded too, so its key is never written.
func (c *Claim) foldEnd(e *sbruntime.Execution, data []byte, checkpoint *sbruntime.Event) (folded []byte, deletes []*etcdserverpb.RequestOp, ok bool) {
	if len(e.Redrives) > 0 || c.waited.Load() {
		return nil, nil, false
	}
	c.usageMu.Lock()
	recorded := c.recorded
	c.usageMu.Unlock()
	events := make(map[string]*sbruntime.Event, len(c.History)+len(recorded)+1)
	for pos, ev := range c.History {
		events[pos] = ev
	}
	for _, ev := range recorded {
		events[ev.Position] = ev
	}
	if checkpoint != nil {
		events[checkpoint.Position] = checkpoint
	}
	if len(events) == 0 || len(events) > maxFolded {
		return nil, nil, false
	}
	list := make([]*sbruntime.Event, 0, len(events))
	for _, ev := range events {
		if ev.Attempt > 1 {
			return nil, nil, false
		}
		list = append(list, ev)
	}
	sortEvents(list)
	value, err := foldEvents(list)
	if err != nil {
		return nil, nil, false
	}
	id := c.Execution.ID
	for _, ev := range list {
		if ev != checkpoint {
			deletes = append(deletes, deleteOp([]byte(c.s.k.eventAt(id, ev.Position, ev.Attempt))))
		}
	}
	return withFolded(data, value), deletes, true
}
