// Thin fetch wrappers for the rta HTTP API. Errors carry the server's {error: {...}} body.

export class ApiError extends Error {
  constructor(status, body) {
    const err = (body && body.error) || {};
    super(err.message || `HTTP ${status}`);
    this.status = status;
    this.code = err.code || "http_error";
    this.details = err.details || [];
  }
}

async function request(method, path, body) {
  const init = { method, headers: { Accept: "application/json" } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch (e) {
    throw new ApiError(0, { error: { code: "unreachable", message: "the server cannot be reached" } });
  }
  const text = await res.text();
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch { data = { error: { message: text.slice(0, 300) } }; }
  }
  if (!res.ok) throw new ApiError(res.status, data);
  return data;
}

export const api = {
  get: (path) => request("GET", path),
  post: (path, body) => request("POST", path, body),
  listDashboards: () => request("GET", "/dashboards"),
  updateDashboard: (id, change) => request("PUT", `/dashboards/${encodeURIComponent(id)}`, change),
  createDashboard: (body) => request("POST", "/dashboards", body),
  getDashboard: (id) => request("GET", `/dashboards/${encodeURIComponent(id)}`),
  deleteDashboard: (id) => request("DELETE", `/dashboards/${encodeURIComponent(id)}`),
  templates: () => request("GET", "/dashboards/templates"),
  fromTemplate: (template, name) =>
    request("POST", "/dashboards/template", name ? { template, name } : { template }),
  data: (id, timeRange, tz) => {
    const q = new URLSearchParams();
    if (timeRange) q.set("timeRange", timeRange);
    q.set("tz", String(tz));
    return request("GET", `/dashboards/${encodeURIComponent(id)}/data?${q}`);
  },
};
