// starbook web UI: a runbook's page. What it is (description, triggers in
// words, next fires, input schema, source) is read once; how it does (pause,
// rollout, runs, SLO, today's budget) is polled, each part in its own box so
// that a refresh never loses what someone is typing or reading.
"use strict";

function runbookPage(route, name) {
  const q = encodeURIComponent(name);
  const pause = el("div", {id: "pause"});
  const about = el("div", {id: "about"});
  const rollout = el("div", {id: "rollout"});
  const slo = el("div", {id: "slo"});
  const budget = el("div", {id: "budget"});
  const runs = el("div", {id: "runs"});
  const versions = el("div", {id: "versions"});
  setMain(el("p", {}, el("a", {href: "#/runbooks"}, "← Runbooks")),
    el("div", {class: "title"}, el("h1", {}, "Runbook ", name), runButton(name)),
    pause, about, rollout,
    el("h2", {}, "SLO"), slo,
    el("h2", {}, "Today's budget"), budget,
    el("h2", {}, "Recent runs"), runs,
    el("h2", {}, "Versions"), versions);

  api("/api/v1/runbooks/" + q).then(info => {
    if (location.hash !== route) return;
    renderAbout(about, info);
    renderVersions(versions, info);
  }).catch(showError);

  let tick = 0;
  poll(route, async () => {
    const slow = tick++ % 5 === 0; // the SLO and usage cost more: every 5th
    await Promise.all([
      renderPause(pause, name, route).catch(showError),
      renderRollout(rollout, name).catch(showError),
      api("/api/v1/executions?limit=20&runbook=" + q).then(b => renderRuns(runs, b.executions || [])),
      slow ? renderSLO(slo, name).catch(showError) : null,
      slow ? renderBudget(budget, name).catch(showError) : null]);
  });
}

// renderAbout draws what the current version is: its description, triggers,
// schedules' next fires, input schema and every file of its source.
function renderAbout(box, info) {
  const schedules = info.schedules || [];
  const words = info.triggers_in_words || [];
  box.replaceChildren(
    info.description ? el("div", {class: "description", id: "description"}, info.description) : el("p", {class: "muted"}, "No description: the main file opens with no comment."),
    el("h2", {}, "Triggers"),
    el("ul", {class: "triggers", id: "triggers"}, words.length ? words.map(w => el("li", {}, w))
      : el("li", {class: "muted"}, "none: runs start only by hand (UI, CLI, API, Slack)")),
    schedules.length ? el("div", {id: "next-fires"}, schedules.map(s => el("div", {class: "fires"},
      el("h3", {}, "Next fires of ", el("code", {}, s.spec), " (" + s.zone + ")"),
      el("ol", {}, (s.next || []).map(t => el("li", {class: "mono"}, fmtInZone(t, s.zone))))))) : null,
    el("h2", {}, "Input schema"),
    info.input_schema
      ? el("pre", {class: "json", id: "input-schema"}, pretty(info.input_schema))
      : el("p", {class: "muted", id: "input-schema"}, "None: the run form takes JSON."),
    el("h2", {}, "Source ", el("span", {class: "muted mono"}, info.current || "")),
    libraries(info.libraries),
    sourceTabs(info.main, info.files || {}));
}

// libraries says in one line which library releases (@std, a team's) the
// version pinned at apply; their modules are among the source tabs.
function libraries(libs) {
  const names = Object.keys(libs || {}).sort();
  if (!names.length) return "";
  return el("p", {id: "libraries"}, "Libraries: ",
    ...names.flatMap((n, i) => [i ? ", " : "", el("span", {class: "mono"}, n + " " + libs[n])]));
}

// sourceTabs shows one file at a time, the main file first.
function sourceTabs(main, files) {
  const names = Object.keys(files).sort((x, y) => (x === main ? -1 : y === main ? 1 : x.localeCompare(y)));
  const code = el("pre", {class: "source", id: "runbook-source"});
  const tabs = el("div", {class: "tabs", role: "tablist"});
  const show = name => {
    for (const t of tabs.children) t.setAttribute("aria-selected", String(t.dataset.file === name));
    code.dataset.file = name;
    code.replaceChildren(...files[name].split("\n").map((text, i) =>
      el("span", {class: "line"}, el("span", {class: "ln"}, String(i + 1)), text + "\n")));
  };
  tabs.append(...names.map(n => el("button", {type: "button", role: "tab", class: "tab", "data-file": n, onclick: () => show(n)}, n)));
  if (names.length) show(names[0]);
  return el("div", {id: "source-files"}, tabs, code);
}

function renderVersions(box, info) {
  box.replaceChildren(el("div", {class: "scroll"}, el("table", {class: "list"},
    el("thead", {}, el("tr", {}, ["Version", "Applied", "Libraries", "Files"].map(h => el("th", {}, h)))),
    el("tbody", {}, (info.versions || []).map(v => el("tr", {},
      el("td", {class: "mono"}, v.version, v.current ? " (current)" : ""), el("td", {}, fmtTime(v.created_at)),
      el("td", {class: "mono"}, Object.keys(v.libraries || {}).sort().map(n => n + " " + v.libraries[n]).join(", ") || "-"),
      el("td", {}, (v.files || []).join(", "))))))));
}

