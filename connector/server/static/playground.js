// The playground: a form per action, rendered from GET /spec (the input schema and its form
// hints), run through the same HTTP routes every platform calls. Text from the spec or from an
// answer is only ever set as textContent or a value, never parsed as HTML.
"use strict";

const $ = (id) => document.getElementById(id);
let SPEC = null;
const FIELDS = new Map();          // input key -> {prop, element, kind, wrapper}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "text") node.textContent = v;
    else if (k in node && typeof v !== "string") node[k] = v;
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) node.append(c);
  return node;
}

// -- connection ---------------------------------------------------------------------------
function connectionHeaders() {
  const h = {};
  const key = $("api-key").value.trim();
  if (key) h["X-API-Key"] = key;
  const mode = $("conn-mode").value;
  const put = (name, id) => { const v = $(id).value.trim(); if (v) h[name] = v; };
  if (mode === "named") put("X-Databricks-Connection", "conn-name");
  if (mode === "pat") { put("X-Databricks-Host", "host"); put("X-Databricks-Token", "token"); }
  if (mode === "sp") {
    put("X-Databricks-Token-Url", "token-url"); put("X-Databricks-Client-Id", "client-id");
    put("X-Databricks-Client-Secret", "client-secret"); put("X-Databricks-Scopes", "scopes");
  }
  return h;
}

function showMode() {
  const mode = $("conn-mode").value;
  for (const div of document.querySelectorAll(".conn")) div.hidden = div.dataset.mode !== mode;
}

async function api(method, path, body) {
  const headers = connectionHeaders();
  const init = { method, headers };
  if (body !== undefined) { headers["Content-Type"] = "application/json"; init.body = JSON.stringify(body); }
  const response = await fetch(path, init);
  let doc = null;
  const text = await response.text();
  try { doc = text ? JSON.parse(text) : null; } catch (e) { doc = { error: { type: "internal", message: text.slice(0, 300) } }; }
  return { response, doc };
}

async function loadConnectionNames() {
  const list = $("conn-names");
  const { response, doc } = await api("GET", "/connections");
  if (!response.ok || !doc) return;
  list.replaceChildren(...doc.connections.map((name) => el("option", { value: name })));
  if (!$("conn-name").value && doc.connections.length) $("conn-name").value = doc.connections[0];
}

// -- the form -------------------------------------------------------------------------------
function kindOf(prop) {
  const t = prop.type;
  if (Array.isArray(prop.enum)) return "enum";
  if (t === "boolean") return "boolean";
  if (t === "integer" || t === "number") return "number";
  if (prop["x-widget"] || t === "object" || t === "array" || t === undefined) return "textarea";
  return "text";
}

function fieldFor(key, prop, required) {
  const kind = kindOf(prop);
  const id = `in-${key}`;
  let input;
  if (kind === "enum") {
    input = el("select", { id });
    if (!required || prop.default === undefined) input.append(el("option", { value: "", text: "" }));
    for (const v of prop.enum) input.append(el("option", { value: String(v), text: String(v) }));
  } else if (kind === "boolean") {
    input = el("input", { id, type: "checkbox" });
    input.checked = prop.default === true;
  } else if (kind === "textarea") {
    input = el("textarea", { id, spellcheck: "false" });
  } else {
    input = el("input", { id, type: kind === "number" ? "number" : "text", autocomplete: "off" });
    if (kind === "number") input.step = prop.type === "integer" ? "1" : "any";
  }
  if (kind !== "boolean" && prop.default !== undefined) {
    const d = typeof prop.default === "object" ? JSON.stringify(prop.default) : String(prop.default);
    if (kind === "enum") input.value = d; else input.placeholder = d;
  } else if (kind !== "boolean" && Array.isArray(prop.examples) && prop.examples.length) {
    const ex = prop.examples[0];
    input.placeholder = typeof ex === "object" ? JSON.stringify(ex) : String(ex);
  }
  input.dataset.key = key;
  const label = el("label", { for: id, class: required ? "required" : undefined, text: prop.title || key });
  const wrapper = el("div", { class: "field", "data-key": key });
  if (kind === "boolean") { label.prepend(input); wrapper.append(label); }
  else wrapper.append(label, input);
  if (prop["x-picker"]) {
    const list = el("datalist", { id: `options-${key}` });
    input.setAttribute("list", list.id);
    const refresh = el("button", { type: "button", class: "small", text: "↻", title: "Load the options" });
    refresh.addEventListener("click", () => fillPicker(key));
    label.append(refresh);
    wrapper.append(list);
  }
  if (prop.description) wrapper.append(el("p", { class: "help", text: prop.description }));
  input.addEventListener("change", () => { applyShowIf(); refreshDependents(key); });
  FIELDS.set(key, { prop, input, kind, wrapper });
  return wrapper;
}

function currentAction() {
  return SPEC.actions.find((a) => a.key === $("action").value);
}

function renderForm() {
  const action = currentAction();
  FIELDS.clear();
  $("form").replaceChildren();
  $("form-advanced").replaceChildren();
  $("description").textContent = action ? action.description || "" : "";
  if (!action) return;
  const schema = action.input_schema || { properties: {} };
  const required = new Set(schema.required || []);
  let advanced = 0;
  for (const [key, prop] of Object.entries(schema.properties || {})) {
    const field = fieldFor(key, prop, required.has(key));
    if (prop["x-advanced"] || key === "debug") { $("form-advanced").append(field); advanced++; }
    else $("form").append(field);
  }
  $("advanced").hidden = advanced === 0;
  applyShowIf();
  for (const [key, f] of FIELDS) if (f.prop["x-picker"]) fillPicker(key);
}

