// Editing a dashboard in the page: rename it, add, change and remove widgets.
//
// Every change is one PUT /dashboards/<id> of the changed part; the server validates it
// exactly as it validates the API's callers, and a refusal (an overlapping position, a
// missing metric...) is shown in the dialog next to the field it names. What the stored data
// says (a property no event carries yet) comes back as `warnings`: saved, with a note.

import { api } from "./api.js";

const $ = (sel) => document.querySelector(sel);

// Mirrors rta/core/dashboards/model.py (the server re-checks everything). "formula" is an
// aggregation source with named series and a formula (rta/core/dashboards/formula_source.py).
const COMPATIBLE = {
  "line-chart": ["aggregation", "count", "unique_users", "formula"],
  "bar-chart": ["aggregation", "count", "unique_users", "formula", "top", "funnel"],
  "pie-chart": ["count", "top"],
  gauge: ["aggregation", "count", "unique_users", "formula"],
  counter: ["aggregation", "count", "unique_users", "formula"],
  table: ["aggregation", "count", "unique_users", "formula", "top", "funnel", "retention"],
  heatmap: ["count", "unique_users", "aggregation", "retention"],
  funnel: ["funnel"],
  sankey: ["paths"],
};
const WIDGET_LABELS = {
  "line-chart": "Line chart", "bar-chart": "Bar chart", "pie-chart": "Pie chart", gauge: "Gauge",
  counter: "Counter", table: "Table", heatmap: "Heatmap", funnel: "Funnel", sankey: "Paths (Sankey)",
};
const SOURCE_LABELS = {
  aggregation: "Aggregation of a property", count: "Event count", unique_users: "Unique users",
  top: "Top values of a property", funnel: "Funnel", retention: "Cohort retention",
  paths: "Paths from an event", formula: "Formula over series (A / B ...)",
};
const SERIES_NAMES = "ABCDEFGHIJ"; // at most 10 series (the server's limit)
const AGGREGATIONS = ["count", "sum", "avg", "min", "max", "p50", "p90", "p95", "p99", "unique_users"];
const DEFAULT_SIZE = { counter: [3, 2], gauge: [3, 2], "line-chart": [6, 4], "bar-chart": [6, 4],
  "pie-chart": [4, 4], table: [6, 4], heatmap: [12, 4], funnel: [6, 4], sankey: [12, 5] };
// Keys each source type owns: switching type drops the others, keeps the rest (filters...).
const SOURCE_KEYS = ["eventType", "aggregation", "metric", "groupBy", "property", "n", "steps",
  "entryEvent", "retentionEvent", "limit", "startPoint", "series", "formula", "compare"];
const needsProperty = (agg) => !["count", "unique_users"].includes(agg);

function option(value, text) {
  const o = document.createElement("option");
  o.value = value;
  o.textContent = text;
  return o;
}

export class DashboardEditor {
  // getDoc(): the open dashboard; onSaved(doc, note): the server's copy after a change, and
  // what to tell the user about it ("" for nothing).
  constructor({ getDoc, onSaved }) {
    this.getDoc = getDoc;
    this.onSaved = onSaved;
    this.editing = null; // the widget being changed (null: adding one)
    this.suggested = false;
    const form = $("#widget-form");
    this.form = form;
    form.elements.type.replaceChildren(
      ...Object.keys(COMPATIBLE).map((t) => option(t, WIDGET_LABELS[t])));
    form.elements.aggregation.replaceChildren(...AGGREGATIONS.map((a) => option(a, a)));
    form.elements.type.addEventListener("change", () => this.fillSources());
    form.elements.source.addEventListener("change", () => this.showFields());
    form.elements.aggregation.addEventListener("change", () => this.showFields());
    form.addEventListener("submit", (e) => { e.preventDefault(); this.saveWidget(); });
    $("#add-series").addEventListener("click", () => { this.addSeries(); this.renumberSeries(); });
    $("#settings-form").addEventListener("submit", (e) => { e.preventDefault(); this.saveSettings(); });
    for (const b of document.querySelectorAll("dialog [data-close]")) {
      b.addEventListener("click", () => b.closest("dialog").close());
    }
  }

  // -- widgets ---------------------------------------------------------------------------------

