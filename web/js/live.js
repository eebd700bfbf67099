// LiveConnection: one WebSocket to /ws, resubscribing after every reconnect.
//
// Server messages: {type, channel, timestamp, data}. The connection reports its state
// ("connecting" | "live" | "offline") so the page can show it and fall back to polling.

// The live channel of one dashboard's widget data for a time range and time-zone offset
// (the server answers the same query as GET /dashboards/<id>/data with these parameters).
export function dashboardChannel(id, range, tz) {
  const q = new URLSearchParams();
  if (range) q.set("timeRange", range);
  q.set("tz", String(tz));
  return `dashboard:${id}?${q}`;
}

export class LiveConnection {
  constructor({ onMessage, onState }) {
    this.onMessage = onMessage;
    this.onState = onState;
    this.channels = new Set();
    this.ws = null;
    this.attempt = 0;
    this.state = "connecting";
    this.closed = false;
    this.timer = null;
  }

  url() {
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    return `${proto}//${location.host}/ws`;
  }

  start() {
    if (!("WebSocket" in window)) { this.setState("offline"); return; }
    this.connect();
    window.addEventListener("online", () => this.reconnectNow());
  }

  setState(state) {
    if (state === this.state) return;
    this.state = state;
    this.onState(state);
  }

  connect() {
    clearTimeout(this.timer);
    this.setState(this.attempt === 0 ? "connecting" : "offline");
    let ws;
    try {
      ws = new WebSocket(this.url());
    } catch {
      this.scheduleReconnect();
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      this.attempt = 0;
      this.setState("live");
      for (const ch of this.channels) this.send({ type: "subscribe", channel: ch });
    };
    ws.onmessage = (ev) => {
      let msg;
      try { msg = JSON.parse(ev.data); } catch { return; }
      this.onMessage(msg);
    };
    ws.onclose = () => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.setState("offline");
      if (!this.closed) this.scheduleReconnect();
    };
    ws.onerror = () => { /* onclose follows and reconnects */ };
  }

  scheduleReconnect() {
    this.attempt += 1;
    const delay = Math.min(10000, 500 * 2 ** Math.min(this.attempt, 5)) * (0.75 + Math.random() / 2);
    this.timer = setTimeout(() => this.connect(), delay);
  }

  reconnectNow() {
    if (this.ws && this.ws.readyState <= 1) return;
    this.attempt = 0;
    this.connect();
  }

  send(obj) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) {
      this.ws.send(JSON.stringify(obj));
      return true;
    }
    return false;
  }

  subscribe(channel) {
    if (this.channels.has(channel)) return;
    this.channels.add(channel);
    this.send({ type: "subscribe", channel });
  }

  unsubscribe(channel) {
    if (!this.channels.delete(channel)) return;
    this.send({ type: "unsubscribe", channel });
  }
}
