// starbook web UI: hash-routed pages over the JSON API. No framework, no
// build step: every element is made with el() and filled with textContent.
"use strict";

const POLL_MS = 2000;
const PAGE = 25;
let pollTimer = null;
let stream = null;

// ---------- helpers ----------

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (k === "style") Object.assign(e.style, v);
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

// The API token (when the node requires one) lives in this browser's
// localStorage and is sent as a bearer token with every API call.
function token() {
  return localStorage.getItem("starbook.token") || "";
}

// The single sign-on session (GET /auth/session): {sso, name, role, csrf}.
// Signed in, the session cookie goes with every call by itself, and a
// mutating call carries the session's CSRF token.
let session = {sso: false};

// knownCaller says whether the node knows who calls (a token or a
// session), so that no name need be typed in.
function knownCaller() {
  return !!token() || !!session.name;
}

function authHeaders(headers, method) {
  const h = Object.assign({"Accept": "application/json"}, headers || {});
  if (session.name) {
    if (!["GET", "HEAD", "OPTIONS"].includes((method || "GET").toUpperCase())) h["X-CSRF-Token"] = session.csrf;
  } else if (token()) h["Authorization"] = "Bearer " + token();
  return h;
}

async function api(path, opts) {
  opts = Object.assign({}, opts);
  opts.headers = authHeaders(opts.headers, opts.method);
  const res = await fetch(path, opts);
  let body = null;
  try { body = await res.json(); } catch (_) { body = null; }
  if (res.status === 401 && session.sso) signIn(); // the session ended: offer to sign in again
  if (!res.ok) throw Object.assign(new Error((body && body.error) || (res.status + " " + res.statusText)), {status: res.status, body});
  return body;
}

function fmtTime(s) {
  if (!s) return "-";
  const d = new Date(s);
  if (isNaN(d) || d.getFullYear() < 2000) return "-";
  return d.toLocaleString();
}

function fmtDur(ms) {
  if (ms === undefined || ms === null || isNaN(ms)) return "-";
  if (ms < 1) return (ms * 1000).toFixed(0) + "µs";
  if (ms < 1000) return ms.toFixed(ms < 10 ? 1 : 0) + "ms";
  const s = ms / 1000;
  if (s < 60) return s.toFixed(s < 10 ? 2 : 1) + "s";
  const m = Math.floor(s / 60);
  if (m < 60) return m + "m" + Math.round(s % 60) + "s";
  const h = Math.floor(m / 60);
  if (h < 48) return h + "h" + (m % 60) + "m";
  return Math.floor(h / 24) + "d" + (h % 24) + "h";
}

function execDuration(e) {
  const start = new Date(e.created_at);
  const end = e.ended_at ? new Date(e.ended_at) : new Date();
  return end - start;
}

function badge(status) {
  return el("span", {class: "badge s-" + status}, status);
}

function trigger(t) {
  if (!t) return "-";
  return t.source ? t.type + ":" + t.source : t.type;
}

function who() {
  return (document.getElementById("who").value || "").trim();
}

function pretty(raw) {
  if (raw === undefined || raw === null) return "";
  try { return JSON.stringify(raw, null, 2); } catch (_) { return String(raw); }
}

function stopLive() {
  if (pollTimer) { clearTimeout(pollTimer); pollTimer = null; }
  if (stream) { stream.close(); stream = null; }
}

// poll calls fn now and every POLL_MS while the page stays the same.
function poll(route, fn) {
  const tick = async () => {
    if (location.hash !== route) return;
    try { await fn(); } catch (err) { showError(err); }
    if (location.hash === route) pollTimer = setTimeout(tick, POLL_MS);
  };
  tick();
}

function showError(err) {
  let box = document.getElementById("error");
  if (!box) {
    box = el("div", {id: "error", class: "error", role: "alert"});
    document.getElementById("main").prepend(box);
  }
  box.textContent = String(err && err.message || err);
}

function clearError() {
  const box = document.getElementById("error");
  if (box) box.remove();
}

