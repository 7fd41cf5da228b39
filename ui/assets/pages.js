// starbook web UI: the Schedules, SLOs and Audit pages, an execution's
// actions (run again, cancel, redrive), and what the navigation shows to
// whom.
"use strict";

// updateNav shows the Audit entry to those who may read the audit log:
// everyone on a node without tokens, the audit permission (admins) with.
async function updateNav() {
  const audit = document.getElementById("nav-audit");
  try {
    const me = await api("/api/v1/whoami");
    audit.hidden = me.auth && !(me.permissions || []).includes("audit");
    audit.dataset.whoami = me.name || ""; // whose permissions the entry follows
  } catch (_) {
    audit.hidden = true;
  }
}

const routeChecks = {};

// routeExists reports whether this node serves METHOD path (a route another
// part of starbook may not have yet): a GET of a POST-only route answers
// 405, of an unknown one 404. It asks once per page load.
function routeExists(method, path) {
  const key = method + " " + path;
  if (!routeChecks[key]) {
    routeChecks[key] = api(path).then(() => true, err => {
      if (err.status === 404 && /^no route/.test(err.message)) return false;
      return err.status !== 404;
    });
  }
  return routeChecks[key];
}

// executionActions are an execution's buttons: run again with its input,
// cancel it while it runs, redrive it from its failed step.
function executionActions(e) {
  const box = el("div", {class: "actions exec-actions", id: "exec-actions", "data-status": e.status});
  const status = el("span", {class: "muted action-status"});
  const path = "/api/v1/executions/" + encodeURIComponent(e.id);
  const act = (label, cls, question, suffix, req, done) => el("button", {class: cls, onclick: async () => {
    if (!confirm(question)) return;
    box.dataset.busy = "1";
    status.textContent = "…";
    try {
      status.textContent = done(await api(path + suffix, {method: "POST", headers: jsonHeaders(), body: JSON.stringify(req)}));
      status.dataset.done = "ok";
    } catch (err) {
      status.textContent = String(err.message || err);
      status.dataset.done = "error";
    } finally {
      delete box.dataset.busy;
    }
  }}, label);
  box.append(runButton(e.runbook, e.id));
  if (!isTerminal(e.status)) {
    box.append(act("Cancel", "reject cancel", "Cancel execution " + e.id + " of " + e.runbook + "?", "/cancel", {},
      b => "cancelled: " + b.execution.status));
  }
  if (e.status === "failed") {
    box.append(act("Redrive", "redrive", "Redrive execution " + e.id + " from its failed step?", "/redrive", {from: "failed"},
      b => b.redrive.new_execution ? "redriven as " + b.redrive.new_execution : "redriven: attempt " + b.redrive.attempt));
  }
  box.append(status);
  return box;
}

// replayedWords says what a dead letter's replay started: the answer is
// {"replay": {"dead_letter", "executions": [{"runbook", "id", "status"}]}}.
function replayedWords(b) {
  const runs = ((b && b.replay && b.replay.executions) || []).map(e => e.id + (e.status ? " (" + e.status + ")" : ""));
  return runs.length ? "replayed: " + runs.join(", ") : "replayed: nothing started";
}

// ---------- schedules ----------

function schedulesPage(route) {
  const box = el("div", {id: "schedules"});
  setMain(el("h1", {}, "Schedules"), el("p", {class: "muted"}, "Every cron trigger of every runbook's current version; times in the schedule's zone."), box);
  poll(route, async () => {
    let body;
    try {
      body = await api("/api/v1/schedules");
    } catch (err) {
      if (err.status === 404) { box.replaceChildren(el("p", {class: "muted"}, "This node does not list schedules.")); return; }
      throw err;
    }
    clearError();
    const list = body.schedules || [];
    if (!list.length) { box.replaceChildren(el("p", {class: "muted"}, "No runbook declares a schedule.")); return; }
    box.replaceChildren(el("div", {class: "scroll"}, el("table", {class: "list"},
      el("thead", {}, el("tr", {}, ["Runbook", "Schedule", "Zone", "Next fire", "Last tick", "Paused"].map(h => el("th", {}, h)))),
      el("tbody", {}, list.map(s => el("tr", {"data-runbook": s.runbook},
        el("td", {}, el("a", {href: "#/runbooks/" + encodeURIComponent(s.runbook)}, s.runbook)),
        el("td", {}, el("code", {}, s.spec), s.words.includes(",") ? el("div", {class: "muted"}, s.words.slice(s.words.indexOf(",") + 2)) : null),
        el("td", {}, s.zone),
        el("td", {class: "next"}, s.next ? fmtInZone(s.next, s.zone) : "never"),
        el("td", {}, s.last_tick ? fmtInZone(s.last_tick, s.zone) : "-"),
        el("td", {}, s.pause ? el("span", {class: "badge s-paused", title: pauseWords(s.pause)}, "paused") : "no")))))));
  });
}