  openWidget(widget = null) {
    this.editing = widget;
    const f = this.form.elements;
    const src = (widget && widget.dataSource) || { type: "count" };
    $("#widget-dialog-title").textContent = widget ? `Change “${widget.title}”` : "Add a widget";
    f.title.value = widget ? widget.title : "";
    f.type.value = widget ? widget.type : "line-chart";
    const isFormula = src.type === "aggregation" && Array.isArray(src.series);
    this.fillSources(isFormula ? "formula" : src.type);
    $("#series-rows").replaceChildren();
    for (const s of isFormula ? src.series : [{}, {}]) this.addSeries(s);
    this.renumberSeries();
    f.formula.value = isFormula ? src.formula || "" : "";
    f.compare.checked = src.compare === "previous_period";
    const types = src.eventType;
    f.eventType.value = Array.isArray(types) ? types.join(", ") : types || "";
    f.aggregation.value = src.aggregation || "count";
    for (const key of ["metric", "groupBy", "property", "entryEvent", "retentionEvent", "startPoint"]) {
      f[key].value = src[key] || "";
    }
    f.n.value = src.n || 10;
    f.steps.value = (Array.isArray(src.steps) ? src.steps : []).map((s) => s.eventType).join(", ");
    f.timeRange.value = src.timeRange || "";
    const [dw, dh] = DEFAULT_SIZE[f.type.value];
    const pos = (widget && widget.position) || {};
    f.w.value = String(pos.w || dw);
    f.h.value = String(pos.h || dh);
    this.showError(null);
    this.showFields();
    this.suggest();
    showModal($("#widget-dialog"));
    f.title.focus();
  }

  fillSources(preferred) {
    const f = this.form.elements;
    const allowed = COMPATIBLE[f.type.value];
    const keep = preferred || f.source.value;
    f.source.replaceChildren(...allowed.map((s) => option(s, SOURCE_LABELS[s])));
    f.source.value = allowed.includes(keep) ? keep : allowed[0];
    this.showFields();
  }

  // Only the inputs the chosen source type reads are shown (and required).
  showFields() {
    const f = this.form.elements;
    const source = f.source.value;
    const needsMetric = needsProperty(f.aggregation.value);
    for (const label of this.form.querySelectorAll("[data-for]")) {
      let shown = label.dataset.for.split(" ").includes(source);
      if (label.hasAttribute("data-metric")) shown = shown && needsMetric;
      if (label.hasAttribute("data-counter")) shown = shown && f.type.value === "counter";
      label.hidden = !shown;
      if (label.tagName === "FIELDSET") { // (a hidden one's inputs are not validated)
        label.disabled = !shown;
        continue;
      }
      const input = label.querySelector("input, select");
      if (input) input.required = shown && label.hasAttribute("data-required");
    }
  }

  // -- series of a formula widget: one row each (name, event type, aggregation, property) --

  addSeries(s = {}) {
    const rows = $("#series-rows");
    if (rows.children.length >= SERIES_NAMES.length) return;
    const row = document.createElement("div");
    row.className = "series-row";
    const name = document.createElement("span");
    name.className = "series-name";
    const type = document.createElement("input");
    type.className = "series-event";
    type.setAttribute("list", "event-types");
    type.autocomplete = "off";
    type.placeholder = "event type";
    type.value = s.eventType || "";
    const agg = document.createElement("select");
    agg.className = "series-aggregation";
    agg.replaceChildren(...AGGREGATIONS.map((a) => option(a, a)));
    agg.value = s.aggregation || "count";
    const prop = document.createElement("input");
    prop.className = "series-property";
    prop.setAttribute("list", "property-names");
    prop.autocomplete = "off";
    prop.placeholder = "numeric property";
    prop.value = s.property || "";
    const remove = document.createElement("button");
    remove.type = "button";
    remove.className = "btn ghost series-remove";
    remove.textContent = "✕";
    remove.addEventListener("click", () => { row.remove(); this.renumberSeries(); });
    const sync = () => { // (kept in the grid, only invisible, so the columns line up)
      prop.classList.toggle("is-unused", !needsProperty(agg.value));
      prop.required = needsProperty(agg.value);
    };
    agg.addEventListener("change", sync);
    sync();
    row.append(name, type, agg, prop, remove);
    rows.append(row);
  }