function setMain(...children) {
  const main = document.getElementById("main");
  main.replaceChildren(...children);
}

// ---------- executions list ----------

// Pages follow the API's cursor: page i lists PAGE executions older than
// cursors[i] ("" for the newest), and each answer's next is the cursor of the
// page after it. A page other than the first so keeps its rows while newer
// executions arrive. seq drops answers that a later refresh superseded.
const listState = {status: "", runbook: "", page: 0, cursors: [""], seq: 0};

function resetPages() {
  listState.page = 0;
  listState.cursors = [""];
}

function executionsPage(route) {
  const status = el("select", {id: "f-status", onchange: e => { listState.status = e.target.value; resetPages(); refresh(); }},
    ["", "pending", "running", "waiting", "completed", "failed", "compensating", "cancelled", "stuck"].map(s =>
      el("option", {value: s, selected: s === listState.status}, s || "any status")));
  const runbook = el("input", {id: "f-runbook", placeholder: "runbook", value: listState.runbook,
    onchange: e => { listState.runbook = e.target.value.trim(); resetPages(); refresh(); }});
  const tbody = el("tbody");
  const pager = el("div", {class: "pager"});
  const table = el("table", {class: "list", id: "executions"},
    el("thead", {}, el("tr", {}, ["Execution", "Status", "Runbook", "Trigger", "Started", "Duration"].map(h => el("th", {}, h)))),
    tbody);
  setMain(el("h1", {}, "Executions"), el("div", {class: "filters"}, status, runbook,
    el("span", {class: "muted live"}, "updates live")), table, pager);

  async function refresh() {
    const q = new URLSearchParams();
    if (listState.status) q.set("status", listState.status);
    if (listState.runbook) q.set("runbook", listState.runbook);
    q.set("limit", String(PAGE));
    const page = listState.page, seq = ++listState.seq;
    if (listState.cursors[page]) q.set("after", listState.cursors[page]);
    const body = await api("/api/v1/executions?" + q);
    if (seq !== listState.seq) return;
    clearError();
    const rows = body.executions || [];
    listState.cursors.length = page + 1;
    if (body.next) listState.cursors.push(body.next);
    tbody.replaceChildren(...rows.map(e => el("tr", {class: "s-" + e.status},
      el("td", {}, el("a", {href: "#/executions/" + e.id, class: "mono"}, e.id)),
      el("td", {}, badge(e.status)),
      el("td", {}, el("a", {href: "#/runbooks/" + encodeURIComponent(e.runbook)}, e.runbook)),
      el("td", {}, trigger(e.trigger)),
      el("td", {}, fmtTime(e.created_at)),
      el("td", {}, fmtDur(execDuration(e))))));
    if (rows.length === 0) tbody.append(el("tr", {}, el("td", {colspan: 6, class: "muted"}, "No executions.")));
    const more = Boolean(body.next);
    pager.replaceChildren(
      el("button", {disabled: listState.page === 0, onclick: () => { listState.page--; refresh(); }}, "← Newer"),
      el("span", {class: "muted"}, " page " + (listState.page + 1) + " "),
      el("button", {disabled: !more, onclick: () => { listState.page++; refresh(); }}, "Older →"));
  }
  poll(route, refresh);
}

// ---------- one execution ----------

