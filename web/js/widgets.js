// Widget views: one per dashboard widget, drawing the server's resolved "view" data.
//
// Data kinds (see rta/core/dashboards/widgets.py): value, series, categories, table, heatmap, funnel,
// sankey (web/js/sankey.js).
// Charts are Chart.js (vendored UMD build, global `Chart`); the heatmap is drawn on a canvas.
// A widget whose data failed shows its error in place; the rest of the page keeps working.

import { changeText, formatNumber, formatShort, rangeLabel, timeLabels } from "./format.js";
import { drawSankey } from "./sankey.js";

function css(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}

let cachedPalette = null;

// The theme's colours, read once: each read forces a style recalculation, and widgets drawn
// one after another would pay it per widget while the page first renders.
export function palette() {
  if (!cachedPalette) cachedPalette = readPalette();
  return cachedPalette;
}

// Forget the colours (the colour scheme changed); the next draw reads them again.
export function paletteChanged() {
  cachedPalette = null;
}

function readPalette() {
  const series = [];
  for (let i = 1; i <= 12; i++) series.push(css(`--series-${i}`));
  return {
    series, text: css("--text"), muted: css("--muted"), grid: css("--grid-line"),
    surface: css("--surface"), border: css("--border"), good: css("--good"), warn: css("--warn"),
    bad: css("--bad"), heatLo: css("--heat-lo"), heatHi: css("--heat-hi"), accent: css("--accent"),
  };
}

function alpha(color, a) {
  if (color.startsWith("#") && color.length === 7) {
    const n = parseInt(color.slice(1), 16);
    return `rgba(${n >> 16}, ${(n >> 8) & 255}, ${n & 255}, ${a})`;
  }
  return color;
}

function parseColor(c) {
  const n = parseInt(c.replace("#", ""), 16);
  return [n >> 16, (n >> 8) & 255, n & 255];
}

function mix(lo, hi, t) {
  const a = parseColor(lo), b = parseColor(hi);
  return `rgb(${a.map((v, i) => Math.round(v + (b[i] - v) * t)).join(",")})`;
}


function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;
  return node;
}

// "no 'pageview' events carry property 'page'; known: a, b, ..." -> the reason plus the
// first few known names (the full message is the note's tooltip).
function warningText(message) {
  const [reason, known] = String(message || "").split("; known: ");
  if (!known) return `No data: ${reason}`;
  const names = known.split(", ");
  const more = names.length > 6 ? ", …" : "";
  return `No data: ${reason} (it has ${names.slice(0, 6).join(", ")}${more})`;
}

function describeSource(src) {
  if (!src) return "";
  const what = Array.isArray(src.eventType) ? src.eventType.join(", ") : src.eventType || "all events";
  switch (src.type) {
    case "aggregation":
      if (Array.isArray(src.series)) {
        const names = src.series.map((x) => `${x.name} = ${x.aggregation && x.aggregation !== "count" ? `${x.aggregation}(${x.property || ""}) ` : ""}${x.eventType || "all events"}`);
        return `${src.formula || "series"} · ${names.join(", ")}`;
      }
      return src.metric ? `${src.aggregation} of ${src.metric} · ${what}` : `${src.aggregation || "count"} · ${what}`;
    case "count": return src.groupBy ? `${what} by ${src.groupBy}` : what;
    case "unique_users": return `unique users · ${what}`;
    case "top": return `top ${src.property} · ${what}`;
    case "funnel": return `${(src.steps || []).length}-step funnel`;
    case "retention": return `${src.entryEvent} → ${src.retentionEvent}`;
    case "paths": return src.endPoint ? `paths to ${src.endPoint}` : src.startPoint ? `paths from ${src.startPoint}` : "paths";
    case "web": return src.measure === "realtime" ? "visitors in the last 5 minutes" : `web · ${(src.measure || "visitors").replaceAll("_", " ")}`;
    case "web_breakdown": return `web · top ${src.dimension}`;
    default: return src.type || "";
  }
}

