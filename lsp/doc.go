// Package lsp is starbook's language server (`starbook lsp`): it speaks the
// Language Server Protocol over stdio, through github.com/tliron/glsp.
//
// It owns the open documents (Store) and what an editor asks of them:
// diagnostics (check.Files over the document and the files it loads, @std
// served by stdlib.Default), completion, hover and signature help (package
// reference for the built-ins and @std; docstrings for the runbook's own
// functions and its loaded modules), go to definition across load() (an
// @std module is written read-only under the user's cache directory, so
// every editor can open it as a plain file), document symbols and
// formatting (package starfmt).
//
// Why github.com/tliron/glsp rather than go.lsp.dev: glsp (v0.2.2) is the
// module served here, its protocol_3_16 types cover every message this
// server speaks, and the tests' client decodes the answers with them. glsp
// serves one message at a time, in order; hence the first invariant below.
// Why @std as files under the cache directory rather than starbook-std:
// URIs: every editor opens a file: URI, while a custom scheme needs a
// content provider in each client (VS Code has one, Neovim has none).
//
// Invariants:
//   - No request waits for a check: requests are answered from the text and
//     its last good parse; check.Files runs in one background goroutine per
//     document, debounced (Debounce after the last change), and publishes
//     when it ends unless the document changed meanwhile.
//   - Work is bounded: a document larger than MaxCheckBytes is not checked
//     (an information diagnostic says so) and not parsed for completion;
//     loads are followed to at most maxLoadedFiles files.
//   - Every handler recovers from a panic and answers an error; a panic in a
//     check becomes a diagnostic. Bad input never stops the server.
package lsp
