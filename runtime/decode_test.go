package runtime

import (
	"bytes"
	"encoding/json"
	"testing"

	"go.starlark.net/starlark"
)

// FuzzDecodeFast checks that decodeFast agrees with encoding/json: whatever
// it accepts, decodeStd accepts and decodes to the same value, with the same
// types and key order.
func FuzzDecodeFast(f *testing.F) {
	for _, s := range []string{
		`null`, `true`, `false`, `0`, `-0`, `-0.0`, `1e20`, `1E+2`, `2.5e-3`, `123456789012345678`, `-123456789012345678`,
		`1234567890123456789`, `123456789012345678901234567890`, `1e400`, `01`, `1.`, `-`, `.5`,
		`"x"`, `"\u003c\u0026"`, `"\ud800"`, `"a\"b\\"`, "\"\xff\"", "\"\x01\"", `"é"`, `"\/"`,
		`[]`, `[1,[2,[3]]]`, `[1,]`, `{}`, `{"b":1,"a":2}`, `{"a":1,"a":2}`, `{"a":1,"b":{"c":[null,true]}}`,
		` {"a" : [ 1 , 2 ] } `, `{"a":1} x`, `1 2`, `{"a"}`, `{1:2}`, "\"\ufffd\"", `{"\u00e9":1,"é":2}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fast, ok := decodeFast(data)
		if !ok {
			return
		}
		std, err := decodeStd(data)
		if err != nil {
			t.Fatalf("decodeFast took %q, encoding/json says %v", data, err)
		}
		if got, want := shape(fast), shape(std); got != want {
			t.Fatalf("decode %q: fast %s, encoding/json %s", data, got, want)
		}
	})
}

// shape renders v with its types and the order of its keys.
func shape(v starlark.Value) string {
	switch v := v.(type) {
	case *starlark.List:
		s := "list["
		for i := range v.Len() {
			s += shape(v.Index(i)) + ","
		}
		return s + "]"
	case *Record:
		s := "record{"
		for _, it := range v.Items() {
			s += shape(it[0]) + ":" + shape(it[1]) + ","
		}
		return s + "}"
	}
	return v.Type() + "(" + v.String() + ")"
}

func BenchmarkDecode(b *testing.B) {
	for _, tc := range []struct{ name, json string }{
		{"null", `null`},
		{"object", `{"status":"ok","items":[1,2,3],"host":{"name":"web-1","healthy":true,"load":0.25}}`},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Decode([]byte(tc.json)); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(tc.name+"/std", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := decodeStd([]byte(tc.json)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// FuzzWriteString checks that writeString quotes like json.Marshal.
func FuzzWriteString(f *testing.F) {
	for _, s := range []string{"", "plain", "a\"b", `a\b`, "<&>", "\x00\x1f\x7f", "é", "\u2028", "\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var buf bytes.Buffer
		writeString(&buf, s)
		want, _ := json.Marshal(s)
		if buf.String() != string(want) {
			t.Fatalf("writeString(%q) = %s, json.Marshal %s", s, buf.Bytes(), want)
		}
	})
}

func BenchmarkEncode(b *testing.B) {
	v, err := Decode([]byte(`{"status":"ok","items":[1,2,3],"host":{"name":"web-1","healthy":true,"load":0.25}}`))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Encode(v); err != nil {
			b.Fatal(err)
		}
	}
}
