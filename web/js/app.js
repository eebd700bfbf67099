// The dashboard page: list and switcher, create from template, time range, live updates.
//
// URL: #/dashboards/<id>?range=last_1h. Data arrives through the WebSocket channel
// `dashboard:<id>?tz=<offset>[&timeRange=...]`; when no push has arrived for a refresh
// interval (socket down, hub busy) the page polls GET /dashboards/<id>/data instead.

import { api, ApiError } from "./api.js";
import { take } from "./boot.js";
import { LiveConnection, dashboardChannel } from "./live.js";
import { applyChartDefaults, buildWidgetGrid, paletteChanged, updateWidgets,
  warmUpCharts } from "./widgets.js";
import { formatNumber, rangeLabel, updatedText } from "./format.js";
import { DashboardEditor } from "./editor.js";
import { installAnnotationForm, refreshAnnotationsSoon, registerAnnotationPlugin,
  setAnnotationSource, showAnnotationsFor } from "./annotations.js";

const $ = (sel) => document.querySelector(sel);
const TZ = -new Date().getTimezoneOffset();

const state = {
  dashboards: [],
  current: null, // the dashboard document
  views: new Map(), // widget id -> WidgetView
  range: "",
  channel: null,
  lastData: 0,
  pollTimer: null,
  loadSeq: 0,
  liveState: "connecting",
  wasLive: false,
  templates: null,
  notice: "", // shown once the next dashboard opens (why the page moved there)
  noticeUntil: 0,
  reloading: false,
  storeEvents: null, // events stored on the server (0: show how to send the first one)
};

const live = new LiveConnection({ onMessage, onState });
let editor = null; // created once the page is wired (its dialogs are in the document)

// -- status ------------------------------------------------------------------------------------

function onState(s) {
  state.liveState = s;
  renderLiveIndicator();
  if (s !== "live") return;
  // catch up after a reconnect; the first connect needs no fetch (the page fetched already)
  if (state.wasLive && state.current) fetchData();
  state.wasLive = true;
}

function renderLiveIndicator() {
  const box = $("#live");
  const s = state.liveState;
  box.dataset.state = s;
  $("#live-label").textContent = { live: "Live", connecting: "Connecting…", offline: "Offline · polling" }[s] || s;
  box.title = s === "live" ? "Receiving live updates over WebSocket"
    : "Live connection unavailable; refreshing on the dashboard's interval";
}

function banner(text) {
  const b = $("#banner");
  b.textContent = text || "";
  b.hidden = !text;
}

function show(section) {
  for (const id of ["welcome", "dashboard", "loading"]) $(`#${id}`).hidden = id !== section;
  // a time range means nothing without a dashboard to apply it to
  for (const b of document.querySelectorAll("#range-picker button")) b.disabled = section !== "dashboard";
}

// -- live messages -----------------------------------------------------------------------------

function onMessage(msg) {
  if (msg.type === "metrics" && msg.data) {
    const d = msg.data;
    const eps = d.eventsPerSecond ?? d.eps ?? (d.aggregator && d.aggregator.eventsPerSecond);
    $("#eps").textContent = eps === undefined ? "" : `${formatNumber(eps, { decimals: 1 })} ev/s`;
    if (state.storeEvents === 0 && eps > 0) checkStore(); // the first events are landing
  } else if (msg.type === "dashboard" && msg.channel === state.channel && msg.data) {
    applyData(msg.data);
  } else if (msg.type === "error" && msg.channel && msg.channel === state.channel) {
    if (msg.code === "not_found" && state.current) {
      state.channel = null; // the daemon ended it: the dashboard was deleted
      dashboardGone();
    } else {
      console.warn("live channel refused:", msg.message || msg.data);
    }
  }
}

function channelFor(id) {
  return dashboardChannel(id, state.range, TZ);
}

function resubscribe() {
  const next = state.current ? channelFor(state.current.id) : null;
  if (next === state.channel) return;
  if (state.channel) live.unsubscribe(state.channel);
  state.channel = next;
  if (next) live.subscribe(next);
}

// -- an empty store: how to send the first event ---------------------------------------------

function onboardingText() {
  const origin = location.origin;
  const body = '{"type":"pageview","userId":"user_123","properties":{"page":"/products"}}';
  $("#onboard-curl").textContent = `curl -X POST ${origin}/events -H 'Content-Type: application/json' \\\n  -d '${body}'`;
  $("#onboard-posthog").textContent = `posthog.init("any-project-key", { api_host: "${origin}" })`;
  $("#onboard-segment").textContent = `new Analytics({ writeKey: "any-write-key", host: "${origin}" })`;
  $("#onboard-demo").textContent = `rta demo generate -o events.ndjson\nrta ingest -s ${origin} events.ndjson`;
}

