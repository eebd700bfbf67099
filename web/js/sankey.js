// The `sankey` widget: a paths answer (POST /queries/paths, data kind "sankey": nodes with
// step, name, users and drop-off; links source -> target with users) drawn as a Sankey
// diagram by the vendored chartjs-chart-sankey (web/vendor, registered on window.Chart).
//
// Each step is a column (an end-point query walks backwards, so its steps run right to left
// and the end point is the last column); a node's height is its paths, and what does not
// flow on from it is its drop-off. After each draw the canvas carries `data-nodes`: the
// nodes the chart laid out, {id, label, x, y, users} in CSS px (for tests and tools).

import { formatNumber, formatShort } from "./format.js";
import { palette } from "./widgets.js";

function columns(nodes, backward) {
  const last = Math.max(1, ...nodes.map((n) => n.step));
  const out = {};
  for (const n of nodes) out[n.id] = backward ? last - n.step : n.step - 1;
  return out;
}

// The paths as text for screen readers: the biggest node of each step.
function sankeySummary(data) {
  const nodes = data.nodes || [];
  if (!nodes.length) return "No paths";
  const best = new Map();
  for (const n of nodes) if (!best.has(n.step) || best.get(n.step).users < n.users) best.set(n.step, n);
  const steps = [...best.keys()].sort((a, b) => a - b).map((s) => {
    const n = best.get(s);
    return `step ${s} ${n.name} ${formatNumber(n.users)}`;
  });
  return `${formatNumber(data.totalPaths || 0)} paths; ${steps.join(", ")}`;
}

export function drawSankey(view, data) {
  const pal = palette();
  const nodes = data.nodes || [];
  const links = data.links || [];
  const byId = new Map(nodes.map((n) => [n.id, n]));
  const labels = {};
  for (const n of nodes) labels[n.id] = `${n.name} · ${formatShort(n.users)}`;
  const color = (id) => {
    const n = byId.get(id);
    return n && n.name === "$other" ? pal.muted : pal.series[((n ? n.step : 1) - 1) % pal.series.length];
  };
  const record = {
    id: "sankeyNodes",
    afterDatasetsDraw(chart) {
      const meta = chart.getDatasetMeta(0);
      const laid = (meta.controller && meta.controller._nodes) || new Map();
      const out = [];
      for (const [key, node] of laid) {
        const n = byId.get(key);
        out.push({ id: key, label: labels[key], x: Math.round(node.x ?? 0), y: Math.round(node.y ?? 0), users: n ? n.users : null });
      }
      view.chartBox().dataset.nodes = JSON.stringify(out);
    },
  };
  view.setChart({
    type: "sankey",
    data: {
      datasets: [{
        label: "paths",
        data: links.map((l) => ({ from: l.source, to: l.target, flow: l.users })),
        labels,
        column: columns(nodes, data.direction === "backward"),
        colorFrom: (ctx) => color(ctx.raw && ctx.raw.from),
        colorTo: (ctx) => color(ctx.raw && ctx.raw.to),
        colorMode: "gradient",
        alpha: 0.45,
        size: "max",
        nodeWidth: 8,
        color: pal.text,
        borderWidth: 0,
      }],
    },
    options: {
      responsive: true, maintainAspectRatio: false,
      plugins: {
        legend: { display: false },
        tooltip: { callbacks: { label: (ctx) => {
          const raw = ctx.raw || {};
          const a = byId.get(raw.from), b = byId.get(raw.to);
          return `${a ? a.name : raw.from} → ${b ? b.name : raw.to}: ${formatNumber(raw.flow)}`;
        } } },
      },
    },
    plugins: [record],
  }, sankeySummary(data));
  view.setEmpty(!links.length, nodes.length ? "No path goes past its first step" : "No paths in this range");
}