// ---------- SLOs ----------

function slosPage(route) {
  const box = el("div", {id: "slos"});
  setMain(el("h1", {}, "SLOs"), box);
  poll(route, async () => {
    let report;
    try {
      report = await api("/api/v1/slo");
    } catch (err) {
      if (err.status === 404) { box.replaceChildren(el("p", {class: "muted"}, "This node does not report SLOs.")); return; }
      throw err;
    }
    clearError();
    const list = report.slos || [];
    if (!list.length) { box.replaceChildren(el("p", {class: "muted"}, "No runbook declares an slo().")); return; }
    box.replaceChildren(el("p", {class: "muted"}, "As of " + fmtTime(report.at) + "."),
      ...list.map(s => el("section", {class: "slo"},
        el("h2", {}, el("a", {href: "#/runbooks/" + encodeURIComponent(s.runbook)}, s.runbook), " ",
          el("span", {class: "muted mono"}, s.version)),
        sloCard(s))));
  });
}

// ---------- audit ----------

// auditPage lists the audit log a page of 100 at a time, newest first:
// the newest page is refreshed live; Older pages back through the log
// (?before=, one range read of a page whatever the log holds) and Newest
// comes back.
function auditPage(route) {
  const box = el("div", {id: "audit"});
  const cursors = []; // the before= of each page shown after the newest
  setMain(el("h1", {}, "Audit log"), box);
  const show = async () => {
    const before = cursors[cursors.length - 1];
    const body = await api("/api/v1/audit?limit=100" + (before ? "&before=" + encodeURIComponent(before) : ""));
    clearError();
    const recs = (body.audit || []).slice().reverse();
    const nav = el("p", {class: "pager"},
      cursors.length ? el("button", {type: "button", id: "audit-newest", onclick: () => { cursors.length = 0; show().catch(showError); }}, "Newest") : null,
      body.prev ? el("button", {type: "button", id: "audit-older", onclick: () => { cursors.push(body.prev); show().catch(showError); }}, "Older") : null);
    if (!recs.length) { box.replaceChildren(el("p", {class: "muted"}, "Nothing recorded yet."), nav); return; }
    box.replaceChildren(el("p", {class: "muted"}, (cursors.length ? "Older records: " : "The newest ") + recs.length + " records."),
      el("div", {class: "scroll"}, el("table", {class: "list"},
        el("thead", {}, el("tr", {}, ["Time", "Who", "Action", "Runbook", "Execution", "Detail", "Outcome"].map(h => el("th", {}, h)))),
        el("tbody", {}, recs.map(r => el("tr", {"data-id": r.id, class: "o-" + r.outcome},
          el("td", {}, fmtTime(r.time)),
          el("td", {}, r.actor, r.role ? el("span", {class: "muted"}, " (" + r.role + ")") : null),
          el("td", {class: "mono"}, r.action),
          el("td", {}, r.runbook ? el("a", {href: "#/runbooks/" + encodeURIComponent(r.runbook.split("@")[0].split(",")[0])}, r.runbook) : "-"),
          el("td", {}, r.execution ? el("a", {href: "#/executions/" + r.execution, class: "mono"}, r.execution) : "-"),
          el("td", {}, r.detail || ""),
          el("td", {}, el("span", {class: "badge o-" + r.outcome}, r.outcome + (r.status ? " " + r.status : "")),
            r.error ? el("div", {class: "muted"}, r.error) : null)))))), nav);
  };
  poll(route, async () => {
    if (cursors.length) return; // an older page does not change: no refresh
    await show();
  });
}