function setStoreEvents(n) {
  if (typeof n !== "number") return;
  const was = state.storeEvents;
  state.storeEvents = n;
  if (n === 0 && was !== 0) onboardingText();
  $("#onboarding").hidden = n !== 0;
  // the first events landed while a dashboard is open: show them now
  if (was === 0 && n > 0 && state.current) fetchData();
}

async function checkStore() {
  try {
    const stats = await api.get("/stats");
    setStoreEvents(stats && stats.store ? stats.store.events : undefined);
  } catch { /* the onboarding is a hint; the page works without it */ }
}

// -- routing -----------------------------------------------------------------------------------

function parseHash() {
  const m = /^#\/dashboards\/([^?]+)(?:\?(.*))?$/.exec(location.hash);
  if (!m) return { id: null, range: "" };
  const q = new URLSearchParams(m[2] || "");
  return { id: decodeURIComponent(m[1]), range: q.get("range") || "" };
}

function setHash(id, range) {
  const q = range ? `?range=${encodeURIComponent(range)}` : "";
  const next = `#/dashboards/${encodeURIComponent(id)}${q}`;
  if (location.hash !== next) history.replaceState(null, "", next);
}

async function route() {
  const { id, range } = parseHash();
  state.range = range;
  renderRangePicker();
  if (id && !state.dashboards.some((d) => d.id === id)) {
    // created elsewhere (CLI, API, another tab) since the list was loaded
    try { await loadList(); } catch { /* keep the list we have */ }
  }
  if (!state.dashboards.length) {
    state.current = null;
    resubscribe();
    await showWelcome();
    return;
  }
  const found = state.dashboards.find((d) => d.id === id);
  if (id && !found && !state.notice) state.notice = `There is no dashboard with id “${id}”.`;
  await openDashboard((found || state.dashboards[0]).id);
}

// -- dashboards ----------------------------------------------------------------------------------

async function loadList() {
  const res = await (take("list") || api.listDashboards());
  state.dashboards = res.dashboards || [];
  const sel = $("#dashboard-select");
  sel.replaceChildren(...state.dashboards.map((d) => {
    const o = document.createElement("option");
    o.value = d.id;
    o.textContent = d.name;
    return o;
  }));
  sel.disabled = state.dashboards.length === 0;
  sel.closest(".switcher").hidden = state.dashboards.length === 0; // nothing to switch to yet
  if (state.current) sel.value = state.current.id;
}

async function openDashboard(id) {
  const seq = ++state.loadSeq;
  let doc;
  try {
    doc = await (take("doc", id) || api.getDashboard(id));
  } catch (e) {
    if (seq !== state.loadSeq) return;
    banner(`Could not load dashboard: ${e.message}`);
    return;
  }
  if (seq !== state.loadSeq) return;
  banner(state.notice);
  state.noticeUntil = state.notice ? Date.now() + 10000 : 0;
  state.notice = "";
  setHash(doc.id, state.range);
  $("#dashboard-select").value = doc.id;
  showDoc(doc);
  show("dashboard");
  showAnnotationsFor(doc.id);
  await fetchData();
  // subscribing makes the server resolve the dashboard for the channel: after the first
  // fetch, so the two do not compete for the server's CPU while the page first renders
  if (seq === state.loadSeq) resubscribe();
  schedulePoll();
}

// The switcher shows the dashboard's current name (renamed here or elsewhere).
function renameInList(doc) {
  const entry = state.dashboards.find((d) => d.id === doc.id);
  if (!entry || entry.name === doc.name) return;
  entry.name = doc.name;
  const opt = [...$("#dashboard-select").options].find((o) => o.value === doc.id);
  if (opt) opt.textContent = doc.name;
}

// `doc` becomes the open dashboard: its heading, its name in the switcher, its grid.
function showDoc(doc) {
  state.current = doc;
  renameInList(doc);
  $("#dash-name").textContent = doc.name;
  $("#dash-desc").textContent = doc.description || "";
  document.title = `${doc.name} · rta`;
  buildGrid(doc);
}

// The dashboard was changed elsewhere (API, CLI, another tab): the data now describes other
// widgets, so fetch the document again and rebuild the grid before showing that data.
async function reloadDoc(data) {
  if (state.reloading) return;
  state.reloading = true;
  const seq = state.loadSeq;
  try {
    const doc = await api.getDashboard(state.current.id);
    if (seq !== state.loadSeq) return;
    showDoc(doc);
    applyData(data);
  } catch (e) {
    if (e instanceof ApiError && e.status === 404) await dashboardGone();
  } finally {
    state.reloading = false;
  }
}

async function dashboardGone() {
  state.notice = `The dashboard “${state.current ? state.current.name : ""}” was deleted.`;
  await refreshList();
}

