package runtime

import (
	"encoding/json"
	"strconv"
	"time"
)

// EncodeJSON encodes e as json.Marshal does, byte for byte, without its
// reflection for the usual event: every step writes one, and encoding them
// was 2% of all CPU at 50 executions in flight. An event with anything
// json.Marshal would escape or compact (non-ASCII, HTML characters, spaces in
// the result) or a time it would refuse is left to json.Marshal. (Not a
// MarshalJSON method: a struct that embeds Event would inherit it and lose
// its own fields.)
func (e *Event) EncodeJSON() ([]byte, error) {
	if !e.plain() {
		return json.Marshal(e)
	}
	b := make([]byte, 0, 160+len(e.Result)+len(e.Error)+len(e.Name)+len(e.Where))
	b = append(b, `{"position":`...)
	b = appendPlainString(b, e.Position)
	b = append(b, `,"kind":`...)
	b = appendPlainString(b, e.Kind)
	if e.Name != "" {
		b = append(b, `,"name":`...)
		b = appendPlainString(b, e.Name)
	}
	if e.ArgsHash != "" {
		b = append(b, `,"args_hash":`...)
		b = appendPlainString(b, e.ArgsHash)
	}
	if len(e.Result) > 0 {
		b = append(b, `,"result":`...)
		b = append(b, e.Result...)
	}
	if e.Error != "" {
		b = append(b, `,"error":`...)
		b = appendPlainString(b, e.Error)
	}
	if e.Attempts != 0 {
		b = append(b, `,"attempts":`...)
		b = strconv.AppendInt(b, int64(e.Attempts), 10)
	}
	if e.HTTPCalls != 0 {
		b = append(b, `,"http_calls":`...)
		b = strconv.AppendInt(b, int64(e.HTTPCalls), 10)
	}
	if e.Items != 0 {
		b = append(b, `,"items":`...)
		b = strconv.AppendInt(b, int64(e.Items), 10)
	}
	b = appendTime(append(b, `,"started_at":`...), e.StartedAt)
	b = appendTime(append(b, `,"ended_at":`...), e.EndedAt)
	if e.Where != "" {
		b = append(b, `,"where":`...)
		b = appendPlainString(b, e.Where)
	}
	return append(b, '}'), nil
}

// EncodeJSON encodes x as json.Marshal does, byte for byte, without its
// reflection for the usual record (see Event.EncodeJSON): every execution
// writes its record at its start and its end.
func (x *Execution) EncodeJSON() ([]byte, error) {
	if !x.plain() {
		return json.Marshal(x)
	}
	b := make([]byte, 0, 256+len(x.Input)+len(x.Result)+len(x.Error)+len(x.Trigger.Source))
	b = append(b, `{"id":`...)
	b = appendPlainString(b, x.ID)
	b = append(b, `,"runbook":`...)
	b = appendPlainString(b, x.Runbook)
	b = append(b, `,"version":`...)
	b = appendPlainString(b, x.Version)
	b = append(b, `,"status":`...)
	b = appendPlainString(b, string(x.Status))
	b = append(b, `,"trigger":{"type":`...)
	b = appendPlainString(b, x.Trigger.Type)
	if x.Trigger.Source != "" {
		b = append(b, `,"source":`...)
		b = appendPlainString(b, x.Trigger.Source)
	}
	b = append(b, '}')
	if len(x.Input) > 0 {
		b = append(b, `,"input":`...)
		b = append(b, x.Input...)
	}
	if len(x.Result) > 0 {
		b = append(b, `,"result":`...)
		b = append(b, x.Result...)
	}
	if x.Error != "" {
		b = append(b, `,"error":`...)
		b = appendPlainString(b, x.Error)
	}
	if x.Node != "" {
		b = append(b, `,"node":`...)
		b = appendPlainString(b, x.Node)
	}
	b = appendTime(append(b, `,"created_at":`...), x.CreatedAt)
	b = appendTime(append(b, `,"updated_at":`...), x.UpdatedAt)
	if x.EndedAt != nil {
		b = appendTime(append(b, `,"ended_at":`...), *x.EndedAt)
	}
	if x.TraceParent != "" {
		b = append(b, `,"traceparent":`...)
		b = appendPlainString(b, x.TraceParent)
	}
	return append(b, '}'), nil
}

// plain reports whether json.Marshal would encode x's strings and raw values
// as they are and accept its times; trigger attributes (a map, its keys
// sorted) are left to it.
func (x *Execution) plain() bool {
	for _, s := range [...]string{x.ID, x.Runbook, x.Version, string(x.Status), x.Trigger.Type, x.Trigger.Source, x.Error, x.Node, x.TraceParent} {
		if !plainString(s) {
			return false
		}
	}
	// A redriven or migrated execution's record is left to json.Marshal: it is rare.
	return len(x.Trigger.Attrs) == 0 && len(x.Redrives) == 0 && x.RedriveOf == "" && len(x.RedrivenAs) == 0 && len(x.Migrations) == 0 && plainRaw(x.Input) && plainRaw(x.Result) &&
		plainTime(x.CreatedAt) && plainTime(x.UpdatedAt) && (x.EndedAt == nil || plainTime(*x.EndedAt))
}

func appendTime(b []byte, t time.Time) []byte {
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
}

// plain reports whether encoding/json would encode e's strings and result
// as they are and accept its times.
func (e *Event) plain() bool {
	for _, s := range [...]string{e.Position, e.Kind, e.Name, e.ArgsHash, e.Error, e.Where} {
		if !plainString(s) {
			return false
		}
	}
	return e.Attempt == 0 && plainRaw(e.Result) && plainTime(e.StartedAt) && plainTime(e.EndedAt)
}

// plainString reports whether s is printable ASCII that encoding/json
// writes unescaped (it escapes quotes, backslashes and <, >, &).
func plainString(s string) bool {
	for i := 0; i < len(s); i++ {
		if !plainByte(s[i]) {
			return false
		}
	}
	return true
}

func plainByte(c byte) bool {
	return c >= 0x20 && c < 0x7f && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
}

func appendPlainString(b []byte, s string) []byte {
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// plainRaw reports whether raw is valid JSON that encoding/json copies as it
// is: no whitespace to compact, no <, >, & to escape, ASCII only.
func plainRaw(raw json.RawMessage) bool {
	for _, c := range raw {
		if c <= ' ' || c >= 0x7f || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return len(raw) == 0 || json.Valid(raw)
}

// plainTime reports whether encoding/json accepts t: a year of four digits
// and an offset under 24 hours (it writes RFC 3339 with nanoseconds, as
// AppendFormat does).
func plainTime(t time.Time) bool {
	y := t.Year()
	_, offset := t.Zone()
	return y >= 0 && y <= 9999 && offset > -24*3600 && offset < 24*3600
}