function executionPage(route, id) {
  const head = el("div", {id: "exec-head"});
  const steps = el("div", {id: "timeline", class: "timeline"});
  const approvals = el("div", {id: "exec-approvals"});
  const io = el("div", {id: "exec-io"});
  const logs = el("pre", {id: "logs", class: "logs"});
  const source = el("div", {id: "source"});
  const raw = el("pre", {id: "raw", class: "raw"});
  setMain(el("p", {}, el("a", {href: "#/executions"}, "← Executions")), head, approvals,
    el("h2", {}, "Timeline"), steps, io,
    el("h2", {}, "Log"), logs,
    el("h2", {}, "Source"), source,
    el("details", {}, el("summary", {}, "History as stored"), raw));
  let sourceShown = "";
  let lastSeq = 0;

  function showLog(l) {
    lastSeq = l.seq;
    const attrs = Object.entries(l.attrs || {}).map(([k, v]) => " " + k + "=" + v).join("");
    logs.append(el("span", {class: "log-" + (l.level || "INFO").toLowerCase()},
      new Date(l.time).toLocaleTimeString() + " " + l.level + " [" + l.position + "] " + l.msg + attrs + "\n"));
  }

  function followLogs() {
    const url = "/api/v1/executions/" + encodeURIComponent(id) + "/logs?follow=1&after=" + lastSeq;
    if (token()) { followWithToken(url); return; }
    if (!window.EventSource) return;
    stream = new EventSource(url);
    stream.addEventListener("log", ev => showLog(JSON.parse(ev.data)));
    stream.addEventListener("end", () => { stream.close(); stream = null; });
  }

  // EventSource cannot send a token: read the NDJSON stream with fetch.
  function followWithToken(url) {
    const ctl = new AbortController();
    stream = {close: () => ctl.abort()};
    fetch(url, {headers: authHeaders({"Accept": "application/x-ndjson"}), signal: ctl.signal}).then(async res => {
      if (!res.ok || !res.body) return;
      const reader = res.body.getReader();
      const dec = new TextDecoder();
      let buf = "";
      for (;;) {
        const {value, done} = await reader.read();
        if (done) break;
        buf += dec.decode(value, {stream: true});
        let nl;
        while ((nl = buf.indexOf("\n")) >= 0) {
          const line = buf.slice(0, nl).trim();
          buf = buf.slice(nl + 1);
          if (line) showLog(JSON.parse(line));
        }
      }
    }).catch(() => { /* stopped, or the page shows the error */ });
  }
  followLogs();

  async function refresh() {
    const body = await api("/api/v1/executions/" + encodeURIComponent(id));
    clearError();
    const e = body.execution;
    renderHead(head, e);
    renderTimeline(steps, e, body.timeline || []);
    renderApprovals(approvals, (body.waits || []).filter(w => w.kind === "approval"), refresh);
    renderIO(io, e);
    raw.textContent = pretty(body.history);
    const current = currentLine(e, body.timeline || []);
    const key = e.version + "|" + (current ? current.file + ":" + current.line : "");
    if (key !== sourceShown) {
      sourceShown = key;
      renderSource(source, e, current).catch(showError);
    }
    return e;
  }
  const tick = async () => {
    if (location.hash !== route) return;
    let e = null;
    try { e = await refresh(); } catch (err) { showError(err); }
    if (location.hash === route && !(e && isTerminal(e.status) && !stream)) pollTimer = setTimeout(tick, POLL_MS);
  };
  tick();
}

function isTerminal(s) {
  return s === "completed" || s === "failed" || s === "cancelled" || s === "stuck";
}

function renderHead(box, e) {
  const row = (k, v) => el("div", {class: "kv"}, el("span", {class: "k"}, k), el("span", {class: "v"}, v));
  // Keep the actions while one of them works, and what it answered until
  // the status changes.
  const actions = box.querySelector("#exec-actions");
  const busy = actions && actions.dataset.status === e.status &&
    (actions.dataset.busy || actions.querySelector(".action-status[data-done]"));
  box.replaceChildren(
    el("h1", {}, "Execution ", el("span", {class: "mono"}, e.id), " ", badge(e.status)),
    busy ? actions : executionActions(e),
    el("div", {class: "kvs"},
      row("Runbook", el("a", {href: "#/runbooks/" + encodeURIComponent(e.runbook)}, e.runbook + "@" + e.version)),
      row("Trigger", trigger(e.trigger)),
      e.trigger && e.trigger.type === "runbook" && e.trigger.source
        ? row("Parent", el("a", {href: "#/executions/" + e.trigger.source, class: "mono"}, e.trigger.source)) : null,
      row("Started", fmtTime(e.created_at)),
      row("Ended", e.ended_at ? fmtTime(e.ended_at) : "-"),
      row("Duration", fmtDur(execDuration(e))),
      row("Node", e.node || "-")));
}

