// Command starbook runs a starbook node (serve) and talks to one over its HTTP
// API (apply, run, ls, show, cancel). Each subcommand lives in its own file,
// parses its flags and calls the api package; none of them keeps state.
//
// Every client subcommand talks to --server (env STARBOOK_SERVER, default
// http://127.0.0.1:7070) and exits with status 1 after printing
// "starbook: <error>" to stderr when it fails.
package main