function buildGrid(doc) {
  const grid = $("#grid");
  const shown = buildWidgetGrid(grid, doc, state.views,
    (view, w) => view.node.querySelector("header").append(widgetTools(w)));
  if (!shown) {
    const p = document.createElement("p");
    p.className = "muted empty-dashboard";
    p.textContent = "This dashboard has no widgets yet: choose Edit, then Add widget.";
    grid.append(p);
  }
}

// Change and remove buttons on a widget, shown while editing.
function widgetTools(widget) {
  const box = document.createElement("span");
  box.className = "widget-tools";
  const tool = (cls, text, verb, action) => {
    const b = document.createElement("button");
    b.type = "button";
    b.className = cls;
    b.textContent = text;
    b.setAttribute("aria-label", `${verb} the widget “${widget.title}”`);
    b.addEventListener("click", action);
    return b;
  };
  box.append(tool("change", "Change", "Change", () => editor.openWidget(widget)),
    tool("remove", "✕", "Remove", () => editor.removeWidget(widget)));
  return box;
}

function setEditing(on) {
  document.body.classList.toggle("editing", on);
  $("#edit-dashboard").setAttribute("aria-pressed", String(on));
  $("#edit-dashboard").textContent = on ? "Done" : "Edit";
}

// A change saved from the editor: show the server's copy at once, then its data (and the
// editor's note about it, such as what the data says about a new widget).
async function onEdited(saved, note = "") {
  const { warnings, ...doc } = saved;
  showDoc(doc);
  if (note) {
    banner(note);
    state.noticeUntil = Date.now() + 10000;
  }
  schedulePoll();
  await fetchData();
}

async function fetchData() {
  const doc = state.current;
  if (!doc) return;
  const seq = state.loadSeq;
  try {
    const data = await (take("data", doc.id, state.range) || api.data(doc.id, state.range, TZ));
    if (seq === state.loadSeq && state.current === doc) applyData(data);
  } catch (e) {
    if (seq !== state.loadSeq) return;
    if (e instanceof ApiError && e.status === 404) {
      await dashboardGone();
      return;
    }
    // keep showing the last data; every widget says why it is stale
    for (const v of state.views.values()) if (!v.kind) v.showError({ code: e.code, message: e.message });
    banner(`Could not refresh: ${e.message}`);
  }
}

function applyData(data) {
  if (!state.current || (data.dashboardId && data.dashboardId !== state.current.id)) return;
  if (data.updatedAt && state.current.updatedAt && data.updatedAt !== state.current.updatedAt) {
    reloadDoc(data);
    return;
  }
  if (Date.now() >= state.noticeUntil) banner("");
  state.lastData = Date.now();
  setStoreEvents(data.storeEvents);
  refreshAnnotationsSoon();
  updateWidgets(state.views, data);
  $("#dash-updated").textContent = updatedText(data);
  $("#dash-updated").dataset.generatedAt = String(data.generatedAt || "");
}

function refreshMs() {
  return Math.max(1000, (state.current && state.current.refreshInterval) || 30000);
}

function schedulePoll() {
  clearTimeout(state.pollTimer);
  const interval = refreshMs();
  state.pollTimer = setTimeout(async () => {
    // live pushes arrive at least every refreshInterval; poll only when they have not
    if (!document.hidden && Date.now() - state.lastData >= interval * 0.9) await fetchData();
    schedulePoll();
  }, interval);
}

async function refreshList() {
  await loadList();
  await route();
}

// -- templates ---------------------------------------------------------------------------------

async function loadTemplates() {
  if (!state.templates) state.templates = (await api.templates()).templates || [];
  return state.templates;
}

// A blank dashboard comes first: no widgets, opened in edit mode (the next step is Add widget).
const BLANK = { name: "", title: "Blank dashboard", description: "No widgets: add your own.",
  widgets: 0, timeRange: "", builtin: true };

function templateCards(container, onPick) {
  container.replaceChildren();
  for (const t of [BLANK, ...(state.templates || [])]) {
    const card = document.createElement("button");
    card.type = "button";
    card.className = "template-card";
    card.dataset.template = t.name;
    const title = document.createElement("strong");
    title.textContent = t.title || t.name;
    const desc = document.createElement("span");
    desc.textContent = t.description || "";
    const meta = document.createElement("small");
    meta.textContent = t === BLANK ? "Start empty"
      : `${t.widgets} widgets · ${rangeLabel(t.timeRange)}${t.builtin ? "" : " · custom"}`;
    card.append(title, desc, meta);
    card.addEventListener("click", () => onPick(t.name, card));
    container.append(card);
  }
}

// `name` "" is the blank dashboard.
async function createFromTemplate(name, customName, beforeOpen) {
  const doc = name
    ? await api.fromTemplate(name, customName || undefined)
    : await api.createDashboard({ name: customName || "New dashboard", widgets: [] });
  if (beforeOpen) beforeOpen(doc);
  state.range = "";
  await loadList();
  setHash(doc.id, "");
  await route();
  if (!name) setEditing(true);
  return doc;
}