// renderTimeline draws the waterfall: one row per step, its bar placed by
// offset and duration on a common scale; fan_out items grouped under their
// fan_out, undos under a compensation heading.
function renderTimeline(box, e, rows) {
  if (rows.length === 0) {
    box.replaceChildren(el("p", {class: "muted"}, "No steps recorded yet."));
    return;
  }
  const span = Math.max(1, ...rows.map(r => r.offset_ms + r.duration_ms), execDuration(e));
  const out = [el("div", {class: "trow thead"},
    el("span", {class: "c-pos"}, "Position"), el("span", {class: "c-name"}, "Step"),
    el("span", {class: "c-state"}, "State"), el("span", {class: "c-dur"}, "Duration"),
    el("span", {class: "c-bar"}, "0 — " + fmtDur(span)))];
  let lastGroup = "";
  let compHeader = false;
  for (const r of rows) {
    if (r.compensation && !compHeader) {
      compHeader = true;
      out.push(el("div", {class: "tgroup comp"}, "compensation (undos, last registered first)"));
    }
    const group = r.parent ? r.parent + "/" + r.item : "";
    if (group && group !== lastGroup) {
      out.push(el("div", {class: "tgroup", style: {paddingLeft: (r.depth * 1.2) + "em"}}, "fan_out " + r.parent + " · item " + r.item));
    }
    lastGroup = group;
    const left = (100 * r.offset_ms / span);
    const width = Math.max(0.4, 100 * r.duration_ms / span);
    const label = r.kind + (r.name ? " " + r.name : "");
    const tags = [];
    if (r.retries) tags.push(el("span", {class: "tag retry", title: r.attempts + " attempts"}, "↻ " + r.retries + (r.retries === 1 ? " retry" : " retries")));
    if (r.detail) tags.push(el("span", {class: "tag"}, r.detail));
    if (r.child) tags.push(el("a", {class: "tag mono", href: "#/executions/" + r.child, title: "the child execution"}, "→ " + r.child));
    const where = r.where ? el("span", {class: "where"}, r.where) : null;
    out.push(el("div", {class: "trow step k-" + r.kind + " st-" + r.state + (r.compensation ? " comp" : ""), "data-position": r.position},
      el("span", {class: "c-pos mono", style: {paddingLeft: (r.depth * 1.2) + "em"}}, r.position),
      el("span", {class: "c-name"}, label, " ", tags, where),
      el("span", {class: "c-state"}, badge(r.state)),
      el("span", {class: "c-dur"}, fmtDur(r.duration_ms)),
      el("span", {class: "c-bar"}, el("span", {class: "bar b-" + r.state, title: label + ": " + fmtDur(r.duration_ms),
        style: {left: left + "%", width: Math.min(width, 100 - left) + "%"}}))));
    if (r.error) out.push(el("div", {class: "terr", style: {paddingLeft: (r.depth * 1.2 + 6) + "em"}}, r.error));
  }
  box.replaceChildren(...out);
}

function renderApprovals(box, waits, after) {
  if (waits.length === 0) { box.replaceChildren(); return; }
  box.replaceChildren(el("h2", {}, "Waiting for approval"), ...waits.map(w => approvalCard({
    execution: w.execution, position: w.position, since: w.since,
    message: (parseDetail(w).message) || "", approvers: parseDetail(w).approvers || [],
  }, after)));
}

function parseDetail(w) {
  if (!w.detail) return {};
  return typeof w.detail === "string" ? JSON.parse(w.detail) : w.detail;
}

