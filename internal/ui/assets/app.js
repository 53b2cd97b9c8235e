// holdfast operator page. Every value that comes from a message (ids, reasons, bodies, properties) is put
// into the page with textContent, never as markup. API calls carry the page's `code` query parameter.
"use strict";

const params = new URLSearchParams(location.search);
const code = params.get("code") || "";
const apiBase = location.pathname.replace(/\/ui\/?$/, ""); // "/api" under the default route prefix
const soon = 60 * 60 * 1000; // expires-at within this is shown as a warning

const tabs = {
  deferred: {
    path: "/deferred",
    states: ["pending", "deferred", "resubmitting"],
    actions: ["resubmit", "delete", "deadletter"],
    columns: [
      ["Seq", (m) => String(m.sequenceNumber)],
      ["Message ID", (m) => m.messageId],
      ["Reason", (m) => m.reason],
      ["State", (m) => m.state],
      ["Deferred at", (m) => when(m.deferredAt)],
      ["Not before", (m) => when(m.notBefore)],
      ["Expires at", (m) => when(m.expiresAt), (m) => expiring(m)],
      ["Resubmits", (m) => String(m.resubmitCount)],
      ["Last error", (m) => m.lastError || ""],
    ],
  },
  deadletter: {
    path: "/deadletter",
    states: ["active", "deferred"],
    actions: ["resubmit", "delete"],
    columns: [
      ["Seq", (m) => String(m.sequenceNumber)],
      ["Message ID", (m) => m.messageId],
      ["Reason", (m) => m.deadLetterReason],
      ["Description", (m) => m.deadLetterErrorDescription],
      ["State", (m) => m.state],
      ["Enqueued at", (m) => when(m.enqueuedAt)],
      ["Deliveries", (m) => String(m.deliveryCount)],
      ["Resubmits", (m) => String(m.resubmitCount)],
      ["Body", (m) => preview(m.body)],
    ],
  },
};

const state = { tab: "deferred", pages: [""], items: [], next: "", selected: new Set(), busy: false };

const $ = (id) => document.getElementById(id);

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined) e.textContent = text;
  if (cls) e.className = cls;
  return e;
}

function when(t) {
  return t ? new Date(t).toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z") : "";
}

function expiring(m) {
  if (m.expiringSoon) return true;
  return !!m.expiresAt && new Date(m.expiresAt).getTime() - Date.now() < soon;
}

function preview(b) {
  if (!b || b.encoding === "none") return "";
  return (b.encoding === "base64" ? "base64:" : "") + b.text + (b.truncated ? "…" : "");
}

function withCode(path) {
  if (!code) return apiBase + path;
  return apiBase + path + (path.includes("?") ? "&" : "?") + "code=" + encodeURIComponent(code);
}

async function api(path, body) {
  const init = body === undefined ? {} : { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) };
  const res = await fetch(withCode(path), init);
  let data = null;
  try {
    data = await res.json();
  } catch (e) {
    data = null;
  }
  if (!res.ok) {
    const err = new Error((data && data.error) || res.status + " " + res.statusText);
    err.result = data; // a drain call that failed after it started answers what it did ("partial")
    throw err;
  }
  return data;
}

function showError(err) {
  const p = $("error");
  p.textContent = err ? String(err.message || err) : "";
  p.hidden = !err;
}

// --- list -------------------------------------------------------------------------------------------

async function load() {
  const t = tabs[state.tab];
  const cont = state.pages[state.pages.length - 1];
  let q = t.path + "?top=" + encodeURIComponent($("page-size").value);
  if (cont) q += "&continuation=" + encodeURIComponent(cont);
  showError(null);
  try {
    const page = await api(q);
    state.items = page.items || [];
    state.next = page.continuation || "";
    $("entity").textContent = page.entity ? "entity " + page.entity : "";
  } catch (err) {
    state.items = [];
    state.next = "";
    showError(err);
  }
  state.selected.clear();
  render();
}

function visible() {
  const reason = $("filter-reason").value.trim().toLowerCase();
  const st = $("filter-state").value;
  return state.items.filter((m) => {
    const r = (state.tab === "deferred" ? m.reason : m.deadLetterReason) || "";
    return (!reason || r.toLowerCase().includes(reason)) && (!st || m.state === st);
  });
}