export class WidgetView {
  constructor(spec) {
    this.spec = spec;
    this.chart = null;
    this.kind = null;
    this.heat = null;
    const p = spec.position || { x: 0, y: 0, w: 6, h: 4 };
    const node = el("article", `widget widget--${spec.type} is-loading`);
    node.dataset.widgetId = spec.id;
    node.dataset.type = spec.type;
    node.style.setProperty("--x", p.x);
    node.style.setProperty("--y", p.y);
    node.style.setProperty("--w", p.w);
    node.style.setProperty("--h", p.h);
    node.style.setProperty("--w-md", p.w <= 3 ? 3 : 6);
    node.style.setProperty("--w-sm", p.w <= 3 ? 1 : 2);
    const tone = (spec.config || {}).tone;
    if (tone) node.classList.add(`tone-${tone}`);
    const head = el("header");
    const title = el("h2", null, spec.title || spec.type);
    title.title = spec.title || "";
    this.meta = el("span", "meta", describeSource(spec.dataSource));
    head.append(title, this.meta);
    this.body = el("div", "body");
    node.append(head, this.body);
    this.node = node;
  }

  destroy() {
    if (this.chart) this.chart.destroy();
    if (this.heat) this.heat.observer.disconnect();
    this.chart = null;
    this.heat = null;
  }

  reset() {
    this.destroy();
    this.body.replaceChildren();
    this.kind = null;
  }

  update(result) {
    this.node.classList.remove("is-loading");
    if (!result) return;
    if (result.error) {
      this.showError(result.error);
      return;
    }
    this.window = result.window;
    const data = result.data;
    if (!data) { this.showError({ message: "no data" }); return; }
    try {
      this.draw(data);
      this.node.dataset.state = "ok";
      this.showNote(data);
      this.showWarnings(result.warnings);
    } catch (e) {
      this.showError({ code: "render_error", message: String((e && e.message) || e) });
    }
  }

  // A view's `note` (a weekday x hour heatmap over less than a week) under the title, with
  // its `suggestedRange` as one click: it asks the page (an `rta:range` event) for that range.
  showNote(data) {
    let note = this.node.querySelector(":scope > .widget-note");
    if (!data || !data.note) {
      if (note) note.remove();
      return;
    }
    if (!note) {
      note = el("p", "widget-note");
      note.setAttribute("role", "note");
      this.body.before(note);
    }
    note.replaceChildren(el("span", null, data.note));
    const win = this.window || {};
    if (data.suggestedRange && win.timeRange !== data.suggestedRange) {
      const b = el("button", "link", `Show ${rangeLabel(data.suggestedRange).toLowerCase()}`);
      b.type = "button";
      b.dataset.range = data.suggestedRange;
      b.addEventListener("click", () => this.node.dispatchEvent(new CustomEvent("rta:range", {
        bubbles: true, detail: { range: data.suggestedRange } })));
      note.append(" ", b);
    }
  }

  showError(error) {
    this.showNote(null);
    this.reset();
    this.kind = "error";
    this.node.dataset.state = "error";
    const box = el("div", "widget-error");
    box.setAttribute("role", "alert");
    box.append(el("strong", null, "This widget could not load"));
    box.append(el("span", null, error.message || "unknown error"));
    const fields = (error.details || []).map((d) => d && d.field).filter(Boolean);
    if (error.code || fields.length) {
      box.append(el("code", null, [error.code, ...fields].filter(Boolean).join(" · ")));
    }
    this.body.append(box);
  }

  draw(data) {
    const kind = `${this.spec.type}:${data.kind}`;
    if (kind !== this.kind) {
      this.reset();
      this.kind = kind;
    }
    switch (data.kind) {
      case "value":
        return this.spec.type === "gauge" ? this.drawGauge(data) : this.drawCounter(data);
      case "series": return this.drawSeries(data);
      case "categories": return this.drawCategories(data);
      case "table": return this.drawTable(data);
      case "heatmap": return this.drawHeatmap(data);
      case "funnel": return this.drawFunnel(data);
      case "sankey": return drawSankey(this, data);
      default: throw new Error(`unknown data kind ${data.kind}`);
    }
  }

  chartBox() {
    let box = this.body.querySelector(".chart-box");
    if (!box) {
      box = el("div", "chart-box");
      const canvas = el("canvas");
      canvas.setAttribute("role", "img");
      canvas.setAttribute("aria-label", this.spec.title || this.spec.type);
      box.append(canvas);
      this.body.append(box);
    }
    return box.querySelector("canvas");
  }

