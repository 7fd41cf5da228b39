package runtime

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"sort"
	"strconv"
	"strings"
	"sync"

	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"
)

// Encode converts a Starlark value to JSON, the only form that crosses a
// checkpoint. Dicts need string keys; tuples become lists; secrets are written
// as their placeholder "<secret NAME>" and never as their value. Functions,
// sets, bytes and non-finite floats are refused with an error naming the path.
func Encode(v starlark.Value) (json.RawMessage, error) {
	buf := getBuffer()
	defer putBuffer(buf)
	if err := encode(buf, v, false); err != nil {
		return nil, under(err, "value")
	}
	return bytes.Clone(buf.Bytes()), nil
}

// buffers are the scratch space of Encode and ArgsHash, which every step
// calls.
var buffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

func getBuffer() *bytes.Buffer {
	b := buffers.Get().(*bytes.Buffer)
	b.Reset()
	return b
}

// putBuffer keeps b for reuse unless a large result grew it.
func putBuffer(b *bytes.Buffer) {
	if b.Cap() <= 64<<10 {
		buffers.Put(b)
	}
}

// encodeError is a value Encode refuses. Its path ("value[\"a\"][1]") is
// built as the error unwinds, innermost part first, so that encoding a
// value that can be stored formats no path at all.
type encodeError struct {
	path []string // innermost first
	msg  string
}

func (e *encodeError) Error() string {
	var b strings.Builder
	for i := len(e.path) - 1; i >= 0; i-- {
		b.WriteString(e.path[i])
	}
	return b.String() + ": " + e.msg
}

// under adds the part of the path above where err happened.
func under(err error, part string) error {
	if e, ok := err.(*encodeError); ok {
		e.path = append(e.path, part)
	}
	return err
}

// encode writes v as JSON. lenient (used for argument hashing only) writes a
// stable description of values JSON cannot hold instead of failing.
func encode(buf *bytes.Buffer, v starlark.Value, lenient bool) error {
	switch x := v.(type) {
	case starlark.NoneType:
		buf.WriteString("null")
	case starlark.Bool:
		buf.WriteString(strconv.FormatBool(bool(x)))
	case starlark.Int:
		buf.WriteString(x.String())
	case starlark.Float:
		f := float64(x)
		if math.IsInf(f, 0) || math.IsNaN(f) {
			if lenient {
				buf.WriteString(strconv.Quote(x.String()))
				return nil
			}
			return &encodeError{msg: x.String() + " cannot be stored as JSON"}
		}
		if f == 0 {
			f = 0 // -0 would decode as the int 0: store one zero
		}
		b, _ := json.Marshal(f)
		buf.Write(b)
	case starlark.String:
		writeString(buf, string(x))
	case *Secret:
		writeString(buf, x.String())
	case *Record:
		return encodeDict(buf, x.dict, lenient)
	case *starlark.Dict:
		return encodeDict(buf, x, lenient)
	case *starlarkstruct.Struct:
		d := starlark.StringDict{}
		x.ToStringDict(d)
		keys := d.Keys()
		buf.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				buf.WriteByte(',')
			}
			writeString(buf, k)
			buf.WriteByte(':')
			if err := encode(buf, d[k], lenient); err != nil {
				return under(err, "."+k)
			}
		}
		buf.WriteByte('}')
	case *starlark.List:
		return encodeList(buf, x.Len(), x.Index, lenient)
	case starlark.Tuple:
		return encodeList(buf, len(x), x.Index, lenient)
	case JSONValue:
		buf.Write(x.JSON())
	default:
		if lenient {
			desc := v.Type()
			if c, ok := v.(starlark.Callable); ok {
				desc += " " + c.Name()
			} else {
				desc += " " + v.String()
			}
			writeString(buf, "<"+desc+">")
			return nil
		}
		return &encodeError{msg: "a " + v.Type() + " cannot be stored as JSON (only None, bool, int, float, string, list, tuple, dict and struct can)"}
	}
	return nil
}

// writeString writes s as a JSON string, as json.Marshal does: a string with
// nothing to escape is copied as it is.
func writeString(buf *bytes.Buffer, s string) {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			b, _ := json.Marshal(s)
			buf.Write(b)
			return
		}
	}
	buf.WriteByte('"')
	buf.WriteString(s)
	buf.WriteByte('"')
}