function approvalCard(a, after) {
  const comment = el("input", {class: "comment", placeholder: "comment (optional)"});
  const status = el("span", {class: "muted"});
  const decide = decision => async () => {
    // With a token the node knows who decides; "as" is for nodes without auth.
    const as = knownCaller() ? "" : who();
    if (!as && !knownCaller()) { status.textContent = "Enter your name (top right) first."; document.getElementById("who").focus(); return; }
    status.textContent = "…";
    try {
      const req = {decision, comment: comment.value};
      if (as) req.as = as;
      const body = await api("/api/v1/executions/" + encodeURIComponent(a.execution) + "/approvals/" + a.position.split("/").map(encodeURIComponent).join("/"), {
        method: "POST", headers: {"Content-Type": "application/json"},
        body: JSON.stringify(req)});
      const st = body.approval || {};
      status.textContent = st.resolved ? "Decided: " + ((st.result && st.result.decision) || decision) :
        "Recorded: " + (st.approvals || []).length + " of " + st.required + " approvals";
      if (after) after();
    } catch (err) { status.textContent = String(err.message || err); }
  };
  return el("div", {class: "card approval", "data-execution": a.execution, "data-position": a.position},
    el("div", {class: "msg"}, a.message || "(no message)"),
    el("div", {class: "muted"},
      el("a", {href: "#/executions/" + a.execution, class: "mono"}, a.execution), " · position " + a.position,
      a.runbook ? " · " + a.runbook : "", " · waiting " + fmtDur(new Date() - new Date(a.since)),
      a.approvers && a.approvers.length ? " · approvers " + a.approvers.join(", ") : "",
      a.required > 1 ? " · " + (a.approvals || []).length + " of " + a.required : ""),
    el("div", {class: "actions"}, comment,
      el("button", {class: "approve", onclick: decide("approve")}, "Approve"),
      el("button", {class: "reject", onclick: decide("reject")}, "Reject"), status));
}

function renderIO(box, e) {
  const parts = [];
  parts.push(el("h2", {}, "Input"), el("pre", {class: "json"}, pretty(e.input) || "(none)"));
  if (e.result !== undefined && e.result !== null) parts.push(el("h2", {}, "Result"), el("pre", {class: "json", id: "result"}, pretty(e.result)));
  if (e.error) parts.push(el("h2", {}, "Error"), el("pre", {class: "errtext", id: "exec-error"}, e.error));
  box.replaceChildren(...parts);
}

// currentLine is where the execution is: the last frame of its error's
// backtrace, else the call of its latest step or wait.
function currentLine(e, rows) {
  const parse = s => {
    const m = /([\w./-]+\.star):(\d+)(?::\d+)?/.exec(s || "");
    return m ? {file: m[1], line: Number(m[2])} : null;
  };
  if (e.error) {
    const frames = (e.error.match(/[\w./-]+\.star:\d+(?::\d+)?/g) || []);
    if (frames.length) return parse(frames[frames.length - 1]);
  }
  for (let i = rows.length - 1; i >= 0; i--) {
    if (rows[i].where && rows[i].depth === 0) return parse(rows[i].where);
  }
  return null;
}

async function renderSource(box, e, current) {
  const b = await api("/api/v1/runbooks/" + encodeURIComponent(e.runbook) + "/versions/" + encodeURIComponent(e.version));
  const names = Object.keys(b.files).sort((x, y) => (x === b.main ? -1 : y === b.main ? 1 : x.localeCompare(y)));
  box.replaceChildren(...names.map(name => {
    const lines = b.files[name].split("\n");
    const isCur = current && current.file === name;
    const code = el("pre", {class: "source"}, lines.map((text, i) => el("span", {
      class: "line" + (isCur && current.line === i + 1 ? " current" : ""), id: isCur && current.line === i + 1 ? "current-line" : null},
      el("span", {class: "ln"}, String(i + 1)), text + "\n")));
    return el("details", {open: name === b.main || isCur}, el("summary", {}, name, isCur ? " — line " + current.line : ""), code);
  }));
}

// ---------- approvals ----------

function approvalsPage(route) {
  const list = el("div", {id: "approvals"});
  setMain(el("h1", {}, "Pending approvals"), list);
  poll(route, async () => {
    const body = await api("/api/v1/approvals");
    clearError();
    const items = body.approvals || [];
    // Keep a card someone is typing in.
    if (list.contains(document.activeElement) && document.activeElement.tagName === "INPUT") return;
    list.replaceChildren(...(items.length ? items.map(a => approvalCard(a, null)) : [el("p", {class: "muted"}, "Nothing waits for a decision.")]));
  });
}