  setChart(config, summary = null) {
    // a canvas is opaque to screen readers: its label carries the numbers
    const label = `${this.spec.title || this.spec.type}. ${summary ?? summarise(config.data)}`;
    this.chartBox().setAttribute("aria-label", label);
    if (this.chart && this.chart.config.type === config.type) {
      this.chart.data = config.data;
      this.chart.options = config.options;
      this.chart.update("none");
      return;
    }
    if (this.chart) this.chart.destroy();
    const canvas = this.chartBox();
    // no entry animation: its frames would compete with the rest of the first render; later
    // updates go through chart.update("none") above
    config.options.animation = false;
    this.chart = new Chart(canvas, config);
  }

  // Why a widget has nothing to show (a property no stored event carries), in its empty
  // state: the one its draw set, else one covering a meaningless value (a counter's $0.00).
  showWarnings(warnings) {
    const list = warnings || [];
    this.node.classList.toggle("has-warning", list.length > 0);
    for (const old of this.body.querySelectorAll(".empty-note .why, .empty-note.for-warning")) old.remove();
    const drawn = this.body.querySelector(".empty-note");
    if (drawn && drawn.dataset.text) drawn.firstChild.textContent = drawn.dataset.text;
    if (!list.length) return;
    let empty = drawn;
    if (!empty) {
      empty = el("div", "empty-note for-warning", "Nothing to show");
      this.body.append(empty);
    } else {
      // not "No events in this range": there are events, just not with that property
      drawn.dataset.text = drawn.firstChild.textContent;
      drawn.firstChild.textContent = "Nothing to show";
    }
    const why = el("span", "why", list.map((w) => warningText(w.message)).join(" · "));
    why.title = list.map((w) => w.message).join("\n");
    empty.append(why);
  }

  setEmpty(empty, text = "No events in this range") {
    let note = this.body.querySelector(".empty-note");
    if (empty && !note) {
      note = el("div", "empty-note", text);
      this.body.append(note);
    } else if (!empty && note) note.remove();
  }

  baseOptions(pal, extra = {}) {
    return {
      responsive: true, maintainAspectRatio: false,
      interaction: { mode: "index", intersect: false },
      plugins: {
        legend: { display: false, labels: { color: pal.text, boxWidth: 10, boxHeight: 10 } },
        tooltip: { callbacks: { label: (ctx) => `${ctx.dataset.label || ctx.label}: ${formatNumber(ctx.parsed.y ?? ctx.parsed, this.spec.config)}` } },
      },
      ...extra,
    };
  }

  // `integer`: every value is a whole number (counts), so no tick falls between them.
  axes(pal, horizontal = false, integer = false) {
    const valueAxis = {
      beginAtZero: true, grid: { color: pal.grid }, border: { display: false },
      ticks: { color: pal.muted, callback: (v) => formatShort(v), maxTicksLimit: 6,
        ...(integer ? { precision: 0 } : {}) },
    };
    const catAxis = {
      grid: { display: false }, border: { color: pal.border },
      ticks: { color: pal.muted, maxRotation: 0, autoSkip: true, autoSkipPadding: 12 },
    };
    return horizontal ? { x: valueAxis, y: catAxis } : { x: catAxis, y: valueAxis };
  }

  // -- kinds ---------------------------------------------------------------------------------

  drawCounter(data) {
    let box = this.body.querySelector(".counter");
    if (!box) {
      box = el("div", "counter");
      box.append(el("div", "counter-value"), el("div", "counter-sub"));
      this.body.append(box);
    }
    this.drawChange(box, data.comparison); // (under the value, before the range label)
    const value = box.querySelector(".counter-value");
    value.textContent = formatNumber(data.value, this.spec.config);
    value.dataset.value = data.value === null ? "" : String(data.value);
    const win = this.window || {};
    const sub = box.querySelector(".counter-sub");
    sub.textContent = win.timeRange ? rangeLabel(win.timeRange) : "";
    // a web figure: its change against the previous period of the same length
    if (data.change !== undefined && data.change !== null) {
      const better = data.lowerIsBetter ? data.change < 0 : data.change > 0;
      const change = el("span", `counter-change ${data.change === 0 ? "" : better ? "is-up" : "is-down"}`,
        `${data.change > 0 ? "▲" : data.change < 0 ? "▼" : ""} ${Math.abs(data.change)}${data.changeUnit === "pt" ? " pt" : "%"}`);
      change.title = `previous period: ${data.previous ?? "–"}`;
      sub.prepend(change, " ");
    }
  }