// encodeList writes a list or tuple. It takes the elements by index, so that
// ArgsHash can pass a tuple without making it an interface value.
func encodeList(buf *bytes.Buffer, n int, index func(int) starlark.Value, lenient bool) error {
	buf.WriteByte('[')
	for i := range n {
		if i > 0 {
			buf.WriteByte(',')
		}
		if err := encode(buf, index(i), lenient); err != nil {
			return under(err, "["+strconv.Itoa(i)+"]")
		}
	}
	buf.WriteByte(']')
	return nil
}

func encodeDict(buf *bytes.Buffer, d *starlark.Dict, lenient bool) error {
	type kv struct {
		k string
		v starlark.Value
	}
	items := make([]kv, 0, d.Len())
	for _, it := range d.Items() {
		k, ok := it[0].(starlark.String)
		if !ok {
			if !lenient {
				return &encodeError{msg: fmt.Sprintf("dict key %s is a %s; JSON keys must be strings", it[0].String(), it[0].Type())}
			}
			items = append(items, kv{it[0].String(), it[1]})
			continue
		}
		items = append(items, kv{string(k), it[1]})
	}
	sort.Slice(items, func(i, j int) bool { return items[i].k < items[j].k })
	buf.WriteByte('{')
	for i, it := range items {
		if i > 0 {
			buf.WriteByte(',')
		}
		writeString(buf, it.k)
		buf.WriteByte(':')
		if err := encode(buf, it.v, lenient); err != nil {
			return under(err, "["+strconv.Quote(it.k)+"]")
		}
	}
	buf.WriteByte('}')
	return nil
}

// Decode converts JSON to frozen Starlark values: objects become [Record]s
// (readable as r["key"] and r.key), arrays lists, integers ints.
func Decode(data json.RawMessage) (starlark.Value, error) {
	if len(data) == 0 {
		return starlark.None, nil
	}
	if v, ok := decodeFast(data); ok {
		v.Freeze()
		return v, nil
	}
	return decodeStd(data)
}

// decodeStd is Decode through encoding/json: the reference that decodeFast
// must agree with, and the path for everything decodeFast declines.
func decodeStd(data json.RawMessage) (starlark.Value, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var raw any
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("decode JSON: %w", err)
	}
	v, err := fromGo(raw)
	if err != nil {
		return nil, err
	}
	v.Freeze()
	return v, nil
}

func fromGo(x any) (starlark.Value, error) {
	switch x := x.(type) {
	case nil:
		return starlark.None, nil
	case bool:
		return starlark.Bool(x), nil
	case string:
		return starlark.String(x), nil
	case json.Number:
		return numberValue(string(x))
	case []any:
		elems := make([]starlark.Value, len(x))
		for i, e := range x {
			v, err := fromGo(e)
			if err != nil {
				return nil, err
			}
			elems[i] = v
		}
		return starlark.NewList(elems), nil
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		d := starlark.NewDict(len(x))
		for _, k := range keys {
			v, err := fromGo(x[k])
			if err != nil {
				return nil, err
			}
			_ = d.SetKey(starlark.String(k), v)
		}
		return &Record{dict: d}, nil
	}
	return nil, fmt.Errorf("decode: unexpected %T", x)
}

// numberValue is the Starlark value of the JSON number s: an int when s is
// one, else a float.
func numberValue(s string) (starlark.Value, error) {
	if i, err := strconv.ParseInt(s, 10, 64); err == nil {
		return starlark.MakeInt64(i), nil
	}
	if b, ok := new(big.Int).SetString(s, 10); ok {
		return starlark.MakeBigInt(b), nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return nil, fmt.Errorf("decode number %s: %w", s, err)
	}
	return starlark.Float(f), nil
}

// ArgsHash is a short stable hash of a step's kind, name and arguments, used to
// detect a replay that calls something else at a recorded position. Secrets
// hash by name, functions by name, so no secret value influences it.
func ArgsHash(kind, name string, args starlark.Tuple, kwargs []starlark.Tuple) string {
	buf := getBuffer()
	defer putBuffer(buf)
	buf.WriteString(kind)
	buf.WriteByte(0)
	buf.WriteString(name)
	buf.WriteByte(0)
	_ = encodeList(buf, len(args), args.Index, true) // lenient: no error
	for _, kv := range kwargs {
		buf.WriteByte(0)
		_ = encodeList(buf, len(kv), kv.Index, true)
	}
	sum := sha256.Sum256(buf.Bytes())
	var text [16]byte
	hex.Encode(text[:], sum[:8])
	return string(text[:])
}
