// Number and time formatting shared by the widgets.

const compact = new Intl.NumberFormat(undefined, { notation: "compact", maximumFractionDigits: 1 });
const grouped = new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 });

export function formatNumber(value, config = {}) {
  if (value === null || value === undefined || Number.isNaN(value)) return "–";
  const v = Number(value);
  if (config.format === "currency") {
    return new Intl.NumberFormat(undefined, {
      style: "currency", currency: config.currency || "USD",
      notation: Math.abs(v) >= 1e6 ? "compact" : "standard",
      maximumFractionDigits: Math.abs(v) >= 1000 ? 0 : 2,
    }).format(v);
  }
  if (config.format === "percent") return `${v.toFixed(config.decimals ?? 1)}%`;
  let text;
  if (Math.abs(v) >= 1e6) text = compact.format(v);
  else if (Number.isInteger(v) && !config.minDecimals) text = grouped.format(v);
  else {
    const decimals = config.decimals ?? (Math.abs(v) >= 100 ? 0 : Math.abs(v) >= 10 ? 1 : 2);
    text = new Intl.NumberFormat(undefined, { maximumFractionDigits: decimals,
      minimumFractionDigits: Math.min(config.minDecimals ?? 0, decimals) }).format(v);
  }
  return config.unit ? `${text} ${config.unit}` : text;
}

const fine = new Intl.NumberFormat(undefined, { maximumFractionDigits: 2 });
const small = new Intl.NumberFormat(undefined, { maximumSignificantDigits: 2 });

// Axis ticks: compact above 1000, else up to two decimals (ticks of a small series are
// fractional, and rounding them to integers would label 0.5 as "1"); below 1, two
// significant digits (a ratio such as clicks per pageview is 0.012, not "0").
export function formatShort(value) {
  if (value === null || value === undefined) return "";
  const v = Number(value);
  if (v !== 0 && Math.abs(v) < 1) return small.format(v);
  return Math.abs(v) >= 1000 ? compact.format(v) : fine.format(v);
}

const DAY = 86400000;

export function timeLabels(timestamps, interval) {
  if (!timestamps.length) return [];
  const span = timestamps[timestamps.length - 1] - timestamps[0];
  let opts;
  if (interval >= DAY) opts = { month: "short", day: "numeric" };
  else if (span >= DAY) opts = { weekday: "short", hour: "2-digit", minute: "2-digit" };
  else opts = { hour: "2-digit", minute: "2-digit" };
  const fmt = new Intl.DateTimeFormat(undefined, opts);
  return timestamps.map((t) => fmt.format(new Date(t)));
}

export function formatTime(ms) {
  return new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" }).format(new Date(ms));
}

export function rangeLabel(range) {
  const m = /^last_(\d+)(m|h|d|w)$/.exec(range || "");
  if (m) {
    const unit = { m: "minute", h: "hour", d: "day", w: "week" }[m[2]];
    const n = Number(m[1]);
    return n === 1 ? `last ${unit}` : `last ${n} ${unit}s`;
  }
  return range || "";
}

// A comparison with the previous period (rta/core/queries/compare.py's `comparison`) as a
// short text: "+12.5%" / "−3.0%" (a real minus sign), "new" when the previous value was 0,
// and the test's verdict ("significant, p = 0.012") when there is one.
// The "Updated <time> · <range>" line under a dashboard's name, from its widget data.
export function updatedText(data) {
  const range = data.timeRange ? ` · ${rangeLabel(data.timeRange)}` : "";
  return `Updated ${formatTime(data.generatedAt || Date.now())}${range}`;
}

export function changeText(c) {
  if (!c) return null;
  const rel = c.relativeChange;
  let change;
  let direction = "flat";
  if (rel !== null && rel !== undefined) {
    const pct = Math.abs(rel * 100);
    const digits = pct >= 100 ? 0 : 1;
    direction = rel > 0 ? "up" : rel < 0 ? "down" : "flat";
    change = `${direction === "up" ? "+" : direction === "down" ? "\u2212" : "\u00b1"}${pct.toFixed(digits)}%`;
  } else if (c.value === 0 && c.absoluteChange > 0) {
    change = "new";
    direction = "up";
  } else {
    change = "\u2013";
  }
  const sig = c.significance;
  const p = sig ? (sig.pValue < 0.001 ? "p < 0.001" : `p = ${sig.pValue.toFixed(3)}`) : null;
  const verdict = sig ? `${sig.significant ? "significant" : "not significant"}, ${p}` : null;
  return { change, direction, verdict, significant: sig ? sig.significant : null };
}