  // The previous period's change under a counter (`compare: "previous_period"`).
  drawChange(box, comparison) {
    let line = box.querySelector(".counter-compare");
    const c = changeText(comparison);
    if (!c) {
      if (line) line.remove();
      return;
    }
    if (!line) {
      line = el("div", "counter-compare");
      box.querySelector(".counter-value").after(line);
    }
    line.className = `counter-compare ${c.direction}${c.significant === false ? " insignificant" : ""}`;
    line.dataset.relative = comparison.relativeChange ?? "";
    line.dataset.significant = c.significant === null ? "" : String(c.significant);
    const before = `vs ${formatNumber(comparison.value, this.spec.config)} the period before`;
    line.replaceChildren(el("strong", null, c.change), document.createTextNode(` ${before}`));
    if (c.verdict) line.append(el("span", "p", ` \u00b7 ${c.verdict}`));
    line.title = c.verdict ? `${c.change} ${before} (${comparison.significance.test}: ${c.verdict})`
      : `${c.change} ${before} (no significance test for this measure)`;
  }

  drawGauge(data) {
    const pal = palette();
    const cfg = this.spec.config || {};
    const min = cfg.min ?? 0;
    let max = cfg.max ?? niceCeiling(Math.max(1, data.value || 0));
    const v = data.value ?? 0;
    if (v > max) max = v;
    const t = cfg.thresholds || [];
    let color = pal.good;
    if (t.length) {
      const higherIsBetter = !!cfg.higherIsBetter;
      const level = v >= (t[1] ?? Infinity) ? 2 : v >= t[0] ? 1 : 0;
      color = [pal.good, pal.warn, pal.bad][higherIsBetter ? 2 - level : level];
    } else color = pal.series[0];
    const filled = Math.max(0, Math.min(v, max) - min);
    const rest = Math.max(0, max - min - filled);
    this.setChart({
      type: "doughnut",
      data: { labels: ["value", "rest"], datasets: [{ data: [filled, rest || (filled ? 0 : 1)],
        backgroundColor: [color, pal.grid], borderWidth: 0 }] },
      options: { responsive: true, maintainAspectRatio: false, rotation: -90, circumference: 180,
        cutout: "72%", layout: { padding: { bottom: 38 } },
        plugins: { legend: { display: false }, tooltip: { enabled: false } } },
    }, `${formatNumber(data.value, cfg)} of ${formatNumber(max, cfg)}`);
    let label = this.body.querySelector(".gauge-label");
    if (!label) {
      label = el("div", "gauge-label");
      this.body.append(label);
    }
    label.replaceChildren(document.createTextNode(formatNumber(data.value, cfg)),
      el("small", null, `of ${formatNumber(max, { ...cfg, unit: cfg.unit })}`));
    label.dataset.value = data.value === null ? "" : String(data.value);
  }

  drawSeries(data) {
    const pal = palette();
    const cfg = this.spec.config || {};
    const isBar = this.spec.type === "bar-chart";
    const labels = timeLabels(data.timestamps, data.interval);
    const datasets = data.series.map((s, i) => {
      const color = pal.series[i % pal.series.length];
      return {
        label: s.name, data: s.values, borderColor: color,
        backgroundColor: isBar ? alpha(color, 0.85) : alpha(color, cfg.fill ? 0.14 : 0),
        fill: !isBar && !!cfg.fill && data.series.length === 1, tension: 0.3, borderWidth: 2,
        // a bucket without data (null) is a gap, not a line drawn through it
        pointRadius: 0, pointHoverRadius: 4, borderRadius: isBar ? 3 : 0, spanGaps: false,
      };
    });
    const options = this.baseOptions(pal, { scales: this.axes(pal, false, allIntegers(data.series)) });
    options.plugins.legend.display = data.series.length > 1;
    options.scales.x.grid.display = !!cfg.showGrid && !isBar;
    options.scales.x.grid.color = pal.grid;
    // the buckets on the x axis, for the annotation markers (annotations.js)
    options.plugins.rtaAnnotations = { timestamps: data.timestamps, interval: data.interval };
    this.setChart({ type: isBar ? "bar" : "line", data: { labels, datasets }, options });
    const total = data.series.reduce((n, s) => n + s.values.filter((v) => v).length, 0);
    this.setEmpty(total === 0);
  }

