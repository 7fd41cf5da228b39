package cluster

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/klauspost/compress/zstd"
	"go.etcd.io/etcd/api/v3/etcdserverpb"

	sbruntime "github.com/starbook/starbook/runtime"
)

// An ended execution is one compressed record. The end's txn writes its
// record compressed (zstd with a dictionary of what records and events
// say, see recordDict) and, when it can, with its history folded in as the
// record's "folded" list, deleting the events' keys (history/<id>/<pos>):
// an ended one-step execution is one value of about half the bytes of its
// record alone. Every read of a record decompresses it (recordJSON), and a
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

// compressedRecord starts a record stored compressed (zstd, with recordDict
// as its raw dictionary); a JSON record starts with '{'. Another dictionary
// would take another byte.
const compressedRecord = 0x02

// recordDict primes the compressor (zstd's raw dictionary) with the strings records and events
// repeat, so that a record of a kilobyte compresses to a few hundred bytes.
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

// The encoder and decoder are shared: their EncodeAll and DecodeAll are
// safe for concurrent use and keep their state between calls (a flate
// writer resets a megabyte of tables a record, and one per end, or a
// sync.Pool a GC empties, took a node's heap past 2 GB in a burst). The fastest level with the
// dictionary stores a one-step alert run's record and history, 1,100
// bytes, in about 360 (flate's level 5: 330, at twice the CPU).
var (
	recordEncoder = must(zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderDictRaw(1, recordDict),
		zstd.WithEncoderConcurrency(1), zstd.WithEncoderCRC(false), zstd.WithZeroFrames(true)))
	recordDecoder = must(zstd.NewReader(nil, zstd.WithDecoderDictRaw(1, recordDict), zstd.WithDecoderConcurrency(0),
		zstd.WithDecoderMaxMemory(16<<20)))
)

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// compressRecord returns record, a JSON object, as stored compressed.
func compressRecord(record []byte) []byte {
	return recordEncoder.EncodeAll(record, append(make([]byte, 0, len(record)/2+16), compressedRecord))
}

// RecordJSON returns a stored execution record (the value of
// executions/<id>) as JSON, decompressing it if it is compressed.
func RecordJSON(value []byte) ([]byte, error) { return recordJSON(value) }

// recordJSON is RecordJSON.
func recordJSON(value []byte) ([]byte, error) {
	if len(value) == 0 || value[0] != compressedRecord {
		return value, nil
	}
	data, err := recordDecoder.DecodeAll(value[1:], make([]byte, 0, 3*len(value)))
	if err != nil {
		return nil, fmt.Errorf("decompress record: %w", err)
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