function renderRuns(box, list) {
  if (!list.length) { box.replaceChildren(el("p", {class: "muted"}, "No runs yet.")); return; }
  box.replaceChildren(el("p", {}, "Success rate of these runs: " + stats(list).rate),
    el("div", {class: "scroll"}, el("table", {class: "list"}, el("tbody", {}, list.map(e => el("tr", {},
      el("td", {}, el("a", {href: "#/executions/" + e.id, class: "mono"}, e.id)), el("td", {}, badge(e.status)),
      el("td", {}, trigger(e.trigger)), el("td", {}, fmtTime(e.created_at)), el("td", {}, fmtDur(execDuration(e)))))))),
    el("p", {}, el("a", {href: "#/executions"}, "All executions →")));
}

// renderSLO draws the objective's status as `starbook slo` prints it.
async function renderSLO(box, name) {
  let report;
  try {
    report = await api("/api/v1/slo?runbook=" + encodeURIComponent(name));
  } catch (err) {
    if (err.status === 404) { box.replaceChildren(el("p", {class: "muted"}, "No objective: the runbook declares no slo().")); return; }
    throw err;
  }
  const s = (report.slos || [])[0];
  if (!s) { box.replaceChildren(el("p", {class: "muted"}, "No objective.")); return; }
  box.replaceChildren(sloCard(s));
}

function pct(x) {
  return x === null || x === undefined ? "-" : (Math.round(x * 10000) / 100) + "%";
}

// sloCard is one runbook's objective: success against the target, the
// error budget left, latency and burn rates.
function sloCard(s) {
  const row = (k, v, cls) => el("div", {class: "kv"}, el("span", {class: "k"}, k), el("span", {class: "v " + (cls || "")}, v));
  const budgetLeft = s.error_budget.remaining;
  return el("div", {class: "slo-card", "data-runbook": s.runbook},
    el("div", {class: "kvs"},
      row("Objective", pct(s.objective.success) + " success over " + s.objective.window),
      row("Success", pct(s.success_rate) + " of " + s.runs + " runs (" + s.failures + " failed)",
        s.success_rate !== null && s.success_rate < s.objective.success ? "bad" : "good"),
      row("Error budget left", pct(budgetLeft), budgetLeft < 0 ? "bad" : budgetLeft < 0.25 ? "warn" : "good"),
      ...(s.latency || []).map(l => row("Latency " + l.percentile,
        (l.seconds === null ? "-" : fmtDur(l.seconds * 1000)) + " (objective " + l.objective + ")", l.met ? "good" : "bad"))),
    el("div", {class: "scroll"}, el("table", {class: "list burn"},
      el("thead", {}, el("tr", {}, ["Burn rate over", "Runs", "Failures", "Rate"].map(h => el("th", {}, h)))),
      el("tbody", {}, (s.burn_rates || []).map(b => el("tr", {},
        el("td", {}, b.window), el("td", {}, String(b.runs)), el("td", {}, String(b.failures)),
        el("td", {class: b.rate > 1 ? "bad" : ""}, String(Math.round(b.rate * 100) / 100))))))));
}

// renderBudget draws today's (UTC) use of the runbook's day budgets.
async function renderBudget(box, name) {
  let body;
  try {
    body = await api("/api/v1/usage?days=1&runbook=" + encodeURIComponent(name));
  } catch (err) {
    if (err.status === 404) { box.replaceChildren(el("p", {class: "muted"}, "This node reports no usage.")); return; }
    throw err;
  }
  const today = (body.usage || [])[0];
  const budgets = (today && today.budgets) || [];
  const parts = [];
  if (today) parts.push(el("p", {}, today.executions + " executions, " + (today.steps || 0) + " steps, " +
    (today.http_calls || 0) + " HTTP calls today (UTC)."));
  else parts.push(el("p", {class: "muted"}, "Nothing ran today (UTC)."));
  if (budgets.length) {
    parts.push(el("div", {class: "budgets"}, budgets.map(b => el("div", {class: "budget-use"},
      el("span", {class: "k"}, b.budget.replace(/_/g, " ")),
      el("meter", {min: 0, max: b.limit, value: Math.min(b.used, b.limit), high: b.limit * 0.8}),
      el("span", {}, b.used + " / " + b.limit)))));
  } else parts.push(el("p", {class: "muted"}, "No day budget declared."));
  box.replaceChildren(...parts);
}

