package runtime_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"
	"go.starlark.net/syntax"

	"github.com/starbook/starbook/runtime"
)

// eval evaluates a Starlark expression with struct available.
func eval(t *testing.T, expr string) starlark.Value {
	t.Helper()
	env := starlark.StringDict{"struct": starlark.NewBuiltin("struct", starlarkstruct.Make)}
	v, err := starlark.EvalOptions(runtime.FileOptions, &starlark.Thread{}, "expr", expr, env)
	if err != nil {
		t.Fatalf("eval %s: %v", expr, err)
	}
	return v
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	tests := []struct {
		expr string
		json string
	}{
		{`None`, `null`},
		{`True`, `true`},
		{`42`, `42`},
		{`-7`, `-7`},
		{`1 << 70`, `1180591620717411303424`},
		{`1.5`, `1.5`},
		{`2.0`, `2`}, // JSON has one number type: a whole float comes back an int
		{`"a \"q\" é"`, `"a \"q\" é"`},
		{`[1, "a", None]`, `[1,"a",null]`},
		{`(1, (2,))`, `[1,[2]]`},
		{`{"b": 1, "a": [True]}`, `{"a":[true],"b":1}`},
		{`struct(y = {"k": "v"}, x = 1)`, `{"x":1,"y":{"k":"v"}}`},
		{`{"n": {"m": []}}`, `{"n":{"m":[]}}`},
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			data, err := runtime.Encode(eval(t, tt.expr))
			if err != nil {
				t.Fatalf("encode: %v", err)
			}
			if string(data) != tt.json {
				t.Fatalf("encode = %s, want %s", data, tt.json)
			}
			v, err := runtime.Decode(data)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			again, err := runtime.Encode(v)
			if err != nil || string(again) != tt.json {
				t.Fatalf("encode(decode) = %s, %v; want %s", again, err, tt.json)
			}
		})
	}
}

func TestDecodeGivesFrozenRecords(t *testing.T) {
	v, err := runtime.Decode(json.RawMessage(`{"labels": {"pod": "web-1"}, "hosts": ["a", "b"], "keys": 3}`))
	if err != nil {
		t.Fatal(err)
	}
	env := starlark.StringDict{"e": v}
	for expr, want := range map[string]string{
		`e.labels.pod`:                 `"web-1"`,
		`e["labels"]["pod"]`:           `"web-1"`,
		`e.keys`:                       `3`, // data shadows the method
		`e.get("missing", "d")`:        `"d"`,
		`sorted(e.labels.keys())`:      `["pod"]`,
		`[h.upper() for h in e.hosts]`: `["A", "B"]`,
	} {
		got, err := starlark.EvalOptions(runtime.FileOptions, &starlark.Thread{}, "expr", expr, env)
		if err != nil {
			t.Errorf("%s: %v", expr, err)
			continue
		}
		if got.String() != want {
			t.Errorf("%s = %s, want %s", expr, got, want)
		}
	}
	if _, err := starlark.EvalOptions(runtime.FileOptions, &starlark.Thread{}, "expr", `e.hosts.append("c")`, env); err == nil ||
		!strings.Contains(err.Error(), "frozen") {
		t.Errorf("appending to a decoded list: %v, want a frozen error", err)
	}
}

func TestEncodeRefuses(t *testing.T) {
	tests := []struct {
		expr string
		want string
	}{
		{`set([1])`, `value: a set cannot be stored as JSON`},
		{`lambda: 1`, `value: a function cannot be stored as JSON`},
		{`b"x"`, `value: a bytes cannot be stored as JSON`},
		{`float("inf")`, `value: +inf cannot be stored as JSON`},
		{`float("nan")`, `value: nan cannot be stored as JSON`},
		{`{1: "a"}`, `value: dict key 1 is a int; JSON keys must be strings`},
		{`{"a": [1, set()]}`, `value["a"][1]: a set cannot be stored`},
		{`struct(f = len)`, `value.f: a builtin_function_or_method cannot be stored`},
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			data, err := runtime.Encode(eval(t, tt.expr))
			if err == nil {
				t.Fatalf("encode = %s, want an error", data)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
		})
	}
}

func TestArgsHash(t *testing.T) {
	args := func(exprs ...string) starlark.Tuple {
		var tup starlark.Tuple
		for _, e := range exprs {
			tup = append(tup, eval(t, e))
		}
		return tup
	}
	kw := func(k, expr string) []starlark.Tuple { return []starlark.Tuple{{starlark.String(k), eval(t, expr)}} }
	base := runtime.ArgsHash("call", "effect", args(`"x"`, `{"a": 1, "b": 2}`), kw("value", `2`))

	// A recorded history holds these hashes: changing the hash breaks every
	// execution in flight with a nondeterminism error.
	const golden = "3cdc5cb9c3d441c0"
	if base != golden {
		t.Errorf("ArgsHash changed: got %s, want %s; every recorded history would diverge", base, golden)
	}
	if h := runtime.ArgsHash("call", "effect", args(`"x"`, `{"b": 2, "a": 1}`), kw("value", `2`)); h != base {
		t.Errorf("dict order changed the hash: %s != %s", h, base)
	}
	if runtime.ArgsHash("call", "f", args(`(1, 2)`), nil) != runtime.ArgsHash("call", "f", args(`[1, 2]`), nil) {
		t.Error("a tuple and a list with the same items hash differently; both are stored as lists")
	}
	differ := map[string]string{
		"kind":   runtime.ArgsHash("compensate", "effect", args(`"x"`, `{"a": 1, "b": 2}`), kw("value", `2`)),
		"name":   runtime.ArgsHash("call", "other", args(`"x"`, `{"a": 1, "b": 2}`), kw("value", `2`)),
		"arg":    runtime.ArgsHash("call", "effect", args(`"y"`, `{"a": 1, "b": 2}`), kw("value", `2`)),
		"nested": runtime.ArgsHash("call", "effect", args(`"x"`, `{"a": 1, "b": 3}`), kw("value", `2`)),
		"kwarg":  runtime.ArgsHash("call", "effect", args(`"x"`, `{"a": 1, "b": 2}`), kw("value", `3`)),
		"kwname": runtime.ArgsHash("call", "effect", args(`"x"`, `{"a": 1, "b": 2}`), kw("other", `2`)),
		"no kw":  runtime.ArgsHash("call", "effect", args(`"x"`, `{"a": 1, "b": 2}`), nil),
		"split":  runtime.ArgsHash("call", "effectx", args(`"x"`, `{"a": 1, "b": 2}`), kw("value", `2`)),
	}
	for what, h := range differ {
		if h == base {
			t.Errorf("a different %s hashes the same", what)
		}
	}
	// Values JSON cannot hold still hash, stably, by what they are.
	fn := runtime.ArgsHash("call", "f", args(`len`, `set([1])`, `float("nan")`, `{1: 2}`), nil)
	if fn != runtime.ArgsHash("call", "f", args(`len`, `set([1])`, `float("nan")`, `{1: 2}`), nil) {
		t.Error("hash of non-JSON arguments is not stable")
	}
}