  drawCategories(data) {
    const pal = palette();
    const cfg = this.spec.config || {};
    const labels = data.labels;
    const values = data.values;
    const colors = labels.map((_, i) => pal.series[i % pal.series.length]);
    if (this.spec.type === "pie-chart") {
      this.setChart({
        type: cfg.doughnut === false ? "pie" : "doughnut",
        data: { labels, datasets: [{ data: values, backgroundColor: colors, borderColor: pal.surface, borderWidth: 2 }] },
        options: {
          responsive: true, maintainAspectRatio: false, cutout: cfg.doughnut === false ? 0 : "58%",
          plugins: {
            legend: { display: true, position: "right", labels: { color: pal.text, boxWidth: 10, boxHeight: 10, padding: 8 } },
            tooltip: { callbacks: { label: (ctx) => {
              const total = values.reduce((a, b) => a + b, 0) || 1;
              return `${ctx.label}: ${formatNumber(ctx.parsed)} (${(100 * ctx.parsed / total).toFixed(1)}%)`;
            } } },
          },
        },
      });
    } else {
      const horizontal = !!cfg.horizontal;
      const options = this.baseOptions(pal, { indexAxis: horizontal ? "y" : "x", scales: this.axes(pal, horizontal, allIntegers([{ values }])) });
      options.plugins.tooltip.callbacks.label = (ctx) => formatNumber(horizontal ? ctx.parsed.x : ctx.parsed.y, cfg);
      this.setChart({
        type: "bar",
        data: { labels, datasets: [{ label: this.spec.title, data: values, backgroundColor: horizontal ? pal.series[0] : colors, borderRadius: 4, maxBarThickness: 36 }] },
        options,
      });
    }
    this.setEmpty(!values.some((v) => v));
  }

  drawTable(data) {
    let wrap = this.body.querySelector(".table-wrap");
    if (!wrap) {
      wrap = el("div", "table-wrap");
      this.body.append(wrap);
    }
    const table = el("table", "data");
    const thead = el("thead");
    const hr = el("tr");
    const numeric = data.columns.map((_, j) => data.rows.some((r) => typeof r[j] === "number") && j !== data.timeColumn);
    data.columns.forEach((c, j) => {
      const th = el("th", numeric[j] ? "num" : "", c);
      th.scope = "col";
      hr.append(th);
    });
    thead.append(hr);
    const tbody = el("tbody");
    // the first numeric column gets an in-cell bar so the table reads at a glance
    const barCol = numeric.indexOf(true);
    const barMax = barCol >= 0 ? Math.max(1, ...data.rows.map((r) => Number(r[barCol]) || 0)) : 1;
    for (const row of data.rows) {
      const tr = el("tr");
      row.forEach((cell, j) => {
        const td = el("td", numeric[j] ? "num" : "");
        let text;
        if (j === data.timeColumn) text = new Date(cell).toLocaleString();
        else if (typeof cell === "number") {
          // percentage columns ("Share %", retention "P1"...) keep one decimal throughout
          const pct = /%$/.test(data.columns[j]) || data.unit === "%";
          text = pct ? formatNumber(cell, { decimals: 1, minDecimals: 1 }) : formatNumber(cell);
        }
        else text = cell === null || cell === undefined ? "–" : String(cell);
        if (j === barCol && data.columns.length > 1) {
          td.className = "num bar-cell";
          const bar = el("i");
          bar.style.width = `${(100 * (Number(cell) || 0)) / barMax}%`;
          td.append(bar, el("span", null, text));
        } else td.textContent = text;
        td.title = text;
        tr.append(td);
      });
      tbody.append(tr);
    }
    table.append(thead, tbody);
    wrap.replaceChildren(table);
    this.setEmpty(data.rows.length === 0, "No rows in this range");
  }

  drawHeatmap(data) {
    if (!this.heat) {
      const canvas = el("canvas", "heatmap");
      canvas.setAttribute("role", "img");
      canvas.setAttribute("aria-label", this.spec.title || "heatmap");
      const tip = el("div", "heat-tip");
      tip.hidden = true;
      this.body.append(canvas, tip);
      const observer = new ResizeObserver(() => this.paintHeatmap());
      observer.observe(this.body);
      this.heat = { canvas, tip, observer, data, cells: null };
      canvas.addEventListener("mousemove", (e) => this.heatHover(e));
      canvas.addEventListener("mouseleave", () => { tip.hidden = true; });
    }
    this.heat.data = data;
    this.heat.canvas.setAttribute("aria-label", `${this.spec.title || "heatmap"}. ${heatSummary(data)}`);
    this.paintHeatmap();
    const any = data.values.some((row) => row.some((v) => v));
    this.setEmpty(!any);
  }