function render() {
  const t = tabs[state.tab];
  const head = $("head-row");
  head.replaceChildren();
  const all = el("input");
  all.type = "checkbox";
  all.id = "select-page";
  all.setAttribute("aria-label", "select every message on this page");
  const th = el("th");
  th.append(all);
  head.append(th);
  for (const [name] of t.columns) head.append(el("th", name));
  head.append(el("th", ""));

  const rows = $("rows");
  rows.replaceChildren();
  const items = visible();
  // The selection is what the operator sees checked: a row the filter hides leaves it, so that no action
  // touches a message out of sight.
  const shown = new Set(items.map((m) => m.sequenceNumber));
  for (const s of state.selected) if (!shown.has(s)) state.selected.delete(s);
  for (const m of items) {
    const tr = el("tr");
    tr.dataset.seq = String(m.sequenceNumber);
    const box = el("input");
    box.type = "checkbox";
    box.checked = state.selected.has(m.sequenceNumber);
    box.setAttribute("aria-label", "select message " + m.sequenceNumber);
    box.addEventListener("change", () => {
      if (box.checked) state.selected.add(m.sequenceNumber);
      else state.selected.delete(m.sequenceNumber);
      updateSelection();
    });
    const td = el("td");
    td.append(box);
    tr.append(td);
    for (const [, text, warn] of t.columns) {
      const cell = el("td", text(m) || "");
      if (warn && warn(m)) {
        cell.className = "warn";
        cell.title = "expires soon";
      }
      tr.append(cell);
    }
    const view = el("button", "View", "link");
    view.type = "button";
    view.addEventListener("click", () => detail(m.sequenceNumber));
    const vtd = el("td");
    vtd.append(view);
    tr.append(vtd);
    rows.append(tr);
  }
  all.checked = items.length > 0 && items.every((m) => state.selected.has(m.sequenceNumber));
  all.addEventListener("change", () => {
    for (const m of items) {
      if (all.checked) state.selected.add(m.sequenceNumber);
      else state.selected.delete(m.sequenceNumber);
    }
    render();
  });
  $("empty").hidden = items.length > 0;
  $("prev").disabled = state.pages.length <= 1;
  $("next").disabled = !state.next;
  $("page-info").textContent = "page " + state.pages.length + ", " + items.length + " shown of " + state.items.length;
  for (const a of ["resubmit", "delete", "deadletter"]) $("act-" + a).hidden = !t.actions.includes(a);
  updateSelection();
}

function updateSelection() {
  const n = state.selected.size;
  $("selection-info").textContent = $("apply-all").checked ? "every message of the tab" : n + " selected";
  for (const a of ["resubmit", "delete", "deadletter"]) $("act-" + a).disabled = state.busy || (!$("apply-all").checked && n === 0);
}

function setTab(tab) {
  state.tab = tab;
  state.pages = [""];
  for (const b of document.querySelectorAll("[role=tab]")) b.setAttribute("aria-selected", String(b.dataset.tab === tab));
  const sel = $("filter-state");
  sel.replaceChildren(el("option", "any"));
  sel.firstChild.value = "";
  for (const s of tabs[tab].states) sel.append(el("option", s));
  $("detail").hidden = true;
  $("result").hidden = true;
  $("apply-all").checked = false; // "every message" never carries over to another tab
  load();
}

// --- actions ----------------------------------------------------------------------------------------

async function act(action) {
  const t = tabs[state.tab];
  const everything = $("apply-all").checked;
  const seqs = [...state.selected].sort((a, b) => a - b);
  const what = everything ? "every message in the " + state.tab + " tab" : seqs.length + " message(s)";
  const body = everything ? { all: true } : { sequenceNumbers: seqs };
  if (action === "deadletter") {
    const reason = prompt("Dead-letter " + what + ". Reason:", "operator");
    if (!reason) return;
    body.reason = reason;
  } else if (action === "delete" && !confirm("Delete " + what + "? This cannot be undone.")) {
    return;
  } else if (action === "resubmit" && everything && !confirm("Resubmit " + what + "?")) {
    return;
  }
  state.busy = true;
  updateSelection();
  showError(null);
  const total = { processed: 0, resubmitted: 0, completed: 0, deadLettered: 0, released: 0, notFound: [], failed: [], skipped: 0 };
  const box = $("progress-box");
  box.hidden = false;
  $("progress").removeAttribute("value");
  try {
    for (let call = 1; ; call++) {
      $("progress-text").textContent = action + ": call " + call + ", " + total.processed + " processed so far";
      const res = await api(t.path + "/" + action, body);
      add(total, res);
      if (!res.continuation) break;
      body.continuation = res.continuation;
    }
  } catch (err) {
    if (err.result && err.result.partial) add(total, err.result);
    showError(err);
  } finally {
    state.busy = false;
    box.hidden = true;
    $("apply-all").checked = false; // "every message" is chosen again for each action
  }
  showResult(action, total);
  await load();
}

