"""Dashboards API: CRUD, templates, resolved widget data, and live `dashboard:<id>` channels.

Routes (the seed's contract plus template management):
    POST/GET /dashboards, GET/PUT/DELETE /dashboards/{id}, GET /dashboards/{id}/data
    POST /dashboards/template {"template": "overview"}
    GET/POST /dashboards/templates, DELETE /dashboards/templates/{name}

Widget data is resolved in a worker thread against one pinned snapshot, so a dashboard is
internally consistent and a heavy dashboard never stalls ingestion or WebSocket delivery.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import trio
from quart import Blueprint, Response, request
from quart_trio import QuartTrio

from rta.core import dashboards as dash
from rta.core.engine import Engine
from rta.core.errors import NotFoundError, RtaError, field_error
from rta.core.queries.timeparse import parse_time_range
from rta.server.http import engine, json_object, json_response

log = logging.getLogger("rta.server.dashboards")
bp = Blueprint("dashboards_api", __name__)
CHANNEL_PREFIX = "dashboard:"
MIN_PUSH_INTERVAL_S = 1.0  # new events push at most once a second per channel


async def resolve(eng: Engine, doc: dict[str, Any], time_range: str | None = None,
                  tz_offset: int = 0) -> dict[str, Any]:
    """Resolve in a worker thread over a snapshot pinned here, on the event-loop thread."""
    pinned = dash.pin(eng)
    result: dict[str, Any] = await trio.to_thread.run_sync(
        lambda: _annotated(pinned, dash.resolve_dashboard(pinned, doc, time_range, tz_offset),
                           doc))
    return result


def _annotated(pinned: dash.Pinned, result: dict[str, Any],
               doc: dict[str, Any]) -> dict[str, Any]:
    """`storeEvents` (0: nothing was ever sent, the page shows how to send the first event)
    and, on a widget whose property no stored event carries, `warnings` saying why it shows
    no data."""
    result["storeEvents"] = pinned.ctx.backend.total_events()
    for i, (out, widget) in enumerate(zip(result["widgets"], doc.get("widgets", []),
                                          strict=True)):
        if out.get("error") is None and isinstance(widget.get("dataSource"), dict):
            warnings = dash.widget_warnings(pinned.ctx.backend, widget, i)
            if warnings:
                out["warnings"] = warnings
    return result


def _tz_arg(raw: str | None) -> int:
    if raw in (None, ""):
        return 0
    try:
        value = int(raw)
    except ValueError:
        raise field_error("tz", "must be a UTC offset in minutes, e.g. 120 or -300",
                          value=raw) from None
    if not -14 * 60 <= value <= 14 * 60:
        raise field_error("tz", "must be between -840 and 840 minutes", value=value)
    return value


@bp.post("/dashboards")
async def create_dashboard() -> Response:
    doc = dash.create_dashboard(engine(), await json_object())
    return json_response(doc, 201, headers={"Location": f"/dashboards/{doc['id']}"})


@bp.get("/dashboards")
async def list_dashboards() -> Response:
    docs = dash.list_dashboards(engine())
    return json_response({"dashboards": docs, "total": len(docs)})


@bp.post("/dashboards/template")
async def create_from_template() -> Response:
    doc = dash.create_from_template(engine(), await json_object())
    return json_response(doc, 201, headers={"Location": f"/dashboards/{doc['id']}"})


@bp.get("/dashboards/templates")
async def list_templates() -> Response:
    items = dash.list_templates(engine())
    return json_response({"templates": items, "total": len(items)})


@bp.post("/dashboards/templates")
async def register_template() -> Response:
    return json_response(dash.register_template(engine(), await json_object()), 201)


@bp.delete("/dashboards/templates/<name>")
async def delete_template(name: str) -> Response:
    dash.delete_template(engine(), name)
    return json_response({"deleted": True, "template": name})


@bp.get("/dashboards/<dashboard_id>")
async def get_dashboard(dashboard_id: str) -> Response:
    return json_response(dash.get_dashboard(engine(), dashboard_id))


@bp.put("/dashboards/<dashboard_id>")
async def put_dashboard(dashboard_id: str) -> Response:
    return json_response(dash.update_dashboard(engine(), dashboard_id, await json_object()))


@bp.delete("/dashboards/<dashboard_id>")
async def delete_dashboard(dashboard_id: str) -> Response:
    dash.delete_dashboard(engine(), dashboard_id)
    return json_response({"deleted": True, "id": dashboard_id})


@bp.get("/dashboards/<dashboard_id>/data")
async def dashboard_data(dashboard_id: str) -> Response:
    eng = engine()
    doc = dash.get_dashboard(eng, dashboard_id)
    time_range = request.args.get("timeRange") or None
    tz = _tz_arg(request.args.get("tz"))
    return json_response(await resolve(eng, doc, time_range, tz),
                         headers={"Cache-Control": "no-store"})


# -- live channels -------------------------------------------------------------------------------

def parse_channel(channel: str) -> tuple[str, str | None, int]:
    """'dashboard:<id>[?timeRange=last_1h&tz=120]' -> (id, time range override, tz offset)."""
    rest = channel[len(CHANNEL_PREFIX):]
    dashboard_id, _, query = rest.partition("?")
    args = parse_qs(query)
    time_range = args["timeRange"][0] if args.get("timeRange") else None
    tz = _tz_arg(args["tz"][0] if args.get("tz") else None)
    if time_range is not None:
        parse_time_range(None, None, None, time_range=time_range)
    return dashboard_id, time_range, tz


@dataclass
class _ChannelState:
    version: int = -1
    sent_at: float = 0.0
    definition: Any = None  # the dashboard's updatedAt when last pushed


@dataclass
class DashboardPublisher:
    """Pushes widget data to every subscribed `dashboard:<id>` channel.

    A channel is refreshed when new events have landed (at most once a second), when the
    dashboard's definition changed, and at its `refreshInterval` regardless (relative time
    ranges move even without events). A deleted dashboard's channel gets a `not_found` error
    and is ended.
    """

    engine: Engine
    states: dict[str, _ChannelState] = field(default_factory=dict)
    wake: trio.Event = field(default_factory=trio.Event)
    pushes: int = 0
    failures: int = 0

    async def on_subscribe(self, channel: str, subscriber: Any) -> None:
        dashboard_id, time_range, tz = parse_channel(channel)
        doc = dash.get_dashboard(self.engine, dashboard_id)  # NotFoundError refuses it
        hub = self.engine.served.live_hub
        version = self.engine.store.version  # the initial snapshot's: later data pushes
        data = await resolve(self.engine, doc, time_range, tz)
        hub.send(subscriber, channel, data)
        self.states[channel] = _ChannelState(version, time.monotonic(), doc.get("updatedAt"))

    def on_ingest(self, _batch: Any) -> None:
        self.wake.set()

    async def run(self) -> None:
        hub = self.engine.served.live_hub  # built by create_app before any feature's setup
        hub.register_prefix(CHANNEL_PREFIX, self.on_subscribe, coalesce=True)
        while True:
            with trio.move_on_after(0.5):
                await self.wake.wait()
            self.wake = trio.Event()
            try:
                await self.tick(hub)
            except Exception:  # keep publishing whatever one dashboard does
                log.exception("dashboard publisher tick failed")
                self.failures += 1
            await trio.sleep(0.1)

    async def tick(self, hub: Any) -> None:
        now = time.monotonic()
        version = self.engine.store.version
        active = [c for c in hub.active_channels() if c.startswith(CHANNEL_PREFIX)]
        for gone in set(self.states) - set(active):
            del self.states[gone]
        for channel in active:
            state = self.states.setdefault(channel, _ChannelState())
            try:
                dashboard_id, time_range, tz = parse_channel(channel)
                doc = dash.get_dashboard(self.engine, dashboard_id)
            except NotFoundError:  # deleted meanwhile: say so on the channel, and end it
                hub.end_channel(channel, NotFoundError(
                    f"dashboard {dashboard_id} was deleted", [{"dashboard": dashboard_id}]))
                self.states.pop(channel, None)
                continue
            except RtaError:  # a malformed channel name (refused when subscribing)
                continue
            refresh_s = doc.get("refreshInterval", dash.DEFAULT_REFRESH_MS) / 1000
            edited = state.definition is not None and state.definition != doc.get("updatedAt")
            changed = state.version != version and now - state.sent_at >= MIN_PUSH_INTERVAL_S
            if not (changed or edited) and now - state.sent_at < refresh_s:
                continue
            state.version, state.sent_at, state.definition = version, now, doc.get("updatedAt")
            data = await resolve(self.engine, doc, time_range, tz)
            hub.publish(channel, data)
            self.pushes += 1


def setup(app: QuartTrio, eng: Engine) -> None:
    """Start the publisher in the engine's nursery; it registers with the hub once it exists."""
    publisher = DashboardPublisher(eng)
    eng.on_ingest(publisher.on_ingest)
    eng.add_background(publisher.run)