  paintHeatmap() {
    const h = this.heat;
    if (!h) return;
    const { canvas, data } = h;
    const pal = palette();
    const rect = this.body.getBoundingClientRect();
    const W = Math.max(50, rect.width), H = Math.max(40, rect.height);
    const dpr = window.devicePixelRatio || 1;
    canvas.width = Math.round(W * dpr);
    canvas.height = Math.round(H * dpr);
    canvas.style.width = `${W}px`;
    canvas.style.height = `${H}px`;
    const ctx = canvas.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, W, H);
    const rows = data.yLabels.length, cols = data.xLabels.length;
    if (!rows || !cols) return;
    ctx.font = "11px system-ui, sans-serif";
    const left = Math.min(90, Math.max(...data.yLabels.map((l) => ctx.measureText(l).width)) + 10);
    const bottom = 16, top = 2;
    const cw = (W - left) / cols, ch = (H - bottom - top) / rows;
    let max = 0;
    for (const r of data.values) for (const v of r) if (v !== null && v > max) max = v;
    const pad = Math.min(2, cw * 0.08);
    h.cells = { left, top, cw, ch, rows, cols };
    for (let y = 0; y < rows; y++) {
      for (let x = 0; x < cols; x++) {
        const v = (data.values[y] || [])[x];
        const t = v === null || v === undefined || max === 0 ? 0 : Math.sqrt(v / max);
        ctx.fillStyle = v === null || v === undefined ? pal.grid : mix(pal.heatLo, pal.heatHi, t);
        const px = left + x * cw + pad / 2, py = top + y * ch + pad / 2;
        const rw = cw - pad, rh = ch - pad;
        ctx.beginPath();
        if (ctx.roundRect) ctx.roundRect(px, py, rw, rh, Math.min(3, rw / 4, rh / 4));
        else ctx.rect(px, py, rw, rh);
        ctx.fill();
        if (data.unit === "%" && v !== null && v !== undefined && cw > 34 && ch > 14) {
          ctx.fillStyle = t > 0.55 ? "#fff" : pal.text;
          ctx.textAlign = "center";
          ctx.textBaseline = "middle";
          ctx.fillText(`${Math.round(v)}%`, px + rw / 2, py + rh / 2);
        }
      }
    }
    ctx.fillStyle = pal.muted;
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    for (let y = 0; y < rows; y++) ctx.fillText(data.yLabels[y], left - 6, top + y * ch + ch / 2);
    ctx.textAlign = "center";
    ctx.textBaseline = "top";
    const every = Math.max(1, Math.ceil(30 / cw));
    for (let x = 0; x < cols; x += every) ctx.fillText(data.xLabels[x], left + x * cw + cw / 2, H - bottom + 3);
  }

  heatHover(e) {
    const h = this.heat;
    if (!h || !h.cells) return;
    const r = h.canvas.getBoundingClientRect();
    const mx = e.clientX - r.left, my = e.clientY - r.top;
    const { left, top, cw, ch, rows, cols } = h.cells;
    const x = Math.floor((mx - left) / cw), y = Math.floor((my - top) / ch);
    if (x < 0 || y < 0 || x >= cols || y >= rows) { h.tip.hidden = true; return; }
    const v = (h.data.values[y] || [])[x];
    const unit = h.data.unit === "%" ? "%" : "";
    const what = h.data.unit === "%" ? `${h.data.yLabels[y]} · ${h.data.xLabels[x]}` : `${h.data.yLabels[y]} ${h.data.xLabels[x]}:00`;
    h.tip.textContent = `${what} — ${v === null || v === undefined ? "–" : formatNumber(v) + unit}`;
    h.tip.style.left = `${mx}px`;
    h.tip.style.top = `${my}px`;
    h.tip.hidden = false;
  }

  drawFunnel(data) {
    const pal = palette();
    const steps = data.steps || [];
    const first = steps.length ? steps[0].count || 0 : 0;
    const labels = steps.map((s) => s.name);
    // centred floating bars make the funnel shape: [-count/2, count/2]
    const bars = steps.map((s) => [-(s.count || 0) / 2, (s.count || 0) / 2]);
    const colors = steps.map((_, i) => alpha(pal.series[0], 1 - (0.55 * i) / Math.max(1, steps.length - 1)));
    this.funnel = { steps, first };
    const view = this;
    const labelPlugin = {
      id: "funnelLabels",
      afterDatasetsDraw(chart) {
        const { steps, first } = view.funnel;
        const { ctx } = chart;
        const meta = chart.getDatasetMeta(0);
        const drawn = []; // where each label went, for tests: {text, left, right} in CSS px
        ctx.save();
        ctx.font = "600 12px system-ui, sans-serif";
        ctx.textBaseline = "middle";
        ctx.textAlign = "left";
        const area = chart.chartArea;
        const mid = area.left + (area.right - area.left) / 2;
        meta.data.forEach((bar, i) => {
          const s = steps[i];
          const pct = i === 0 ? "100%" : `${(first ? (100 * s.count) / first : 0).toFixed(1)}%`;
          // the whole label or, where even that cannot fit (a very narrow widget), the share
          let text = `${formatShort(s.count)} · ${pct}`;
          if (ctx.measureText(text).width > area.right - area.left) text = pct;
          const tw = ctx.measureText(text).width;
          const width = Math.abs(bar.x - bar.base);
          const barRight = Math.max(bar.x, bar.base);
          let left;
          if (width > tw + 16) { // inside the bar, on white
            ctx.fillStyle = "#fff";
            left = mid - tw / 2;
          } else if (barRight + 6 + tw <= area.right) { // beside the bar
            ctx.fillStyle = pal.text;
            left = barRight + 6;
          } else { // over the bar's edge, kept inside the chart, with a halo to stay legible
            left = Math.max(area.left, Math.min(area.right - tw, mid - tw / 2));
            ctx.lineWidth = 3;
            ctx.lineJoin = "round";
            ctx.strokeStyle = pal.surface || "#fff";
            ctx.strokeText(text, left, bar.y);
            ctx.fillStyle = pal.text;
          }
          ctx.fillText(text, left, bar.y);
          drawn.push({ text, left, right: left + tw });
        });
        view.chartBox().dataset.labels = JSON.stringify({ width: chart.width, labels: drawn });
        ctx.restore();
      },
    };
    const max = Math.max(1, first);
    this.setChart({
      type: "bar",
      data: { labels, datasets: [{ label: "users", data: bars, backgroundColor: colors, borderRadius: 4, borderSkipped: false, barPercentage: 0.9, categoryPercentage: 0.9 }] },
      options: {
        responsive: true, maintainAspectRatio: false, indexAxis: "y",
        scales: {
          x: { display: false, min: -max / 2, max: max / 2 },
          y: { grid: { display: false }, border: { display: false }, ticks: { color: pal.text } },
        },
        plugins: {
          legend: { display: false },
          tooltip: { callbacks: { label: (ctx) => {
            const s = this.funnel.steps[ctx.dataIndex];
            const parts = [`${formatNumber(s.count)} users`];
            if (s.conversionRate !== null && s.conversionRate !== undefined) parts.push(`${Number(s.conversionRate).toFixed(1)}% from previous step`);
            return parts;
          } } },
        },
      },
      plugins: [labelPlugin],
    }, funnelSummary(steps, first));
    this.setEmpty(first === 0, "Nobody entered the funnel in this range");
  }
}