  // Rows are named A, B, C... in order; the formula keeps what the user wrote.
  renumberSeries() {
    const rows = [...$("#series-rows").children];
    rows.forEach((row, i) => {
      const label = SERIES_NAMES[i];
      row.dataset.series = label;
      row.querySelector(".series-name").textContent = label;
      row.querySelector(".series-event").setAttribute("aria-label", `Series ${label}: event type`);
      row.querySelector(".series-aggregation").setAttribute("aria-label", `Series ${label}: aggregation`);
      row.querySelector(".series-property").setAttribute("aria-label", `Series ${label}: property`);
      row.querySelector(".series-remove").setAttribute("aria-label", `Remove series ${label}`);
      row.querySelector(".series-remove").disabled = rows.length === 1;
    });
    $("#add-series").disabled = rows.length >= SERIES_NAMES.length;
  }

  seriesSpec() {
    return [...$("#series-rows").children].map((row) => {
      const s = { name: row.dataset.series };
      const type = row.querySelector(".series-event").value.trim();
      if (type) s.eventType = type;
      const agg = row.querySelector(".series-aggregation").value;
      if (agg !== "count") s.aggregation = agg;
      if (needsProperty(agg)) s.property = row.querySelector(".series-property").value.trim();
      return s;
    });
  }

  spec() {
    const f = this.form.elements;
    const old = this.editing;
    const source = f.source.value;
    const src = { ...((old && old.dataSource) || {}) };
    for (const key of SOURCE_KEYS) delete src[key];
    src.type = source === "formula" ? "aggregation" : source;
    if (source === "formula") {
      src.series = this.seriesSpec();
      src.formula = f.formula.value.trim();
    }
    if (f.type.value === "counter" && f.compare.checked) src.compare = "previous_period";
    const text = (name) => f[name].value.trim();
    const list = (value) => value.split(",").map((s) => s.trim()).filter(Boolean);
    if (["aggregation", "count", "unique_users", "top"].includes(source) && text("eventType")) {
      const types = list(text("eventType"));
      src.eventType = types.length === 1 ? types[0] : types;
    }
    if (source === "aggregation") {
      src.aggregation = f.aggregation.value;
      if (!["count", "unique_users"].includes(src.aggregation)) src.metric = text("metric");
    }
    if ((source === "aggregation" || source === "count") && text("groupBy")) src.groupBy = text("groupBy");
    if (source === "top") {
      src.property = text("property");
      src.n = Number(f.n.value) || 10;
    }
    if (source === "funnel") src.steps = list(text("steps")).map((eventType) => ({ eventType }));
    if (source === "paths" && text("startPoint")) src.startPoint = text("startPoint");
    if (source === "retention") {
      src.entryEvent = text("entryEvent");
      src.retentionEvent = text("retentionEvent");
    }
    if (f.timeRange.value) src.timeRange = f.timeRange.value;
    else delete src.timeRange;
    const type = f.type.value;
    const out = { ...(old || {}), type, title: text("title") || WIDGET_LABELS[type], dataSource: src };
    const w = Number(f.w.value);
    const h = Number(f.h.value);
    const pos = old && old.position;
    const others = (this.getDoc().widgets || []).filter((x) => !old || x.id !== old.id);
    const there = pos && { x: pos.x, y: pos.y, w, h };
    if (there && there.x + w <= 12 && !others.some((x) => x.position && overlaps(there, x.position))) {
      out.position = there; // same place, new size
    } else {
      out.position = { w, h }; // placed by the server in the first free slot
    }
    return out;
  }

  async saveWidget() {
    const doc = this.getDoc();
    if (!doc || !this.form.reportValidity()) return;
    const spec = this.spec();
    const widgets = this.editing
      ? doc.widgets.map((w) => (w.id === this.editing.id ? spec : w))
      : [...doc.widgets, spec];
    let saved;
    try {
      saved = await api.updateDashboard(doc.id, { widgets });
    } catch (e) {
      this.showError(e);
      return;
    }
    $("#widget-dialog").close();
    // saved either way; what the data says about this widget is a note, never a refusal
    const index = this.editing ? doc.widgets.findIndex((w) => w.id === this.editing.id) : widgets.length - 1;
    const mine = (saved.warnings || []).filter((w) => String(w.field).startsWith(`widgets[${index}].`));
    this.onSaved(saved, mine.length ? `Saved “${spec.title}”. ${mine.map((w) => w.message).join(" · ")}` : "");
  }

