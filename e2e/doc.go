// Package e2e holds end-to-end tests that drive the real starbook binary as a
// subprocess: crash (SIGKILL) and restart, the CLI and the HTTP API together.
package e2e
