// The shared dashboard page (/share/<token>[?embed=1]): one dashboard, read-only, with live
// updates, for someone who has the link and no rta token.
//
// Every request carries the link's token (Authorization header; `?token=` on the WebSocket,
// which browsers cannot give headers). The server holds that token to this dashboard's
// definition, widget data, annotations and `dashboard:<id>` channel, so this page offers
// nothing else: no switcher, no editing, no other dashboard. A revoked or expired link ends
// the live connection and every request with 401: the page then says so and stops.

import { LiveConnection, dashboardChannel } from "./live.js";
import { applyChartDefaults, buildWidgetGrid, updateWidgets, warmUpCharts } from "./widgets.js";
import { updatedText } from "./format.js";
import { refreshAnnotationsSoon, registerAnnotationPlugin, setAnnotationSource,
  showAnnotationsFor } from "./annotations.js";

const $ = (sel) => document.querySelector(sel);
const TZ = -new Date().getTimezoneOffset();
const TOKEN = decodeURIComponent(location.pathname.split("/").filter(Boolean).pop() || "");
const DASHBOARD = (document.querySelector('meta[name="rta-dashboard"]') || {}).content || "";
const EMBED = new URLSearchParams(location.search).get("embed") === "1";

const state = { doc: null, views: new Map(), range: "", channel: null, lastData: 0,
  pollTimer: null, ended: false, reloading: false };

class LinkError extends Error {
  constructor(status, body) {
    const err = (body && body.error) || {};
    super(err.message || `HTTP ${status}`);
    this.status = status;
    this.code = err.code || "http_error";
  }
}

async function get(path) {
  let res;
  try {
    res = await fetch(path, { headers: { Accept: "application/json", Authorization: `Bearer ${TOKEN}` },
      credentials: "omit", referrerPolicy: "no-referrer" });
  } catch {
    throw new LinkError(0, { error: { message: "the server cannot be reached" } });
  }
  const text = await res.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  if (!res.ok) {
    const err = new LinkError(res.status, data);
    if (res.status === 401) linkEnded();
    throw err;
  }
  return data;
}

class ShareConnection extends LiveConnection {
  url() {
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    return `${proto}//${location.host}/ws?token=${encodeURIComponent(TOKEN)}`;
  }
}

const live = new ShareConnection({ onMessage, onState });

function banner(text) {
  const b = $("#banner");
  b.textContent = text || "";
  b.hidden = !text;
}

function onState(s) {
  const box = $("#live");
  box.dataset.state = state.ended ? "offline" : s;
  $("#live-label").textContent = state.ended ? "Link ended"
    : { live: "Live", connecting: "Connecting…", offline: "Offline · polling" }[s] || s;
  if (s === "live" && state.doc && state.lastData) fetchData();
}

// The link was revoked or has expired: stop asking, and say so.
function linkEnded() {
  if (state.ended) return;
  state.ended = true;
  live.closed = true;
  clearTimeout(live.timer);
  if (live.ws) live.ws.close();
  clearTimeout(state.pollTimer);
  document.body.dataset.linkState = "ended";
  banner("This share link was revoked or has expired; ask its owner for a new one.");
  onState("offline");
}

function onMessage(msg) {
  if (msg.type === "dashboard" && msg.channel === state.channel && msg.data) {
    applyData(msg.data);
  } else if (msg.type === "error") {
    if (msg.code === "unauthorized") linkEnded();
    else if (msg.channel && msg.channel === state.channel && msg.code === "not_found") {
      banner("This dashboard was deleted.");
    }
  }
}

function channel() {
  return dashboardChannel(DASHBOARD, state.range, TZ);
}

function resubscribe() {
  const next = channel();
  if (next === state.channel) return;
  if (state.channel) live.unsubscribe(state.channel);
  state.channel = next;
  live.subscribe(next);
}

function showDoc(doc) {
  state.doc = doc;
  $("#dash-name").textContent = doc.name;
  $("#dash-desc").textContent = doc.description || "";
  document.title = `${doc.name} · rta`;
  buildWidgetGrid($("#grid"), doc, state.views);
}

async function reloadDoc(data) {
  if (state.reloading) return;
  state.reloading = true;
  try {
    showDoc(await get(`/dashboards/${encodeURIComponent(DASHBOARD)}`));
    applyData(data);
  } catch { /* the next push or poll tries again */ } finally {
    state.reloading = false;
  }
}

function applyData(data) {
  if (!state.doc || state.ended) return;
  if (data.updatedAt && state.doc.updatedAt && data.updatedAt !== state.doc.updatedAt) {
    reloadDoc(data);
    return;
  }
  state.lastData = Date.now();
  refreshAnnotationsSoon();
  updateWidgets(state.views, data);
  $("#dash-updated").textContent = updatedText(data);
  $("#dash-updated").dataset.generatedAt = String(data.generatedAt || "");
}

async function fetchData() {
  if (state.ended) return;
  const q = new URLSearchParams();
  if (state.range) q.set("timeRange", state.range);
  q.set("tz", String(TZ));
  try {
    applyData(await get(`/dashboards/${encodeURIComponent(DASHBOARD)}/data?${q}`));
  } catch (e) {
    if (!state.ended) banner(`Could not refresh: ${e.message}`);
  }
}

function refreshMs() {
  return Math.max(1000, (state.doc && state.doc.refreshInterval) || 30000);
}

function schedulePoll() {
  clearTimeout(state.pollTimer);
  if (state.ended) return;
  const interval = refreshMs();
  state.pollTimer = setTimeout(async () => {
    if (!document.hidden && Date.now() - state.lastData >= interval * 0.9) await fetchData();
    schedulePoll();
  }, interval);
}

function setRange(range) {
  state.range = range;
  for (const b of document.querySelectorAll("#range-picker button")) {
    b.setAttribute("aria-pressed", String(b.dataset.range === range));
  }
  if (!state.doc) return;
  resubscribe();
  fetchData();
}

async function main() {
  if (EMBED) document.body.classList.add("embed");
  if (!window.Chart) {
    await new Promise((resolve) => window.addEventListener("load", resolve, { once: true }));
  }
  if (window.Chart) {
    applyChartDefaults();
    registerAnnotationPlugin();
    warmUpCharts();
  }
  for (const b of document.querySelectorAll("#range-picker button")) {
    b.addEventListener("click", () => setRange(b.dataset.range));
  }
  setRange("");
  setAnnotationSource({
    list: (id) => get(`/annotations?dashboard=${encodeURIComponent(id)}`),
    create: () => Promise.reject(new Error("a shared dashboard is read-only")),
  });
  let doc;
  try {
    doc = await get(`/dashboards/${encodeURIComponent(DASHBOARD)}`);
  } catch (e) {
    $("#loading").hidden = true;
    if (!state.ended) banner(`Could not load the dashboard: ${e.message}`);
    return;
  }
  showDoc(doc);
  $("#loading").hidden = true;
  $("#dashboard").hidden = false;
  showAnnotationsFor(doc.id);
  await fetchData();
  resubscribe();
  live.start();
  schedulePoll();
}

main();