  async removeWidget(widget) {
    const doc = this.getDoc();
    if (!doc || !confirm(`Remove the widget “${widget.title}”?`)) return;
    try {
      this.onSaved(await api.updateDashboard(doc.id,
        { widgets: doc.widgets.filter((w) => w.id !== widget.id) }));
    } catch (e) {
      alert(`Could not remove the widget: ${e.message}`);
    }
  }

  // -- the dashboard itself ------------------------------------------------------------------

  openSettings() {
    const doc = this.getDoc();
    if (!doc) return;
    const f = $("#settings-form").elements;
    f.name.value = doc.name || "";
    f.description.value = doc.description || "";
    f.refresh.value = String(Math.round((doc.refreshInterval || 30000) / 1000));
    $("#settings-error").hidden = true;
    showModal($("#settings-dialog"));
    f.name.focus();
  }

  async saveSettings() {
    const doc = this.getDoc();
    const form = $("#settings-form");
    if (!doc || !form.reportValidity()) return;
    const f = form.elements;
    try {
      const saved = await api.updateDashboard(doc.id, { name: f.name.value.trim(), description: f.description.value.trim(),
        refreshInterval: Number(f.refresh.value) * 1000 });
      $("#settings-dialog").close();
      this.onSaved(saved);
    } catch (e) {
      $("#settings-error").textContent = e.message;
      $("#settings-error").hidden = false;
    }
  }

  // -- errors and suggestions ----------------------------------------------------------------

  showError(error) {
    const box = $("#widget-error");
    for (const el of this.form.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
    if (!error) { box.hidden = true; return; }
    const detail = (error.details || [])[0] || {};
    // "widgets[3].dataSource.metric" -> the "metric" input; anything in a funnel step
    // ("...steps[1].eventType") -> the steps input
    const field = String(detail.field || "");
    const name = field.includes(".steps") ? "steps" : field.split(".").pop();
    // "...dataSource.series[1].eventType" -> series B's input for that key
    const inSeries = field.match(/\.series\[(\d+)\](?:\.(\w+))?/);
    const row = inSeries && $("#series-rows").children[Number(inSeries[1])];
    const cls = { aggregation: ".series-aggregation", property: ".series-property" }[inSeries && inSeries[2]];
    const input = row ? row.querySelector(cls || ".series-event") : this.form.elements[name];
    let text = error.message;
    // (a message that lists the known names already must not list them twice)
    if (detail.known && detail.known.length && !text.includes("known:")) {
      text += ` (known: ${detail.known.slice(0, 12).join(", ")})`;
    }
    box.textContent = text;
    box.hidden = false;
    if (input && input.focus) {
      input.setAttribute("aria-invalid", "true");
      input.focus();
    }
  }

  // Event types and property names seen recently, offered as the inputs' suggestions.
  async suggest() {
    if (this.suggested) return;
    this.suggested = true;
    try {
      const [types, recent] = await Promise.all([
        api.get("/analytics/count?groupBy=type&limit=100&timeRange=last_30d"),
        api.get("/events?limit=500"),
      ]);
      fillList("#event-types", (types.groups || []).map((g) => g.key));
      const keys = new Set();
      for (const e of recent.events || []) for (const k of Object.keys(e.properties || {})) keys.add(k);
      fillList("#property-names", [...keys].sort());
    } catch {
      this.suggested = false; // try again next time; the inputs work without suggestions
    }
  }
}

function fillList(sel, values) {
  $(sel).replaceChildren(...values.filter((v) => v !== null && v !== undefined).map((v) => option(String(v), "")));
}

function overlaps(a, b) {
  return a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;
}

function showModal(dialog) {
  if (typeof dialog.showModal === "function") dialog.showModal();
  else dialog.setAttribute("open", "");
}
