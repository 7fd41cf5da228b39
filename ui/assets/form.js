// starbook web UI: the run form. The server maps a runbook's input schema to
// a form (GET /api/v1/runbooks/NAME/form: schema.FormOf, the mapping Slack's
// run modal uses too); this file draws its controls, reads them back as the
// run's input and shows the start's refusal at the field its JSON pointer
// names. The browser's checks are a courtesy: the server's 400 is the truth.
"use strict";

let fieldSeq = 0;

// runButton links to a runbook's run form; with an execution, the form
// starts filled with that execution's input.
function runButton(name, fromExecution) {
  const href = "#/runbooks/" + encodeURIComponent(name) + "/run" + (fromExecution ? "/" + encodeURIComponent(fromExecution) : "");
  return el("a", {class: "button run", href}, fromExecution ? "Run again with this input" : "Run…");
}

// runFormPage shows the run form of runbook name, filled with the input of
// execution fromExecution when given, and starts the run on submit.
async function runFormPage(route, name, fromExecution) {
  const box = el("div", {id: "run-form"}, el("p", {class: "muted"}, "Loading the form…"));
  setMain(el("p", {}, el("a", {href: "#/runbooks/" + encodeURIComponent(name)}, "← Runbook " + name)),
    el("h1", {}, "Run ", name), box);
  let spec, prefill;
  try {
    [spec, prefill] = await Promise.all([
      api("/api/v1/runbooks/" + encodeURIComponent(name) + "/form"),
      fromExecution ? api("/api/v1/executions/" + encodeURIComponent(fromExecution)).then(b => b.execution.input) : undefined]);
  } catch (err) { showError(err); box.replaceChildren(); return; }
  if (location.hash !== route) return;
  box.replaceChildren(runForm(name, spec, prefill, fromExecution));
  const first = box.querySelector("input, select, textarea");
  if (first) first.focus();
}

// runForm is the form element: fields from spec.form, or a JSON editor when
// the runbook declares no schema.
function runForm(name, spec, prefill, fromExecution) {
  const f = spec.form || {raw: true};
  const top = el("div", {class: "field-error form-error", role: "alert"});
  const status = el("span", {class: "muted", id: "run-status"});
  let read;
  const parts = [];
  if (f.raw) {
    const editor = jsonEditor("input-json", prefill, false);
    parts.push(el("div", {class: "field k-json", "data-pointer": ""},
      el("label", {for: "input-json"}, "Input (JSON)"),
      editor.node,
      el("div", {class: "help"}, "This runbook declares no input schema: give its input as JSON, or leave it empty for none."),
      el("div", {class: "field-error", role: "alert"})));
    read = editor.read;
  } else {
    const given = isObject(prefill) ? prefill : {};
    const controls = (f.fields || []).map(field => fieldControl(field, field.name in given ? given[field.name] : field.default));
    parts.push(...controls.map(c => c.node));
    // Properties the form has no field for: kept from a rerun, and open to
    // more where the schema allows them.
    const known = new Set((f.fields || []).map(field => field.name));
    const extra = Object.fromEntries(Object.entries(given).filter(([k]) => !known.has(k)));
    let extras = null;
    if (f.open || Object.keys(extra).length) {
      extras = jsonEditor("input-extra", Object.keys(extra).length ? extra : undefined, true);
      parts.push(el("details", {open: Object.keys(extra).length > 0, class: "extra"},
        el("summary", {}, "More input (JSON object)"),
        el("div", {class: "field k-json", "data-pointer": ""}, extras.node,
          el("div", {class: "help"}, "Properties the form has no field for, merged into the input."),
          el("div", {class: "field-error", role: "alert"}))));
    }
    read = () => {
      const out = {};
      for (const c of controls) {
        const v = c.read();
        if (v !== undefined) out[c.field.name] = v;
      }
      const more = extras ? extras.read() : undefined;
      return more === undefined ? out : Object.assign(more, out);
    };
  }
  if (fromExecution) parts.unshift(el("p", {class: "muted"}, "Filled with the input of ",
    el("a", {href: "#/executions/" + encodeURIComponent(fromExecution), class: "mono"}, fromExecution), "."));
  const submit = el("button", {type: "submit", class: "primary"}, "Start run");
  // force starts past a pause (admin): offered when a start was refused for one.
  let force = false;
  const forceButton = el("button", {type: "submit", class: "force", hidden: true,
    onclick: () => { force = true; }}, "Start anyway (admin)");
  const form = el("form", {class: "run-form", "data-runbook": name, "data-version": spec.version || ""},
    top, ...parts, el("div", {class: "actions"}, submit, forceButton, status));
  form.addEventListener("submit", async ev => {
    ev.preventDefault();
    const forced = force;
    force = false;
    clearFieldErrors(form);
    if (!form.reportValidity()) return;
    let input;
    try { input = read(); } catch (err) { top.textContent = String(err.message || err); return; }
    submit.disabled = true;
    status.textContent = "starting…";
    try {
      const headers = Object.assign(jsonHeaders(), {"X-Starbook-Trigger": "manual"});
      const req = input === undefined ? {} : {input};
      if (forced) req.force = true;
      const body = await api("/api/v1/runbooks/" + encodeURIComponent(name) + "/executions", {
        method: "POST", headers, body: JSON.stringify(req)});
      location.hash = "#/executions/" + body.execution.id;
    } catch (err) {
      status.textContent = "";
      const pointer = err.body && typeof err.body.pointer === "string" ? err.body.pointer : null;
      if (err.status === 400 && pointer !== null) showFieldError(form, pointer, err.message);
      else top.textContent = String(err.message || err);
      forceButton.hidden = !(err.status === 409 && /paused/i.test(err.message));
    } finally {
      submit.disabled = false;
    }
  });
  return form;
}

