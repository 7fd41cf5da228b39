// Package auth authenticates API callers by bearer token and says what each
// role may do.
//
// Tokens are configured as (name, role, SHA-256 of the token): in a file
// ([LoadFile], YAML or JSON) or in the environment ([ParseEnv],
// STARBOOK_TOKENS="name:role:token,..."), where plaintext tokens are hashed at
// once and dropped. An [Authenticator] keeps only the hashes and compares a
// presented token's hash against every configured one in constant time.
//
// # Roles and permissions
//
// Roles are not a strict hierarchy: an approver may decide approvals but not
// start runs, so that the person who runs a change need not be the one who
// approves it. The table ([Allowed]) is:
//
//	permission  viewer  operator  approver  admin
//	read          x        x         x        x    GET of executions, runbooks, approvals, waits, logs, cluster
//	run                    x                  x    start executions
//	cancel                 x                  x    cancel executions
//	signal                 x                  x    send signals
//	pause                  x                  x    pause and resume runbooks
//	decide                           x        x    approve or reject approvals (as themselves)
//	decide_as                                 x    decide naming another user ("as")
//	apply                                     x    upload runbooks
//	audit                                     x    read the audit log
//	snapshot                                  x    download a snapshot of the whole store
//	force                                     x    start a paused runbook by hand (--force)
//
// People who sign in through OpenID Connect or use Slack have no token:
// the auth file names them ([Config]: people by email or Slack user id,
// and roles given to an identity provider's groups), and a [Directory]
// maps them to principals.
//
// Invariants: a plaintext token is never stored in an Authenticator, logged
// or returned; [Principal] carries only the name and role.
package auth
