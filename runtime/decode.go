package runtime

import (
	"encoding/json"
	"slices"
	"strings"
	"unicode/utf8"

	"go.starlark.net/starlark"
)

// decodeFast decodes data straight to Starlark values, without encoding/json's
// decoder and its intermediate Go values: every step result goes through
// Decode, so this is on the path of every step. It declines (ok false)
// anything it does not decode exactly as decodeStd would, and every error, so
// that Decode gives encoding/json's result or error in those cases;
// FuzzDecodeFast checks the two agree. The value is not frozen.
func decodeFast(data []byte) (v starlark.Value, ok bool) {
	d := fastDecoder{data: data}
	if v, ok = d.value(); !ok {
		return nil, false
	}
	d.space()
	if d.i != len(d.data) {
		return nil, false // json.Decoder would ignore what follows; let it
	}
	return v, true
}

// maxFastDepth bounds decodeFast's recursion; deeper values go to
// encoding/json, which has its own limit.
const maxFastDepth = 1000

type fastDecoder struct {
	data  []byte
	i     int
	depth int
}

func (d *fastDecoder) space() {
	for d.i < len(d.data) {
		switch d.data[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

func (d *fastDecoder) value() (starlark.Value, bool) {
	d.space()
	if d.i >= len(d.data) {
		return nil, false
	}
	switch c := d.data[d.i]; {
	case c == 'n':
		return d.literal("null", starlark.None)
	case c == 't':
		return d.literal("true", starlark.True)
	case c == 'f':
		return d.literal("false", starlark.False)
	case c == '"':
		s, ok := d.string()
		return starlark.String(s), ok
	case c == '[':
		return d.array()
	case c == '{':
		return d.object()
	case c == '-' || '0' <= c && c <= '9':
		return d.number()
	}
	return nil, false
}

func (d *fastDecoder) literal(word string, v starlark.Value) (starlark.Value, bool) {
	if len(d.data)-d.i < len(word) || string(d.data[d.i:d.i+len(word)]) != word {
		return nil, false
	}
	d.i += len(word)
	return v, true
}

// string decodes the string at d.i. Escapes and invalid UTF-8 (which
// encoding/json replaces) are left to encoding/json's own unquoting.
func (d *fastDecoder) string() (string, bool) {
	start := d.i
	plain := true
	for i := start + 1; i < len(d.data); i++ {
		switch c := d.data[i]; {
		case c == '"':
			d.i = i + 1
			body := d.data[start+1 : i]
			if plain && utf8.Valid(body) {
				return string(body), true
			}
			var s string
			if err := json.Unmarshal(d.data[start:d.i], &s); err != nil {
				return "", false
			}
			return s, true
		case c == '\\':
			plain = false
			i++ // the escaped byte cannot end the string
		case c < 0x20:
			return "", false // invalid JSON
		}
	}
	return "", false
}

// number decodes a number of JSON's grammar: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
func (d *fastDecoder) number() (starlark.Value, bool) {
	start, i, n := d.i, d.i, len(d.data)
	digits := func() bool {
		from := i
		for i < n && '0' <= d.data[i] && d.data[i] <= '9' {
			i++
		}
		return i > from
	}
	neg := i < n && d.data[i] == '-'
	if neg {
		i++
	}
	switch {
	case i < n && d.data[i] == '0':
		i++
	case !digits():
		return nil, false
	}
	integer := true
	if i < n && d.data[i] == '.' {
		i++
		if !digits() {
			return nil, false
		}
		integer = false
	}
	if i < n && (d.data[i] == 'e' || d.data[i] == 'E') {
		i++
		if i < n && (d.data[i] == '+' || d.data[i] == '-') {
			i++
		}
		if !digits() {
			return nil, false
		}
		integer = false
	}
	d.i = i
	text := d.data[start:i]
	if integer && len(text) <= 18 { // fits an int64: no parse error possible
		var x int64
		for _, c := range text {
			if c != '-' {
				x = x*10 + int64(c-'0')
			}
		}
		if neg {
			x = -x
		}
		return starlark.MakeInt64(x), true
	}
	v, err := numberValue(string(text))
	return v, err == nil
}

func (d *fastDecoder) array() (starlark.Value, bool) {
	if d.depth++; d.depth > maxFastDepth {
		return nil, false
	}
	defer func() { d.depth-- }()
	d.i++ // [
	var elems []starlark.Value
	d.space()
	if d.i < len(d.data) && d.data[d.i] == ']' {
		d.i++
		return starlark.NewList(elems), true
	}
	for {
		v, ok := d.value()
		if !ok {
			return nil, false
		}
		elems = append(elems, v)
		end, ok := d.separator(']')
		if !ok {
			return nil, false
		}
		if end {
			return starlark.NewList(elems), true
		}
	}
}

// separator consumes what follows a member of an array or object: a comma
// (end false) or the closing byte (end true); anything else is malformed.
func (d *fastDecoder) separator(closing byte) (end, ok bool) {
	d.space()
	if d.i >= len(d.data) {
		return false, false
	}
	switch d.data[d.i] {
	case ',':
		d.i++
		return false, true
	case closing:
		d.i++
		return true, true
	}
	return false, false
}

// object decodes an object to a Record whose keys are in sorted order, like
// decodeStd's; of keys given twice the last wins, as in a Go map.
func (d *fastDecoder) object() (starlark.Value, bool) {
	if d.depth++; d.depth > maxFastDepth {
		return nil, false
	}
	defer func() { d.depth-- }()
	d.i++ // {
	type member struct {
		key   string
		value starlark.Value
	}
	var members []member
	d.space()
	if d.i < len(d.data) && d.data[d.i] == '}' {
		d.i++
		return &Record{dict: starlark.NewDict(0)}, true
	}
	for {
		d.space()
		if d.i >= len(d.data) || d.data[d.i] != '"' {
			return nil, false
		}
		k, ok := d.string()
		if !ok {
			return nil, false
		}
		d.space()
		if d.i >= len(d.data) || d.data[d.i] != ':' {
			return nil, false
		}
		d.i++
		v, ok := d.value()
		if !ok {
			return nil, false
		}
		members = append(members, member{k, v})
		end, ok := d.separator('}')
		if !ok {
			return nil, false
		}
		if end {
			break
		}
	}
	// Stable: of equal keys the later one is set last and wins.
	slices.SortStableFunc(members, func(a, b member) int { return strings.Compare(a.key, b.key) })
	dict := starlark.NewDict(len(members))
	for _, m := range members {
		_ = dict.SetKey(starlark.String(m.key), m.value)
	}
	return &Record{dict: dict}, true
}