function isObject(v) {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

// fieldControl draws one field of the form with its value initial
// (undefined for none): {node, field, read}, where read returns the value
// for the input, or undefined to leave it out.
function fieldControl(f, initial) {
  const id = "field-" + (++fieldSeq);
  const label = el("label", {for: id}, f.label || f.name,
    f.required ? el("span", {class: "req", title: "required"}, " *") : null);
  const help = f.description ? el("div", {class: "help"}, f.description) : null;
  const err = el("div", {class: "field-error", role: "alert"});
  const wrap = (...inner) => el("div", {class: "field k-" + f.kind, "data-pointer": f.pointer}, ...inner);
  switch (f.kind) {
    case "object": return objectControl(f, initial);
    case "array": return arrayControl(f, initial);
    case "boolean": {
      const box = el("input", {id, type: "checkbox", name: f.pointer, checked: initial === true});
      return {field: f, node: wrap(el("label", {class: "check"}, box, " ", f.label || f.name,
        f.required ? el("span", {class: "req"}, " *") : null), help, err), read: () => box.checked};
    }
    case "enum": {
      const sel = el("select", {id, name: f.pointer, required: f.required},
        f.required && initial !== undefined ? null : el("option", {value: ""}, f.required ? "— choose —" : "—"),
        (f.enum || []).map((v, i) => el("option", {value: String(i), selected: initial !== undefined && same(v, initial)},
          typeof v === "string" ? v : JSON.stringify(v))));
      return {field: f, node: wrap(label, sel, help, err), read: () => sel.value === "" ? undefined : f.enum[Number(sel.value)]};
    }
    case "number":
    case "integer": {
      const input = el("input", {id, name: f.pointer, type: "number", required: f.required,
        step: f.kind === "integer" ? "1" : "any", min: f.minimum, max: f.maximum,
        value: typeof initial === "number" ? String(initial) : null});
      const check = () => {
        const v = Number(input.value);
        let msg = "";
        if (input.value !== "" && f.exclusive_minimum !== undefined && !(v > f.exclusive_minimum)) msg = "must be more than " + f.exclusive_minimum;
        if (input.value !== "" && f.exclusive_maximum !== undefined && !(v < f.exclusive_maximum)) msg = "must be less than " + f.exclusive_maximum;
        input.setCustomValidity(msg);
      };
      input.addEventListener("input", check);
      return {field: f, node: wrap(label, input, bounds(f), help, err), read: () => input.value === "" ? undefined : Number(input.value)};
    }
    case "string": {
      const type = {"email": "email", "uri": "url", "date-time": "datetime-local", "date": "date"}[f.format] || "text";
      const input = el("input", {id, name: f.pointer, type, required: f.required,
        minlength: f.min_length, maxlength: f.max_length,
        step: type === "datetime-local" ? "1" : null,
        placeholder: f.format && type === "text" ? f.format : null});
      if (typeof initial === "string") input.value = type === "datetime-local" ? toLocalInput(initial) : initial;
      const check = () => {
        let msg = "";
        if (f.pattern && input.value !== "") {
          try { if (!new RegExp(f.pattern, "u").test(input.value)) msg = "must match " + f.pattern; } catch (_) { /* the server checks it */ }
        }
        input.setCustomValidity(msg);
      };
      input.addEventListener("input", check);
      check();
      const read = () => {
        if (input.value === "") return undefined;
        return type === "datetime-local" ? new Date(input.value).toISOString() : input.value;
      };
      return {field: f, node: wrap(label, input, bounds(f), help, err), read};
    }
    default: { // json: anything the mapping has no control for
      const editor = jsonEditor(id, initial, false);
      return {field: f, node: wrap(label, editor.node, el("div", {class: "help"}, "JSON", f.description ? ": " + f.description : ""), err), read: editor.read};
    }
  }
}

// bounds says a field's limits in words, next to its control.
function bounds(f) {
  const out = [];
  if (f.minimum !== undefined) out.push("≥ " + f.minimum);
  if (f.exclusive_minimum !== undefined) out.push("> " + f.exclusive_minimum);
  if (f.maximum !== undefined) out.push("≤ " + f.maximum);
  if (f.exclusive_maximum !== undefined) out.push("< " + f.exclusive_maximum);
  const chars = n => n + (n === 1 ? " character" : " characters");
  if (f.min_length !== undefined) out.push("at least " + chars(f.min_length));
  if (f.max_length !== undefined) out.push("at most " + chars(f.max_length));
  if (f.pattern) out.push("matches " + f.pattern);
  if (f.format) out.push(f.format);
  return out.length ? el("span", {class: "bounds muted"}, out.join(", ")) : null;
}

// objectControl is a fieldset of the object's fields.
function objectControl(f, initial) {
  const given = isObject(initial) ? initial : {};
  const controls = (f.fields || []).map(sub => fieldControl(sub, sub.name in given ? given[sub.name] : sub.default));
  const node = el("fieldset", {class: "field k-object", "data-pointer": f.pointer},
    el("legend", {}, f.label || f.name, f.required ? el("span", {class: "req"}, " *") : null),
    f.description ? el("div", {class: "help"}, f.description) : null,
    el("div", {class: "field-error", role: "alert"}),
    ...controls.map(c => c.node));
  const read = () => {
    const out = {};
    for (const c of controls) {
      const v = c.read();
      if (v !== undefined) out[c.field.name] = v;
    }
    return Object.keys(out).length || f.required ? out : undefined;
  };
  return {field: f, node, read};
}

// arrayControl is a list of rows of the item's control, with Add and Remove.
function arrayControl(f, initial) {
  const rowsBox = el("div", {class: "rows"});
  const err = el("div", {class: "field-error", role: "alert"});
  let rows = [];
  const add = el("button", {type: "button", class: "add"}, "Add");
  const render = values => {
    rows = values.map((v, i) => {
      const item = rebase(f.items, f.pointer + "/-", f.pointer + "/" + i);
      item.name = String(i);
      item.label = (f.label || f.name) + " #" + (i + 1);
      return fieldControl(item, v);
    });
    rowsBox.replaceChildren(...rows.map((c, i) => el("div", {class: "row"}, c.node,
      el("button", {type: "button", class: "remove", title: "remove this item", onclick: () => {
        const vs = rows.map(r => r.read());
        vs.splice(i, 1);
        render(vs);
      }}, "Remove"))));
    add.disabled = f.max_items !== undefined && rows.length >= f.max_items;
  };
  add.addEventListener("click", () => render([...rows.map(r => r.read()), undefined]));
  render(Array.isArray(initial) ? initial : []);
  const node = el("fieldset", {class: "field k-array", "data-pointer": f.pointer},
    el("legend", {}, f.label || f.name, f.required ? el("span", {class: "req"}, " *") : null),
    f.description ? el("div", {class: "help"}, f.description) : null,
    f.min_items !== undefined || f.max_items !== undefined
      ? el("div", {class: "bounds muted"}, [f.min_items !== undefined ? "at least " + f.min_items : null,
        f.max_items !== undefined ? "at most " + f.max_items : null].filter(x => x).join(", ") + " items") : null,
    err, rowsBox, add);
  const read = () => {
    const vs = rows.map(r => r.read());
    if (!vs.length && !f.required && !Array.isArray(initial)) return undefined;
    return vs.map(v => v === undefined ? null : v);
  };
  return {field: f, node, read};
}

// rebase copies a field with every pointer under from moved under to: an
// array's item field ("/hosts/-") as its i-th row ("/hosts/2").
function rebase(f, from, to) {
  const c = Object.assign({}, f);
  if (c.pointer === from || (c.pointer || "").startsWith(from + "/")) c.pointer = to + c.pointer.slice(from.length);
  if (c.items) c.items = rebase(c.items, from, to);
  if (c.fields) c.fields = c.fields.map(x => rebase(x, from, to));
  return c;
}

// jsonEditor is a textarea that must hold JSON (an object if wantObject):
// {node, read}, read returning undefined when it is empty.
function jsonEditor(id, initial, wantObject) {
  const area = el("textarea", {id, class: "json-editor", rows: 8, spellcheck: "false"});
  if (initial !== undefined && initial !== null) area.value = JSON.stringify(initial, null, 2);
  const check = () => {
    let msg = "";
    if (area.value.trim() !== "") {
      try {
        const v = JSON.parse(area.value);
        if (wantObject && !isObject(v)) msg = "want a JSON object";
      } catch (err) { msg = "not JSON: " + err.message; }
    }
    area.setCustomValidity(msg);
    area.classList.toggle("invalid", msg !== "");
  };
  area.addEventListener("input", check);
  check();
  return {node: area, read: () => area.value.trim() === "" ? undefined : JSON.parse(area.value)};
}

function same(a, b) {
  return JSON.stringify(a) === JSON.stringify(b);
}

// toLocalInput writes an RFC 3339 time as a datetime-local input's value.
function toLocalInput(s) {
  const d = new Date(s);
  if (isNaN(d)) return "";
  const p = n => String(n).padStart(2, "0");
  return d.getFullYear() + "-" + p(d.getMonth() + 1) + "-" + p(d.getDate()) + "T" + p(d.getHours()) + ":" + p(d.getMinutes()) + ":" + p(d.getSeconds());
}

function clearFieldErrors(form) {
  for (const e of form.querySelectorAll(".field-error")) e.textContent = "";
  for (const e of form.querySelectorAll(".field.invalid")) e.classList.remove("invalid");
}

// showFieldError puts a refusal at the field its pointer names: that field,
// else the property a "missing property" names, else the nearest enclosing
// field, else the top of the form.
function showFieldError(form, pointer, msg) {
  const find = p => form.querySelector('[data-pointer="' + CSS.escape(p) + '"]');
  const missing = /missing propert(?:y|ies) '([^']+)'/.exec(msg);
  let box = missing ? find(pointer + "/" + missing[1].replace(/~/g, "~0").replace(/\//g, "~1")) : null;
  for (let p = pointer; !box; p = p.slice(0, p.lastIndexOf("/"))) {
    box = p === "" ? null : find(p);
    if (p === "") break;
  }
  if (!box) { form.querySelector(".form-error").textContent = msg; return; }
  box.classList.add("invalid");
  box.querySelector(":scope > .field-error").textContent = msg;
  const input = box.querySelector("input, select, textarea");
  if (input) input.focus();
  box.scrollIntoView({block: "center"});
}