// ---------- runbooks ----------

function runbooksPage(route) {
  const tbody = el("tbody");
  setMain(el("h1", {}, "Runbooks"), el("table", {class: "list", id: "runbooks"},
    el("thead", {}, el("tr", {}, ["Runbook", "Version", "Applied", "Recent runs", "Success rate", "Last run", ""].map(h => el("th", {}, h)))), tbody));
  poll(route, async () => {
    const body = await api("/api/v1/runbooks");
    clearError();
    const rows = await Promise.all((body.runbooks || []).map(async rb => {
      const runs = (await api("/api/v1/executions?limit=100&runbook=" + encodeURIComponent(rb.name))).executions || [];
      const st = stats(runs);
      return el("tr", {"data-runbook": rb.name},
        el("td", {}, el("a", {href: "#/runbooks/" + encodeURIComponent(rb.name)}, rb.name),
          rb.pause && rb.pause.paused ? el("span", {class: "badge s-paused", title: pauseWords(rb.pause)}, "paused") : null),
        el("td", {class: "mono"}, rb.version), el("td", {}, fmtTime(rb.created_at)),
        el("td", {}, String(runs.length)), el("td", {}, st.rate),
        el("td", {}, runs[0] ? el("a", {href: "#/executions/" + runs[0].id}, badge(runs[0].status)) : "-"),
        el("td", {}, runButton(rb.name)));
    }));
    tbody.replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", {colspan: 7, class: "muted"}, "No runbooks applied."))]));
  });
}

function stats(runs) {
  const ended = runs.filter(r => isTerminal(r.status));
  const ok = ended.filter(r => r.status === "completed").length;
  return {rate: ended.length ? Math.round(100 * ok / ended.length) + "% of " + ended.length : "-"};
}

// ---------- cluster ----------

function clusterPage(route) {
  const box = el("div", {id: "cluster"});
  setMain(el("h1", {}, "Cluster"), box);
  poll(route, async () => {
    const st = await api("/api/v1/cluster");
    clearError();
    box.replaceChildren(el("p", {}, "Leader: ", el("strong", {}, st.leader || "(none)")),
      el("table", {class: "list"}, el("thead", {}, el("tr", {}, ["Node", "Leader", "Started", "Workers", "Claims", "Lease left"].map(h => el("th", {}, h)))),
        el("tbody", {}, (st.nodes || []).map(n => el("tr", {},
          el("td", {class: "mono"}, n.id), el("td", {}, n.leader ? "★" : ""), el("td", {}, fmtTime(n.started)),
          el("td", {}, String(n.workers)), el("td", {}, String(n.claims)),
          el("td", {}, n.lease_remaining_seconds + "s / " + n.ttl_seconds + "s"))))));
  });
}

// ---------- dead letters ----------

// lastLine is the last non-empty line of an error: after a Starlark
// backtrace, the error itself.
function lastLine(s) {
  const lines = (s || "").split("\n").map(l => l.trim()).filter(l => l);
  return lines.length ? lines[lines.length - 1] : "";
}