function add(total, res) {
  total.processed += res.processed || 0;
  total.resubmitted += res.resubmitted || 0;
  total.completed += res.completed || 0;
  total.deadLettered += res.deadLettered || 0;
  total.released += res.released || 0;
  total.skipped += res.skippedCount || 0;
  total.notFound.push(...(res.notFound || []));
  total.failed.push(...(res.failed || []));
}

function showResult(action, r) {
  $("result").hidden = false;
  const parts = [action + ": " + r.processed + " processed", r.resubmitted + " resubmitted", r.completed + " deleted", r.deadLettered + " dead-lettered",
    r.notFound.length + " not found", r.failed.length + " failed"];
  if (r.skipped) parts.push(r.skipped + " skipped");
  if (r.released) parts.push(r.released + " received ahead of the selection and given back");
  $("result-summary").textContent = parts.join(" · ");
  $("result-notfound").textContent = r.notFound.length ? "Not found: " + r.notFound.join(", ") : "";
  const ul = $("result-failed");
  ul.replaceChildren();
  for (const f of r.failed) ul.append(el("li", f.sequenceNumber + ": " + f.error));
}

// --- detail -----------------------------------------------------------------------------------------

async function detail(seq) {
  showError(null);
  let m;
  try {
    m = await api(tabs[state.tab].path + "/peek?sequenceNumber=" + encodeURIComponent(seq));
  } catch (err) {
    showError(err);
    return;
  }
  $("detail-title").textContent = String(m.sequenceNumber);
  const fields = $("detail-fields");
  fields.replaceChildren();
  const add = (tbody, k, v) => {
    const tr = el("tr");
    tr.append(el("th", k), el("td", v));
    tbody.append(tr);
  };
  const dlq = state.tab === "deadletter"; // a dead-letter queue does not observe time-to-live
  for (const [k, v] of [["Message ID", m.messageId], ["State", m.state], ["Enqueued at", when(m.enqueuedAt)], ["Expires at", dlq ? "" : when(m.expiresAt)],
    ["Delivery count", String(m.deliveryCount)], ["Time to live", dlq ? "" : m.timeToLive], ["Content type", m.contentType], ["Subject", m.subject],
    ["Correlation ID", m.correlationId], ["Dead-letter reason", m.deadLetterReason], ["Dead-letter description", m.deadLetterErrorDescription],
    ["Dead-letter source", m.deadLetterSource]]) {
    if (v) add(fields, k, v);
  }
  const props = $("detail-props");
  props.replaceChildren();
  for (const p of m.properties || []) add(props, p.name + " (" + p.type + ")", p.value + (p.truncated ? "…" : ""));
  const b = m.body || {};
  $("detail-body-info").textContent = b.encoding === "none" ? "(not a single data section)" :
    "(" + b.size + " bytes" + (b.encoding === "base64" ? ", binary shown as base64" : "") + (b.truncated ? ", cut" : "") + ")";
  $("detail-body").textContent = b.text || "";
  $("detail").hidden = false;
}

// --- wiring -----------------------------------------------------------------------------------------

document.addEventListener("DOMContentLoaded", () => {
  for (const b of document.querySelectorAll("[role=tab]")) b.addEventListener("click", () => setTab(b.dataset.tab));
  $("refresh").addEventListener("click", load);
  $("prev").addEventListener("click", () => {
    if (state.pages.length > 1) state.pages.pop();
    load();
  });
  $("next").addEventListener("click", () => {
    if (state.next) state.pages.push(state.next);
    load();
  });
  $("page-size").addEventListener("change", () => {
    state.pages = [""];
    load();
  });
  $("filter-reason").addEventListener("input", render);
  $("filter-state").addEventListener("change", render);
  $("apply-all").addEventListener("change", updateSelection);
  for (const a of ["resubmit", "delete", "deadletter"]) $("act-" + a).addEventListener("click", () => act(a));
  $("detail-close").addEventListener("click", () => ($("detail").hidden = true));
  setTab(location.hash === "#deadletter" ? "deadletter" : "deferred");
});