// Draws one small chart of each kind off screen and throws them away. The first Chart.js
// chart of a page costs 80-230 ms more than the next ones (its code is compiled on first use,
// fonts measured); done while the dashboard's data is still on its way, that cost leaves
// the first render's critical path.
// Chart.js defaults from the page's CSS (font, muted text colour): set once, before any chart.
export function applyChartDefaults() {
  Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
  Chart.defaults.font.size = 12;
  Chart.defaults.color = getComputedStyle(document.documentElement).getPropertyValue("--muted").trim();
}

// A dashboard's widgets as WidgetViews in `grid` (the old ones in `views` destroyed and
// replaced); `decorate(view, widget)` adds a page's own controls. Returns how many.
export function buildWidgetGrid(grid, doc, views, decorate = () => {}) {
  for (const v of views.values()) v.destroy();
  views.clear();
  grid.dataset.dashboardId = doc.id;
  grid.style.setProperty("--gap", `${(doc.layout && doc.layout.gap) ?? 16}px`);
  const nodes = [];
  for (const w of doc.widgets || []) {
    const view = new WidgetView(w);
    decorate(view, w);
    views.set(w.id, view);
    nodes.push(view.node);
  }
  grid.replaceChildren(...nodes);
  return nodes.length;
}

// Widget data (a dashboard's data answer or live push) to the views it belongs to.
export function updateWidgets(views, data) {
  for (const w of data.widgets || []) {
    const view = views.get(w.id);
    if (view) view.update(w);
  }
}