// deadLettersPage lists the dead letters (executions that did not complete,
// trigger events that started nothing) with an ack and, for executions,
// redrive buttons.
function deadLettersPage(route) {
  // Pages follow the API's cursor as the executions list does.
  const pages = {cursors: [""], page: 0};
  const reason = el("select", {id: "dl-reason", onchange: () => { pages.cursors = [""]; pages.page = 0; refresh(); }},
    el("option", {value: ""}, "any reason"),
    ...["failed", "stuck", "compensation_failed", "dropped", "budget", "no_runbook", "refused", "paused"].map(r => el("option", {value: r}, r)));
  const list = el("div", {id: "dead-letters"});
  const pager = el("div", {class: "pager"});
  setMain(el("h1", {}, "Dead letters"), el("div", {class: "filters"}, reason), list, pager);
  let replayable = false; // whether this node replays event dead letters
  async function refresh() {
    const q = new URLSearchParams({limit: String(PAGE)});
    if (reason.value) q.set("reason", reason.value);
    const page = pages.page;
    if (pages.cursors[page]) q.set("after", pages.cursors[page]);
    const body = await api("/api/v1/dead-letters?" + q);
    replayable = await routeExists("POST", "/api/v1/dead-letters/-/replay");
    if (page !== pages.page) return; // a click moved on meanwhile
    clearError();
    pages.cursors.length = page + 1;
    if (body.next) pages.cursors.push(body.next);
    pager.replaceChildren(
      el("button", {disabled: page === 0, onclick: () => { pages.page--; refresh(); }}, "← Newer"),
      el("span", {class: "muted"}, " page " + (page + 1) + " "),
      el("button", {disabled: !body.next, onclick: () => { pages.page++; refresh(); }}, "Older →"));
    // Keep a row someone is typing in.
    if (list.contains(document.activeElement) && document.activeElement.tagName === "INPUT") return;
    const items = body.dead_letters || [];
    if (!items.length) { list.replaceChildren(el("p", {class: "muted"}, "No dead letters.")); return; }
    list.replaceChildren(el("table", {class: "list"},
      el("thead", {}, el("tr", {}, ["ID", "Kind", "Reason", "Runbook", "At", "Why", ""].map(h => el("th", {}, h)))),
      el("tbody", {}, items.map(deadLetterRow))));
  }
  function deadLetterRow(d) {
    const comment = el("input", {class: "comment", placeholder: "comment (optional)"});
    const status = el("span", {class: "muted dl-status"});
    const headers = () => {
      const h = {"Content-Type": "application/json"};
      if (!knownCaller() && who()) h["X-Starbook-User"] = who();
      return h;
    };
    const act = (path, req, done) => async () => {
      status.textContent = "…";
      try {
        const body = await api(path, {method: "POST", headers: headers(), body: JSON.stringify(req)});
        status.textContent = done(body);
        status.dataset.done = "ok";
        setTimeout(refresh, 500);
      } catch (err) { status.textContent = String(err.message || err); status.dataset.done = "error"; }
    };
    const redrive = from => act("/api/v1/executions/" + encodeURIComponent(d.id) + "/redrive", {from},
      b => b.redrive.new_execution ? "redriven as " + b.redrive.new_execution : "redriven: attempt " + b.redrive.attempt);
    const why = d.kind === "event" ? (d.source || "") + (d.detail ? ": " + d.detail : "") : lastLine(d.error);
    return el("tr", {"data-id": d.id, "data-reason": d.reason},
      el("td", {class: "mono"}, d.kind === "execution" ? el("a", {href: "#/executions/" + d.id}, d.id) : d.id),
      el("td", {}, d.kind), el("td", {}, badge(d.reason)), el("td", {}, d.runbook || "-"), el("td", {}, fmtTime(d.at)),
      el("td", {class: "why"}, why, d.payload ? el("details", {}, el("summary", {}, "payload"), el("pre", {}, pretty(d.payload))) : null),
      el("td", {class: "actions"}, comment,
        el("button", {class: "ack", onclick: () => act("/api/v1/dead-letters/" + encodeURIComponent(d.id) + "/ack",
          {comment: comment.value}, () => "acknowledged")()}, "Ack"),
        d.kind === "execution" && d.reason !== "compensation_failed" ? el("button", {class: "redrive", onclick: redrive("failed")}, "Redrive") : null,
        d.kind === "execution" ? el("button", {class: "redrive-start", onclick: redrive("start")}, "From start") : null,
        d.kind === "event" && replayable ? el("button", {class: "replay", onclick: act("/api/v1/dead-letters/" + encodeURIComponent(d.id) + "/replay", {},
          b => replayedWords(b))}, "Replay") : null,
        status));
  }
  poll(route, refresh);
}