func TestSecretsEncodeAsPlaceholders(t *testing.T) {
	th := &starlark.Thread{}
	tok := runtime.NewSecret(th, "TOKEN", "hunter22-value")
	other := runtime.NewSecret(th, "TOKEN", "another-value")
	concat, err := tok.Binary(syntax.PLUS, starlark.String("Bearer "), starlark.Right)
	if err != nil {
		t.Fatal(err)
	}
	list := starlark.NewList([]starlark.Value{tok, concat})
	dict := starlark.NewDict(1)
	_ = dict.SetKey(starlark.String("auth"), concat)
	for _, v := range []starlark.Value{tok, list, dict} {
		data, err := runtime.Encode(v)
		if err != nil {
			t.Fatalf("encode %s: %v", v, err)
		}
		if strings.Contains(string(data), "hunter22") {
			t.Fatalf("encoded %s holds the secret's value: %s", v, data)
		}
		var back any
		if err := json.Unmarshal(data, &back); err != nil {
			t.Fatal(err)
		}
		if s := fmt.Sprint(back); !strings.Contains(s, "<secret TOKEN>") {
			t.Errorf("encoded %s = %s, want the placeholder", v, s)
		}
	}
	if got, _ := runtime.RevealString(concat); got != "Bearer hunter22-value" {
		t.Errorf("revealed %q", got)
	}
	h1 := runtime.ArgsHash("call", "f", starlark.Tuple{tok}, nil)
	h2 := runtime.ArgsHash("call", "f", starlark.Tuple{other}, nil)
	if h1 != h2 {
		t.Error("a secret's value changed the args hash: it must hash by name only")
	}
	if h3 := runtime.ArgsHash("call", "f", starlark.Tuple{runtime.NewSecret(th, "OTHER", "hunter22-value")}, nil); h3 == h1 {
		t.Error("secrets with different names hash the same")
	}
}

func TestComparePositions(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"1", "1", 0},
		{"1", "2", -1},
		{"2", "10", -1},
		{"10", "9", 1},
		{"4", "4/0/1", -1},
		{"4/0/1", "5", -1},
		{"4/0/2", "4/1/1", -1},
		{"4/9/1", "4/10/1", -1},
		{"4/2/10", "4/2/9", 1},
		{"4/0/1/3/1", "4/0/1", 1},
		{"4/0/1/3/1", "4/0/2", -1},
	}
	sign := func(n int) int { return min(max(n, -1), 1) }
	for _, tt := range tests {
		if got := sign(runtime.ComparePositions(tt.a, tt.b)); got != tt.want {
			t.Errorf("ComparePositions(%s, %s) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
		if got := sign(runtime.ComparePositions(tt.b, tt.a)); got != -tt.want {
			t.Errorf("ComparePositions(%s, %s) = %d, want %d", tt.b, tt.a, got, -tt.want)
		}
	}
	ordered := []string{"1", "2", "2/0/1", "2/0/2", "2/1/1", "2/1/1/0/1", "2/1/2", "2/10/1", "3", "9", "10", "11/0/1", "100"}
	shuffled := slices.Clone(ordered)
	rand.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	slices.SortFunc(shuffled, runtime.ComparePositions)
	if !slices.Equal(shuffled, ordered) {
		t.Errorf("sorted %v, want %v", shuffled, ordered)
	}
}

// FuzzDecode checks that whatever Decode accepts encodes, and that encoding
// is a fixed point after one round: a replay sees what the first run saw.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{`null`, `{"a":[1,2.5,"x"],"b":{"c":null}}`, `1e20`, `-0`, `[1.0]`, `"\u003c"`, `123456789012345678901234567890`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := runtime.Decode(data)
		if err != nil {
			return
		}
		first, err := runtime.Encode(v)
		if err != nil {
			t.Fatalf("decoded %q but cannot encode %s: %v", data, v, err)
		}
		v2, err := runtime.Decode(first)
		if err != nil {
			t.Fatalf("cannot decode own encoding %s: %v", first, err)
		}
		second, err := runtime.Encode(v2)
		if err != nil || string(second) != string(first) {
			t.Fatalf("encode not stable: %s then %s (%v)", first, second, err)
		}
	})
}