// renderRollout draws the active canary rollout with Promote and Abort.
async function renderRollout(box, name) {
  if (box.dataset.busy) return;
  let r = null;
  try {
    r = (await api("/api/v1/runbooks/" + encodeURIComponent(name) + "/rollout")).rollout;
  } catch (err) {
    if (err.status !== 404) throw err;
  }
  if (!r || r.state !== "active") { box.replaceChildren(); return; }
  const status = el("span", {class: "muted"});
  const end = what => async () => {
    if (!confirm(what[0].toUpperCase() + what.slice(1) + " the rollout of " + name + "?")) return;
    box.dataset.busy = "1";
    status.textContent = "…";
    try {
      await api("/api/v1/runbooks/" + encodeURIComponent(name) + "/rollout/" + what, {
        method: "POST", headers: jsonHeaders(), body: "{}"});
      delete box.dataset.busy;
      await renderRollout(box, name);
    } catch (err) { status.textContent = String(err.message || err); delete box.dataset.busy; }
  };
  const c = r.counts || {};
  box.replaceChildren(el("div", {class: "card rollout"},
    el("strong", {}, "Canary rollout: "), el("span", {class: "mono"}, r.canary), " takes " + r.percent + "% of new runs (stable ",
    el("span", {class: "mono"}, r.stable), "), started by " + r.by + " " + fmtTime(r.started_at) + ". ",
    "Canary runs: " + (c.started || 0) + " started, " + (c.failed || 0) + " failed, " + (c.in_flight || 0) + " in flight; aborts above " + pct(r.max_failure_rate) + " failures.",
    el("div", {class: "actions"},
      el("button", {class: "approve promote", onclick: end("promote")}, "Promote"),
      el("button", {class: "reject abort", onclick: end("abort")}, "Abort"), status)));
}

// renderPause draws the runbook's pause: a banner (who, why, until) with
// Resume when it is paused, a Pause form otherwise; nothing on a node that
// does not pause runbooks.
async function renderPause(box, name, route, force) {
  const typing = box.contains(document.activeElement) && /^(INPUT|TEXTAREA|SELECT)$/.test(document.activeElement.tagName);
  if (!force && (typing || box.dataset.busy)) return; // someone is typing, or a change is on its way
  let st;
  try {
    st = await api("/api/v1/runbooks/" + encodeURIComponent(name) + "/pause");
  } catch (err) {
    if (err.status === 404 && /^no route|cannot pause/.test(err.message)) { box.replaceChildren(); box.dataset.state = "unsupported"; return; }
    throw err;
  }
  const status = el("span", {class: "muted pause-status"});
  const send = req => async () => {
    box.dataset.busy = "1";
    status.textContent = "…";
    try {
      await api("/api/v1/runbooks/" + encodeURIComponent(name) + "/pause", {
        method: "POST", headers: jsonHeaders(), body: JSON.stringify(req)});
      delete box.dataset.busy;
      if (location.hash === route) await renderPause(box, name, route, true);
    } catch (err) { status.textContent = String(err.message || err); delete box.dataset.busy; }
  };
  box.dataset.state = st.paused ? "paused" : "running";
  if (st.paused) {
    box.replaceChildren(el("div", {class: "banner paused", role: "status"},
      el("strong", {}, "Paused"), " — " + pauseWords(st) + ". Alerts, webhooks and cron ticks start nothing; each is kept as a dead letter to replay.",
      st.all ? el("p", {class: "muted"}, "Every runbook is paused (starbook pause --all): resume them all with starbook resume --all.") : null,
      el("div", {class: "actions"}, st.all ? null : el("button", {class: "resume", onclick: send({paused: false})}, "Resume"), status)));
    return;
  }
  const reason = el("input", {class: "pause-reason", placeholder: "why (shown to everyone)", maxlength: 500});
  const until = el("input", {class: "pause-until", type: "datetime-local", step: "60", title: "resume by itself at (optional)"});
  const cancelRunning = el("input", {type: "checkbox", class: "pause-cancel"});
  const pause = async () => {
    const req = {paused: true, reason: reason.value.trim()};
    if (until.value) req.until = new Date(until.value).toISOString();
    if (cancelRunning.checked) {
      if (!confirm("Pause " + name + " and cancel its runs in flight?")) return;
      req.cancel_running = true;
    }
    await send(req)();
  };
  box.replaceChildren(el("details", {class: "pause-form"}, el("summary", {}, "Pause this runbook…"),
    el("div", {class: "actions wrap"}, reason,
      el("label", {}, "until ", until),
      el("label", {}, cancelRunning, " cancel runs in flight"),
      el("button", {class: "pause", onclick: pause}, "Pause"), status)));
}

// jsonHeaders are a JSON request's headers, naming who acts (the name typed
// in the header) on a node without tokens.
function jsonHeaders() {
  const h = {"Content-Type": "application/json"};
  if (!knownCaller() && who()) h["X-Starbook-User"] = who();
  return h;
}

// pauseWords says who paused, why and until when.
function pauseWords(p) {
  let s = "by " + (p.by || "someone");
  if (p.at) s += " " + fmtTime(p.at);
  if (p.reason) s += ": “" + p.reason + "”";
  s += p.until ? ", until " + fmtTime(p.until) : ", until resumed";
  return s;
}

// fmtInZone writes a time in an IANA zone, as the schedule reads it.
function fmtInZone(t, zone) {
  try {
    return new Intl.DateTimeFormat(undefined, {timeZone: zone, weekday: "short", year: "numeric", month: "short",
      day: "numeric", hour: "2-digit", minute: "2-digit", timeZoneName: "short"}).format(new Date(t));
  } catch (_) {
    return fmtTime(t);
  }
}
