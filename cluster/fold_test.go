package cluster

import (
	"bytes"
	"runtime"
	"testing"
)

// TestCompressedRecords: a record stored compressed reads back as it was, a
// JSON record reads as itself, and compressing and decompressing one
// allocates kilobytes, not the megabyte of a new flate writer (a burst of
// ends took a node's heap past 2 GB when each end had its own).
func TestCompressedRecords(t *testing.T) {
	record := []byte(`{"id":"01M98G7Y8Q3V2W8QJ1Z9XK5N6T","runbook":"one","version":"e07076f10d47","status":"completed",` +
		`"trigger":{"type":"alert","source":"00000000000000c7"},"input":{"status":"firing","labels":{"alertname":"Probe"}},` +
		`"created_at":"2026-12-07T12:41:10.123456789Z","updated_at":"2026-12-07T12:41:10.223456789Z","ended_at":"2026-12-07T12:41:10.223456789Z",` +
		`"folded":[{"position":"1","kind":"call","name":"http.get","args_hash":"03e402ddea01d2bf","result":{"status":200}}]}`)
	stored := compressRecord(record)
	if stored[0] != compressedRecord || len(stored) >= len(record)*2/3 {
		t.Errorf("stored %d bytes for a %d-byte record (first byte %#x)", len(stored), len(record), stored[0])
	}
	for _, value := range [][]byte{stored, record} {
		got, err := recordJSON(value)
		if err != nil || !bytes.Equal(got, record) {
			t.Fatalf("read back %q, %v", got, err)
		}
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	const n = 200
	for range n {
		v := compressRecord(record)
		if _, err := recordJSON(v); err != nil {
			t.Fatal(err)
		}
	}
	runtime.ReadMemStats(&after)
	if per := (after.TotalAlloc - before.TotalAlloc) / n; per > 64<<10 {
		t.Errorf("a record compressed and decompressed allocates %d bytes", per)
	}
}
