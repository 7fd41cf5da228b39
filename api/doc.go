// Package api is starbook's HTTP API: the handler a node serves ([NewHandler])
// and the client the CLI uses ([Client]). It owns the wire format only; what a
// request does is up to the [starbook.Service] behind it.
//
// # Routes
//
//	GET  /healthz                              {"status":"ok"} or 503 {"status":"unhealthy","error":...}
//	POST /api/v1/runbooks                      {"files":{name:source}} -> {"runbooks":[...]}
//	GET  /api/v1/runbooks                      {"runbooks":[...]}
//	POST /api/v1/executions                    {"runbook":name,"input":any} -> 201 {"execution":{...}}
//	POST /api/v1/runbooks/{name}/executions    {"input":any} -> 201 {"execution":{...}}; 400 {"error","pointer"} when the input schema refuses it
//	GET  /api/v1/runbooks/{name}?fires=N       {"name","current","versions",...,"description","files","input_schema","triggers_in_words","schedules"}
//	GET  /api/v1/runbooks/{name}/form          {"runbook","version","form":{"fields":[...],"raw","open"},"schema"} (schema.FormOf)
//	GET  /api/v1/schedules                     {"at","schedules":[{"runbook","spec","zone","words","next","last_tick","pause"}]}
//	GET  /api/v1/executions?status=&runbook=&limit=&after=  {"executions":[newest first],"next":id}
//	GET  /api/v1/executions/{id}?wait=DURATION {"execution":{...},"history":[...],"usage":{...}}
//	POST /api/v1/executions/{id}/cancel        {"execution":{...}}
//	POST /api/v1/executions/{id}/signals/{name}  {"data":any} (optional) -> {"delivered":true,...}
//	POST /api/v1/executions/{id}/approvals/{position...}  {"decision":"approve"|"reject","comment","as"} -> {"approval":{...}}
//	POST /api/v1/executions/{id}/approve       the same, for the only pending approval (409 if several)
//	GET  /api/v1/approvals                     {"approvals":[pending approvals]}
//	GET  /api/v1/waits                         {"waits":[pending approvals and signal waits]}
//	GET  /api/v1/whoami                        {"auth":bool,"name","role","permissions"}
//	GET  /api/v1/audit?after=&limit=           {"audit":[records oldest first],"next":id} (admin)
//	GET  /api/v1/dead-letters?runbook=&reason= {"dead_letters":[newest first]}
//	POST /api/v1/dead-letters/{id}/ack         {"comment"} (optional) -> {"dead_letter":{...}}; 404 unknown
//	POST /api/v1/executions/{id}/redrive       {"from":"failed"|"start","version":"pinned"|"current","dry_run"} -> {"redrive":{...},"execution":{...}}; 409 running, compensated, incompatible or redriven meanwhile
//	GET  /api/v1/slo?runbook=                  {"at","slos":[{"runbook","objective","success_rate","error_budget","latency","burn_rates",...}]}
//	GET  /api/v1/snapshot                      an etcd snapshot of the whole store (application/octet-stream, sha256 trailer) (admin)
//	GET  /api/v1/usage?runbook=&days=          {"usage":[{"runbook","day","executions","steps","retries","http_calls","fan_out_items","wall_time_ms","budgets"}]}
//
// # Authentication and audit
//
// With [WithAuth], every /api/ route needs Authorization: Bearer <token>
// whose role has the route's permission ([RoutePermission]; the table is in
// package auth): 401 without a valid token, 403 with a role that may not.
// /healthz, /readyz and the hooks (their own authentication) stay open. The
// token's holder is who starts (the trigger's source), signals and decides;
// "as" may name someone else only for an admin. With [WithSessions] (the
// web UI's single sign-on, package sso) a session cookie stands for the
// token when no Authorization header is sent; a mutating request with it
// must carry the session's [CSRFHeader] (403 without it), and a forged or
// expired cookie is a 401. Every mutating request is
// logged and, when the Service is an [starbook.AuditLog], stored (401s only logged).
//
// # Invariants
//
//   - A request is validated completely (body size, JSON syntax and types, no
//     unknown fields, no trailing data, query parameters) before the Service is
//     called: a refused request stores nothing.
//   - Every error is a JSON object {"error":"message"} with a status derived
//     from the error: [sbruntime.ErrNotFound] 404, [*sbruntime.InputError] and
//     bad requests 400, 401 (no valid token), [sbruntime.ErrForbidden] and
//     roles that may not 403, [sbruntime.ErrConflict] 409 (already decided),
//     oversized bodies 413 (naming the flag that sets the cap),
//     [*sbruntime.LimitError] 429, wrong methods 405, anything else 500 (and
//     logged).
//   - Bodies must be UTF-8; paths must be canonical (no ".", ".." or empty
//     segments) and path values must be able to name something stored:
//     anything else is a 400 before the Service is called.
//   - The trigger of an execution started over HTTP is {"type":"api"}, unless
//     the caller sends X-Starbook-Trigger: manual (the CLI does), which records
//     {"type":"manual","source":X-Starbook-User}.
package api
