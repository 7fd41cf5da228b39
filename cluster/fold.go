package cluster

import (
	"bytes"
	"compress/flate"
	"encoding/json"
	"fmt"
	"io"
	"runtime"
	"sync"

	"go.etcd.io/etcd/api/v3/etcdserverpb"

	sbruntime "github.com/starbook/starbook/runtime"
)

// An ended execution is one compressed record. The end's txn writes its
// record deflated (with a preset dictionary of what records and events
// say, see recordDict) and, when it can, with its history folded in as the
// record's "folded" list, deleting the events' keys (history/<id>/<pos>):
// an ended one-step execution is one value of about half the bytes of its
// record alone. Every read of a record inflates it (recordJSON), and a
// read of the history merges the folded events with any keys.
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

// deflatedRecord starts a record stored deflated with recordDict; a JSON
// record starts with '{'. Another dictionary would take another byte.
const deflatedRecord = 0x01

// recordDict primes the compressor with the strings records and events
// repeat, so that a record of a kilobyte deflates to a few hundred bytes.
// It is part of the stored format: never change it, add another.
var recordDict = []byte(`"error":"Traceback (most recent call last):\n  Error in call: call http.get at position 1 failed: ` +
	`Error in http.get: GET http://127.0.0.1: 500 Internal Server Error (after 3 attempts)",` +
	`{"position":"1","kind":"call","name":"http.get","args_hash":"","result":{"status":200,"body":"","headers":{}},` +
	`"attempts":1,"http_calls":1,"started_at":"2026-12-07T00:00:00.000000000Z","ended_at":"2026-12-07T00:00:00.000000000Z","where":".star:3:","attempt":` +
	`"folded":[{"position":"1","kind":"now","kind":"uuid","kind":"sleep",` +
	`"input":{"status":"firing","labels":{"alertname":"","instance":"","job":"","namespace":"","pod":"","service":"","severity":"critical"},` +
	`"annotations":{"description":"","summary":""},"startsAt":"2026-12-07T00:00:00Z","endsAt":"0001-01-01T00:00:00Z","generatorURL":"http://","fingerprint":""},` +
	`{"id":"01","runbook":"","version":"","status":"completed","status":"failed","status":"cancelled","status":"stuck",` +
	`"trigger":{"type":"alert","type":"manual","type":"cron","type":"webhook","source":"","attrs":{"alertname":"","receiver":"","startsAt":"2026-12-07T00:00:00Z"}},` +
	`"result":null,"created_at":"2026-12-07T00:00:00.000000000Z","updated_at":"2026-12-07T00:00:00.000000000Z","ended_at":"2026-12-07T00:00:00.000000000Z"}`)

// deflaters are the compressors ends share: at most one a CPU. A flate
// writer holds about a megabyte of tables, so one per end (or a sync.Pool,
// which a GC empties) would allocate a megabyte per end: a burst of ends
// took a node's heap past 2 GB. Compressing a record takes tens of
// microseconds, so an end that finds them all busy waits for one.
var deflaters = make(chan *flate.Writer, runtime.GOMAXPROCS(0))

func init() {
	for range cap(deflaters) {
		w, err := flate.NewWriterDict(nil, 5, recordDict) // BestSpeed ignores the dictionary: a third of the bytes at 5
		if err != nil {
			panic(err)
		}
		deflaters <- w
	}
}

// inflaters are decompressors reused (flate.Resetter): each holds a 32 KB
// window, and every watcher of execution records inflates each end.
var inflaters = sync.Pool{New: func() any { return flate.NewReaderDict(nil, recordDict) }}

// deflateRecord returns record, a JSON object, stored deflated.
func deflateRecord(record []byte) ([]byte, error) {
	out := bytes.NewBuffer(make([]byte, 0, len(record)/2+16))
	out.WriteByte(deflatedRecord)
	w := <-deflaters
	defer func() { deflaters <- w }()
	w.Reset(out)
	if _, err := w.Write(record); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// RecordJSON returns a stored execution record (the value of
// executions/<id>) as JSON, inflating it if it is deflated.
func RecordJSON(value []byte) ([]byte, error) { return recordJSON(value) }

// recordJSON is RecordJSON.
func recordJSON(value []byte) ([]byte, error) {
	if len(value) == 0 || value[0] != deflatedRecord {
		return value, nil
	}
	r := inflaters.Get().(io.ReadCloser)
	defer inflaters.Put(r)
	if err := r.(flate.Resetter).Reset(bytes.NewReader(value[1:]), recordDict); err != nil {
		return nil, fmt.Errorf("inflate record: %w", err)
	}
	out := bytes.NewBuffer(make([]byte, 0, 3*len(value)))
	_, err := out.ReadFrom(r)
	data := out.Bytes()
	if err != nil {
		return nil, fmt.Errorf("inflate record: %w", err)
	}
	return data, nil
}

// withFolded appends the folded events to record, a JSON object.
func withFolded(record []byte, events []*sbruntime.Event) ([]byte, error) {
	out := append(record[:len(record)-1:len(record)-1], `,"folded":[`...)
	for i, ev := range events {
		if i > 0 {
			out = append(out, ',')
		}
		b, err := ev.EncodeJSON()
		if err != nil {
			return nil, err
		}
		out = append(out, b...)
	}
	return append(out, "]}"...), nil
}

// foldedRecord is the part of a stored record that holds folded events.
type foldedRecord struct {
	Folded []*sbruntime.Event `json:"folded"`
}

// foldedMarker finds records that carry folded events without decoding
// the others.
var foldedMarker = []byte(`"folded":[`)

// unfold returns the events folded into a stored record (none if it has
// no folded field).
func unfold(value []byte) ([]*sbruntime.Event, error) {
	record, err := recordJSON(value)
	if err != nil {
		return nil, err
	}
	if !bytes.Contains(record, foldedMarker) {
		return nil, nil
	}
	var f foldedRecord
	if err := json.Unmarshal(record, &f); err != nil {
		return nil, fmt.Errorf("decode folded history: %w", err)
	}
	return f.Folded, nil
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
	record, err := withFolded(data, list)
	if err != nil {
		return nil, nil, false
	}
	id := c.Execution.ID
	for _, ev := range list {
		if ev != checkpoint {
			deletes = append(deletes, deleteOp([]byte(c.s.k.eventAt(id, ev.Position, ev.Attempt))))
		}
	}
	return record, deletes, true
}