// ---------- approvals badge and routing ----------

async function countApprovals() {
  try {
    const body = await api("/api/v1/approvals");
    const n = (body.approvals || []).length;
    document.getElementById("approval-count").textContent = n ? String(n) : "";
  } catch (_) { /* the page shows errors */ }
  setTimeout(countApprovals, 5000);
}

function route() {
  stopLive();
  updateNav();
  if (!location.hash) { location.hash = "#/executions"; return; }
  const h = location.hash;
  const parts = h.slice(2).split("/").map(decodeURIComponent);
  for (const a of document.querySelectorAll("nav a")) a.classList.toggle("active", a.dataset.nav === parts[0]);
  switch (parts[0]) {
    case "executions": return parts[1] ? executionPage(h, parts[1]) : executionsPage(h);
    case "approvals": return approvalsPage(h);
    case "runbooks":
      if (parts[1] && parts[2] === "run") return runFormPage(h, parts[1], parts[3]);
      return parts[1] ? runbookPage(h, parts[1]) : runbooksPage(h);
    case "schedules": return schedulesPage(h);
    case "slos": return slosPage(h);
    case "audit": return auditPage(h);
    case "cluster": return clusterPage(h);
    case "dead-letters": return deadLettersPage(h);
    default: location.hash = "#/executions";
  }
}

const whoInput = document.getElementById("who");
whoInput.value = localStorage.getItem("starbook.who") || "";
whoInput.addEventListener("change", () => localStorage.setItem("starbook.who", whoInput.value.trim()));

// Sign-in: with single sign-on, the identity provider (GET /auth/session
// says whether the node has it); otherwise a token typed in the header,
// kept in localStorage; whoami says whose it is (and whether the node wants
// one at all).
const tokenInput = document.getElementById("token");
async function signIn() {
  const shown = document.getElementById("signed-in");
  if (await signInWithSSO(shown)) return;
  try {
    const me = await api("/api/v1/whoami");
    document.querySelector("label.token").hidden = !me.auth;
    document.getElementById("who-label").hidden = !!me.auth;
    shown.textContent = me.auth ? "signed in as " + me.name + " (" + me.role + ")" : "";
  } catch (err) {
    document.querySelector("label.token").hidden = false;
    document.getElementById("who-label").hidden = true;
    shown.textContent = token() ? "token refused" : "sign in with a token";
  }
}
async function signInWithSSO(shown) {
  try {
    const res = await fetch("/auth/session", {headers: {"Accept": "application/json"}, cache: "no-store"});
    session = res.ok ? await res.json() : {sso: false};
  } catch (_) { session = {sso: false}; }
  const box = document.getElementById("sso");
  document.querySelector("header").classList.toggle("sso-on", !!session.sso);
  box.hidden = !session.sso;
  if (!session.sso) { box.replaceChildren(); return false; }
  document.querySelector("label.token").hidden = true;
  document.getElementById("who-label").hidden = true;
  if (session.name) {
    shown.textContent = "signed in as " + session.name + " (" + session.role + ")";
    box.replaceChildren(el("form", {class: "sso-out", method: "post", action: "/auth/logout"},
      el("input", {type: "hidden", name: "csrf", value: session.csrf}),
      el("button", {type: "submit", id: "sign-out"}, "Sign out")));
  } else {
    shown.textContent = session.error || "";
    const link = el("a", {id: "sign-in", href: "/auth/login"}, "Sign in");
    // Come back to the page shown when the link is followed.
    link.addEventListener("click", () => { link.href = "/auth/login?next=" + encodeURIComponent(location.pathname + location.hash); });
    box.replaceChildren(link);
  }
  return true;
}
tokenInput.addEventListener("change", () => {
  const v = tokenInput.value.trim();
  if (v) localStorage.setItem("starbook.token", v); else localStorage.removeItem("starbook.token");
  tokenInput.value = "";
  signIn().then(route);
});
signIn();
window.addEventListener("hashchange", route);
route();
countApprovals();
