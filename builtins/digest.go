package builtins

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"

	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"

	sbruntime "github.com/starbook/starbook/runtime"
)

// The pure helpers for APIs that sign requests or webhooks themselves:
// sha256(data), hmac_sha256(key, msg) and the base64 module. Each takes a
// string, bytes or a secret. A digest is not a secret (it is what a request
// carries); an encoding or decoding of a secret is one, scrubbed as its
// source is.

// textOf returns v's bytes: a string's, a bytes value's or a secret's
// value, and the secret when v is one.
func textOf(fn, param string, v starlark.Value) ([]byte, *sbruntime.Secret, error) {
	switch v := v.(type) {
	case starlark.String:
		return []byte(v), nil, nil
	case starlark.Bytes:
		return []byte(v), nil, nil
	case *sbruntime.Secret:
		return []byte(v.Reveal()), v, nil
	}
	return nil, nil, fmt.Errorf("%s: %s: got %s, want string, bytes or secret", fn, param, v.Type())
}

// sha256Builtin implements sha256(data): the SHA-256 digest of data, in
// lowercase hex.
func sha256Builtin(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var data starlark.Value
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "data", &data); err != nil {
		return nil, err
	}
	text, _, err := textOf(b.Name(), "data", data)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(text)
	return starlark.String(hex.EncodeToString(sum[:])), nil
}

// hmacSHA256Builtin implements hmac_sha256(key, msg, encoding = "hex"):
// the HMAC-SHA256 of msg under key, in lowercase hex or in standard base64.
func hmacSHA256Builtin(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var key, msg starlark.Value
	encoding := "hex"
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "key", &key, "msg", &msg, "encoding?", &encoding); err != nil {
		return nil, err
	}
	k, _, err := textOf(b.Name(), "key", key)
	if err != nil {
		return nil, err
	}
	m, _, err := textOf(b.Name(), "msg", msg)
	if err != nil {
		return nil, err
	}
	mac := hmac.New(sha256.New, k)
	mac.Write(m)
	sum := mac.Sum(nil)
	switch encoding {
	case "hex":
		return starlark.String(hex.EncodeToString(sum)), nil
	case "base64":
		return starlark.String(base64.StdEncoding.EncodeToString(sum)), nil
	case "raw":
		return starlark.Bytes(sum), nil
	}
	return nil, fmt.Errorf("%s: encoding=%q: want \"hex\", \"base64\" or \"raw\"", b.Name(), encoding)
}

// base64Module is base64.encode(data, url = False, padding = True) and
// base64.decode(text, url = False): standard or URL-safe base64 (RFC 4648),
// with or without padding (decode accepts both). Encoding or decoding a
// secret gives a secret.
var base64Module = &starlarkstruct.Module{Name: "base64", Members: starlark.StringDict{
	"encode": starlark.NewBuiltin("base64.encode", base64Encode),
	"decode": starlark.NewBuiltin("base64.decode", base64Decode),
}}

func base64Encoding(url, padding bool) *base64.Encoding {
	enc := base64.StdEncoding
	if url {
		enc = base64.URLEncoding
	}
	if !padding {
		enc = enc.WithPadding(base64.NoPadding)
	}
	return enc
}

func base64Encode(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var data starlark.Value
	url, padding := false, true
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "data", &data, "url?", &url, "padding?", &padding); err != nil {
		return nil, err
	}
	text, secret, err := textOf(b.Name(), "data", data)
	if err != nil {
		return nil, err
	}
	out := base64Encoding(url, padding).EncodeToString(text)
	if secret != nil {
		return sbruntime.DeriveSecret(th, "base64", secret, out), nil
	}
	return starlark.String(out), nil
}

func base64Decode(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var data starlark.Value
	url := false
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "text", &data, "url?", &url); err != nil {
		return nil, err
	}
	text, secret, err := textOf(b.Name(), "text", data)
	if err != nil {
		return nil, err
	}
	enc := base64Encoding(url, true)
	if len(text)%4 != 0 { // unpadded
		enc = base64Encoding(url, false)
	}
	out, err := enc.DecodeString(string(text))
	if err != nil {
		if secret != nil {
			return nil, fmt.Errorf("%s: %s is not base64", b.Name(), secret)
		}
		return nil, fmt.Errorf("%s: not base64: %w", b.Name(), err)
	}
	if secret != nil {
		return sbruntime.DeriveSecret(th, "base64.decode", secret, string(out)), nil
	}
	return starlark.String(out), nil
}
