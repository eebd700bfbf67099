// Annotations: markers on every time-series chart of the open dashboard, the text on hover,
// and (on the main page) a small form to add one.
//
// A tiny Chart.js plugin of our own: a series chart says which buckets its x axis shows
// (`options.plugins.rtaAnnotations = {timestamps, interval}`, set in widgets.js), and after
// each draw the plugin places one DOM marker per annotation inside the bucket's span (a
// category axis has no time scale, so the position is interpolated between bucket ticks).
// DOM markers carry the text as a tooltip (`title`, and a styled hover box), are focusable
// and are easy to find in tests.

const state = {
  items: [], // [{id, timestamp, text, author, dashboardId}]
  dashboardId: null,
  source: null, // {list(dashboardId), create(body)} supplied by the page
  loadedAt: 0,
  loading: null,
};
const RELOAD_MS = 10000; // pushes refresh the markers at most this often

function fractionalX(chart, ts, timestamps, interval) {
  const n = timestamps.length;
  if (!n) return null;
  const step = interval || (n > 1 ? timestamps[1] - timestamps[0] : 0);
  if (ts < timestamps[0] || ts >= timestamps[n - 1] + Math.max(step, 1)) return null;
  let lo = 0;
  let hi = n - 1;
  while (lo < hi) { // the last bucket starting at or before ts
    const mid = (lo + hi + 1) >> 1;
    if (timestamps[mid] <= ts) lo = mid; else hi = mid - 1;
  }
  const x = chart.scales.x;
  const p0 = x.getPixelForValue(lo);
  let width = 0;
  if (n > 1) width = lo + 1 < n ? x.getPixelForValue(lo + 1) - p0 : p0 - x.getPixelForValue(lo - 1);
  const frac = step ? (ts - timestamps[lo]) / step : 0;
  return p0 + frac * width;
}

function describe(a) {
  const when = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" })
    .format(new Date(a.timestamp));
  return `${a.text}\n${when}${a.author ? ` · ${a.author}` : ""}`;
}

function layerFor(chart) {
  const box = chart.canvas.parentNode;
  if (!box) return null;
  let layer = box.querySelector(":scope > .annotation-layer");
  if (!layer) {
    layer = document.createElement("div");
    layer.className = "annotation-layer";
    box.append(layer);
  }
  return layer;
}

function sync(chart) {
  const opts = chart.options.plugins && chart.options.plugins.rtaAnnotations;
  const timestamps = opts && opts.timestamps ? Array.from(opts.timestamps) : null;
  const area = chart.chartArea;
  if (!timestamps || !area || !chart.scales.x) {
    const stale = chart.canvas.parentNode && chart.canvas.parentNode.querySelector(":scope > .annotation-layer");
    if (stale) stale.remove();
    return;
  }
  const placed = [];
  for (const a of state.items) {
    const x = fractionalX(chart, a.timestamp, timestamps, opts.interval);
    // a line chart's last point is its right edge: the rest of that bucket is pinned there
    if (x !== null) placed.push([a, Math.round(Math.min(area.right, Math.max(area.left, x)))]);
  }
  const key = `${area.top},${area.bottom}|${placed.map(([a, x]) => `${a.id}@${x}`).join(",")}`;
  const layer = layerFor(chart);
  if (!layer || layer.dataset.key === key) return;
  layer.dataset.key = key;
  layer.replaceChildren(...placed.map(([a, x]) => {
    const m = document.createElement("span");
    m.className = "annotation-marker";
    m.tabIndex = 0;
    m.dataset.annotationId = a.id;
    m.dataset.text = describe(a);
    m.title = m.dataset.text;
    m.setAttribute("role", "note");
    m.setAttribute("aria-label", `Annotation: ${a.text}`);
    m.style.left = `${x}px`;
    m.style.top = `${area.top}px`;
    m.style.height = `${Math.max(0, area.bottom - area.top)}px`;
    return m;
  }));
}

export const annotationPlugin = {
  id: "rtaAnnotations",
  afterDraw(chart) { sync(chart); },
  afterDestroy(chart) {
    const layer = chart.canvas && chart.canvas.parentNode
      && chart.canvas.parentNode.querySelector(":scope > .annotation-layer");
    if (layer) layer.remove();
  },
};

let registered = false;

// Call once Chart.js has loaded, before the first chart is made.
export function registerAnnotationPlugin() {
  if (registered || !window.Chart) return;
  window.Chart.register(annotationPlugin);
  registered = true;
}