async function showWelcome() {
  show("welcome");
  document.title = "rta · dashboards";
  checkStore();
  try {
    await loadTemplates();
  } catch (e) {
    banner(`Could not load templates: ${e.message}`);
    return;
  }
  templateCards($("#welcome-templates"), async (name, card) => {
    card.disabled = true;
    try { await createFromTemplate(name); } catch (e) { banner(`Could not create the dashboard: ${e.message}`); }
    card.disabled = false;
  });
}

async function openTemplateDialog() {
  const dialog = $("#template-dialog");
  const err = $("#template-error");
  err.hidden = true;
  try {
    await loadTemplates();
  } catch (e) {
    banner(`Could not load templates: ${e.message}`);
    return;
  }
  templateCards($("#dialog-templates"), async (name, card) => {
    card.disabled = true;
    try {
      await createFromTemplate(name, $("#template-name").value.trim(), () => {
        $("#template-name").value = "";
        dialog.close();
      });
    } catch (e) {
      err.textContent = e.message;
      err.hidden = false;
    } finally {
      card.disabled = false;
    }
  });
  if (typeof dialog.showModal === "function") dialog.showModal();
  else dialog.setAttribute("open", "");
}

// -- controls ----------------------------------------------------------------------------------

function renderRangePicker() {
  for (const b of document.querySelectorAll("#range-picker button")) {
    b.setAttribute("aria-pressed", String(b.dataset.range === state.range));
  }
}

function setRange(range) {
  state.range = range;
  renderRangePicker();
  if (!state.current) return;
  setHash(state.current.id, state.range);
  resubscribe();
  for (const v of state.views.values()) v.node.classList.add("is-loading");
  fetchData();
}

function wireControls() {
  $("#dashboard-select").addEventListener("change", (e) => {
    setHash(e.target.value, state.range);
    route();
  });
  for (const b of document.querySelectorAll("#range-picker button")) {
    b.addEventListener("click", () => setRange(b.dataset.range));
  }
  // a widget offers its natural range (a weekday x hour heatmap: the last 7 days)
  $("#grid").addEventListener("rta:range", (e) => setRange(e.detail.range));
  $("#new-dashboard").addEventListener("click", openTemplateDialog);
  editor = new DashboardEditor({ getDoc: () => state.current, onSaved: onEdited });
  $("#edit-dashboard").addEventListener("click", () => setEditing(!document.body.classList.contains("editing")));
  $("#add-widget").addEventListener("click", () => editor.openWidget(null));
  $("#dashboard-settings").addEventListener("click", () => editor.openSettings());
  $("#refresh").addEventListener("click", fetchData);
  setAnnotationSource({
    list: (id) => api.get(`/annotations?dashboard=${encodeURIComponent(id)}`),
    create: (body) => api.post("/annotations", body),
  });
  installAnnotationForm({ getDashboardId: () => state.current && state.current.id,
    container: $(".dash-meta"), before: $("#refresh") });
  $("#delete-dashboard").addEventListener("click", async () => {
    const doc = state.current;
    if (!doc || !confirm(`Delete the dashboard “${doc.name}”?`)) return;
    try {
      await api.deleteDashboard(doc.id);
      state.current = null;
      history.replaceState(null, "", "#/");
      await refreshList();
    } catch (e) {
      banner(`Could not delete: ${e.message}`);
    }
  });
  window.addEventListener("hashchange", route);
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden && Date.now() - state.lastData > refreshMs()) fetchData();
  });
  // charts read colours from CSS variables: redraw when the colour scheme flips
  matchMedia("(prefers-color-scheme: dark)").addEventListener("change", () => {
    paletteChanged();
    if (!state.current) return;
    buildGrid(state.current);
    fetchData();
  });
}

window.addEventListener("error", (e) => banner(`Something went wrong: ${e.message}`));
window.addEventListener("unhandledrejection", (e) => banner(`Something went wrong: ${(e.reason && e.reason.message) || e.reason}`));

async function main() {
  // Chart.js is a deferred script ahead of this module, so it has normally run already
  if (!window.Chart) {
    await new Promise((resolve) => window.addEventListener("load", resolve, { once: true }));
  }
  if (window.Chart) {
    applyChartDefaults();
    registerAnnotationPlugin();
  } else {
    banner("Chart.js failed to load; charts cannot be drawn.");
  }
  wireControls();
  renderLiveIndicator();
  live.subscribe("metrics");
  live.start();
  // boot.js's requests are in flight: use the wait to warm Chart.js up (off screen)
  if (window.Chart) warmUpCharts();
  try {
    await loadList();
  } catch (e) {
    show("welcome");
    banner(`Could not reach the rta server: ${e.message}`);
    return;
  }
  await route();
}

main();