export function warmUpCharts() {
  if (!window.Chart) return;
  const host = el("div");
  host.setAttribute("aria-hidden", "true");
  host.style.cssText = "position:absolute;left:-10000px;top:0;width:360px;height:220px;visibility:hidden";
  document.body.append(host);
  const hour = 3600000;
  const samples = [
    ["line-chart", { kind: "series", timestamps: [0, hour, 2 * hour], interval: hour, series: [{ name: "n", values: [1, 3, 2] }] }],
    ["bar-chart", { kind: "categories", labels: ["a", "b"], values: [2, 1] }],
    ["pie-chart", { kind: "categories", labels: ["a", "b"], values: [2, 1] }],
    ["funnel", { kind: "funnel", steps: [{ name: "a", count: 2 }, { name: "b", count: 1 }] }],
  ];
  for (const [type, data] of samples) {
    const view = new WidgetView({ id: `warm-${type}`, type, title: type, position: { x: 0, y: 0, w: 6, h: 4 } });
    view.node.style.height = "220px";
    host.append(view.node);
    try { view.draw(data); } catch { /* warming only: a real draw reports its own errors */ }
    view.destroy();
  }
  host.remove();
}

// The smallest 1, 2, 2.5 or 5 times a power of ten at or above `v` (a gauge's default
// maximum: 22,401 reads as "of 25k", not "of 33,601.5").
function niceCeiling(v) {
  const power = 10 ** Math.floor(Math.log10(v));
  for (const step of [1, 2, 2.5, 5, 10]) if (step * power >= v) return step * power;
  return 10 * power;
}

function allIntegers(series) {
  return series.every((s) => s.values.every((v) => v === null || Number.isInteger(v)));
}

// The funnel's steps as text: each step's users and its share of the first step (the
// bars are floating [lo, hi] pairs, which summarise() cannot read).
function funnelSummary(steps, first) {
  if (!steps.length) return "No data";
  return steps.map((s, i) => {
    const pct = i === 0 || !first ? "" : ` (${formatNumber((100 * (s.count || 0)) / first, { decimals: 1 })}%)`;
    return `${s.name} ${formatNumber(s.count || 0)}${pct}`;
  }).join(", ");
}

// A heatmap as text: its busiest cell, its total and how many cells hold data.
function heatSummary(data) {
  let peak = null, filled = 0;
  data.values.forEach((row, y) => row.forEach((v, x) => {
    if (v === null || v === undefined) return;
    if (v) filled += 1;
    if (peak === null || v > peak.v) peak = { v, y, x };
  }));
  if (peak === null || !filled) return "No data";
  const where = `${data.yLabels[peak.y]} ${data.xLabels[peak.x]}`;
  // (a total only where cells add up: counts and sums, as the server says)
  const sum = data.total === null || data.total === undefined ? "" : `, total ${formatNumber(data.total)}`;
  return `peak ${formatNumber(peak.v)} at ${where}${sum}, ${filled} of ${data.values.length * data.xLabels.length} cells with data`;
}

// A short text form of a chart's data: every value when there are few, else the shape.
function summarise(data) {
  const parts = [];
  for (const ds of (data.datasets || []).slice(0, 4)) {
    const values = ds.data.filter((v) => v !== null && v !== undefined).map(Number);
    if (!values.length) continue;
    const name = ds.label ? `${ds.label}: ` : "";
    if (data.labels.length <= 8) {
      parts.push(name + data.labels.map((l, i) => `${l} ${formatNumber(ds.data[i])}`).join(", "));
    } else {
      parts.push(`${name}${values.length} points from ${data.labels[0]} to ${data.labels[data.labels.length - 1]}, ` +
        `latest ${formatNumber(values[values.length - 1])}, peak ${formatNumber(Math.max(...values))}`);
    }
  }
  return parts.join("; ") || "No data";
}