function rawValue(key) {
  const f = FIELDS.get(key);
  if (!f) return undefined;
  if (f.kind === "boolean") return f.input.checked;
  return f.input.value;
}

function applyShowIf() {
  for (const [, f] of FIELDS) {
    const cond = f.prop["x-show-if"];
    if (!cond || typeof cond !== "object") continue;
    let show = true;
    for (const [other, want] of Object.entries(cond)) {
      const v = rawValue(other);
      const values = Array.isArray(want) ? want : [want];
      if (!values.some((w) => String(w) === String(v === undefined ? "" : v))) show = false;
    }
    f.wrapper.hidden = !show;
  }
}

function refreshDependents(changed) {
  for (const [key, f] of FIELDS) {
    const deps = f.prop["x-picker-inputs"] || {};
    if (Object.values(deps).includes(changed)) fillPicker(key);
  }
}

async function fillPicker(key) {
  const f = FIELDS.get(key);
  const picker = f && f.prop["x-picker"];
  if (!picker) return;
  const headers = connectionHeaders();
  if (Object.keys(headers).filter((h) => h !== "X-API-Key").length === 0) return;
  const inputs = {};
  for (const [pin, ain] of Object.entries(f.prop["x-picker-inputs"] || {})) {
    const v = rawValue(ain);
    if (v !== undefined && v !== "") inputs[pin] = v;
  }
  const { response, doc } = await api("POST", `/pickers/${encodeURIComponent(picker)}`, inputs);
  const list = $(`options-${key}`);
  if (!response.ok || !Array.isArray(doc)) { list.replaceChildren(); return; }
  list.replaceChildren(...doc.map((o) => el("option", { value: String(o.value), text: String(o.label) })));
  f.input.dataset.options = String(doc.length);
}

function collect() {
  const inputs = {};
  for (const [key, f] of FIELDS) {
    if (f.wrapper.hidden) continue;
    if (f.kind === "boolean") {
      if (f.input.checked !== (f.prop.default === true)) inputs[key] = f.input.checked;
      continue;
    }
    const v = f.input.value;
    if (v !== "") inputs[key] = v;       // form strings: the runner coerces them to their types
  }
  return inputs;
}

// -- running ----------------------------------------------------------------------------------
function showError(err) {
  const box = $("error");
  box.hidden = false;
  box.querySelector(".type").textContent = err.type || "error";
  box.querySelector(".message").textContent = err.message || "";
  box.querySelector(".hint").textContent = err.hint || "";
}

function showResult(doc) {
  $("error").hidden = true;
  $("output").textContent = JSON.stringify(doc, null, 2);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function follow(response, doc) {
  // The 202 pattern: GET the Location (always the latest) until it answers 200 or an error.
  while (response.status === 202) {
    const wait = Math.max(1, Math.min(30, Number(response.headers.get("Retry-After")) || 2));
    $("status").textContent = `Running (${(doc && doc.action) || "operation"}); checking again in ${wait} s`;
    await sleep(wait * 1000);
    const where = new URL(response.headers.get("Location"), window.location.href);
    ({ response, doc } = await api("GET", where.pathname));
  }
  return { response, doc };
}

async function run() {
  const action = currentAction();
  if (!action) return;
  $("run").disabled = true;
  $("status").textContent = "Running";
  $("output").textContent = "";
  $("error").hidden = true;
  const started = performance.now();
  try {
    let { response, doc } = await api("POST", `/actions/${encodeURIComponent(action.key)}`, collect());
    ({ response, doc } = await follow(response, doc));
    if (response.ok) showResult(doc);
    else { showError((doc && doc.error) || { message: `HTTP ${response.status}` }); $("output").textContent = JSON.stringify(doc, null, 2); }
    $("status").textContent = `${response.ok ? "Done" : "Failed"} (HTTP ${response.status}, ${Math.round(performance.now() - started)} ms)`;
    $("status").dataset.state = response.ok ? "done" : "failed";
  } catch (e) {
    showError({ type: "network", message: String(e) });
    $("status").textContent = "Failed";
    $("status").dataset.state = "failed";
  } finally {
    $("run").disabled = false;
  }
}

async function testConnection() {
  $("status").textContent = "Testing the connection";
  const { response, doc } = await api("POST", "/connections/test");
  if (response.ok) showResult(doc); else showError((doc && doc.error) || {});
  $("status").textContent = response.ok ? "Connection works" : "Connection failed";
  $("status").dataset.state = response.ok ? "done" : "failed";
  for (const [key, f] of FIELDS) if (f.prop["x-picker"]) fillPicker(key);
}

async function start() {
  SPEC = await (await fetch("/spec")).json();
  $("title").textContent = `${SPEC.connector.label || "Databricks"} connector playground`;
  const groups = new Map();
  for (const a of SPEC.actions) {
    const g = a.group || "Actions";
    if (!groups.has(g)) groups.set(g, el("optgroup", { label: g }));
    groups.get(g).append(el("option", { value: a.key, text: a.label }));
  }
  $("action").replaceChildren(...groups.values());
  $("action").addEventListener("change", renderForm);
  $("conn-mode").addEventListener("change", showMode);
  $("run").addEventListener("click", run);
  $("test-connection").addEventListener("click", testConnection);
  $("api-key").addEventListener("change", loadConnectionNames);
  for (const id of ["conn-name", "host", "token", "token-url", "client-id", "client-secret"]) {
    $(id).addEventListener("change", () => { for (const [key, f] of FIELDS) if (f.prop["x-picker"]) fillPicker(key); });
  }
  showMode();
  renderForm();
  loadConnectionNames();
  document.body.dataset.ready = "true";
}

start();
