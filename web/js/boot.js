// Starts the first page's requests the moment this module runs: it is loaded `async`, so it
// does not wait for Chart.js (a deferred classic script) to be parsed, nor for the rest of the
// app. app.js takes each promise once; later loads go through the API as usual.

import { api } from "./api.js";

function hashTarget() {
  const m = /^#\/dashboards\/([^?]+)(?:\?(.*))?$/.exec(location.hash);
  if (!m) return { id: null, range: "" };
  const q = new URLSearchParams(m[2] || "");
  return { id: decodeURIComponent(m[1]), range: q.get("range") || "" };
}

const TZ = -new Date().getTimezoneOffset();
const target = hashTarget();
const pending = {
  list: api.listDashboards(),
  doc: target.id ? api.getDashboard(target.id) : null,
  data: target.id ? api.data(target.id, target.range, TZ) : null,
};
for (const p of Object.values(pending)) if (p) p.catch(() => { /* taken and handled by app.js */ });

// The prefetched answer for `what` if it was made for this dashboard/range, at most once.
export function take(what, id = null, range = null) {
  const p = pending[what];
  if (!p) return null;
  if (what !== "list" && (id !== target.id || (what === "data" && range !== target.range))) return null;
  pending[what] = null;
  return p;
}