function redrawAll() {
  if (!window.Chart) return;
  for (const chart of Object.values(window.Chart.instances || {})) chart.draw();
}

export function setAnnotationSource(source) {
  state.source = source;
}

export function currentAnnotations() {
  return state.items.slice();
}

// Show the annotations of `dashboardId` (its own and the global ones).
export async function showAnnotationsFor(dashboardId) {
  if (state.dashboardId !== dashboardId) {
    state.items = [];
    redrawAll();
  }
  state.dashboardId = dashboardId;
  await reloadAnnotations();
}

export async function reloadAnnotations() {
  const id = state.dashboardId;
  if (!state.source || !id) return;
  state.loadedAt = Date.now();
  try {
    const res = await state.source.list(id);
    if (id !== state.dashboardId) return;
    state.items = (res && res.annotations) || [];
    redrawAll();
  } catch (e) {
    // markers are an extra: the charts work without them
    console.warn("annotations could not load:", e && e.message);
  }
}

// After a live push: reload now and then, so annotations made elsewhere (CLI, API) appear.
export function refreshAnnotationsSoon() {
  if (Date.now() - state.loadedAt >= RELOAD_MS) reloadAnnotations();
}

// -- the form (main page) ------------------------------------------------------------------------

function localInputValue(ms) {
  const d = new Date(ms - new Date(ms).getTimezoneOffset() * 60000);
  return d.toISOString().slice(0, 16);
}

function buildDialog() {
  const dialog = document.createElement("dialog");
  dialog.id = "annotation-dialog";
  dialog.setAttribute("aria-labelledby", "annotation-title");
  dialog.innerHTML = `
    <form class="dialog-body" id="annotation-form" novalidate>
      <header>
        <h2 id="annotation-title">Add an annotation</h2>
        <button type="button" class="btn ghost" data-close aria-label="Close">✕</button>
      </header>
      <div class="form-grid">
        <label class="field wide"><span>Text</span><input name="text" maxlength="1000" required placeholder="e.g. v2.3 released"></label>
        <label class="field"><span>When</span><input name="at" type="datetime-local" step="60" required></label>
        <label class="field"><span>Author <span class="muted">(optional)</span></span><input name="author" maxlength="200"></label>
        <label class="field wide checkbox"><input name="scoped" type="checkbox" checked> <span>Only on this dashboard (else on every dashboard)</span></label>
      </div>
      <p class="error-text" id="annotation-error" role="alert" hidden></p>
      <footer class="dialog-actions">
        <button type="button" class="btn ghost" data-close>Cancel</button>
        <button type="submit" class="btn primary" id="annotation-save">Add</button>
      </footer>
    </form>`;
  document.body.append(dialog);
  return dialog;
}

// A "+ Annotation" button beside the dashboard's controls, opening a small form.
export function installAnnotationForm({ getDashboardId, container, before }) {
  const dialog = buildDialog();
  const form = dialog.querySelector("form");
  const error = dialog.querySelector("#annotation-error");
  const button = document.createElement("button");
  button.type = "button";
  button.className = "btn ghost";
  button.id = "add-annotation";
  button.textContent = "+ Annotation";
  button.title = "Mark a moment (a release, an incident) on this dashboard's charts";
  container.insertBefore(button, before || null);
  const close = () => dialog.close();
  for (const b of dialog.querySelectorAll("[data-close]")) b.addEventListener("click", close);
  button.addEventListener("click", () => {
    form.reset();
    form.elements.at.value = localInputValue(Date.now());
    error.hidden = true;
    if (typeof dialog.showModal === "function") dialog.showModal(); else dialog.setAttribute("open", "");
    form.elements.text.focus();
  });
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const text = form.elements.text.value.trim();
    const at = form.elements.at.value ? new Date(form.elements.at.value).getTime() : Date.now();
    if (!text) {
      error.textContent = "Write what happened, e.g. “v2.3 released”.";
      error.hidden = false;
      return;
    }
    if (!Number.isFinite(at)) {
      error.textContent = "Give a valid date and time.";
      error.hidden = false;
      return;
    }
    const body = { text, timestamp: at };
    const author = form.elements.author.value.trim();
    if (author) body.author = author;
    const id = getDashboardId();
    if (form.elements.scoped.checked && id) body.dashboardId = id;
    const save = dialog.querySelector("#annotation-save");
    save.disabled = true;
    try {
      await state.source.create(body);
      close();
      await reloadAnnotations();
    } catch (err) {
      error.textContent = err.message || String(err);
      error.hidden = false;
    } finally {
      save.disabled = false;
    }
  });
  return button;
}
