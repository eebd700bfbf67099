"""`rta top [--live]` and `rta tail`: live terminal views fed by the daemon's WebSocket."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

import typer

from rta.cli.output import (
    EXIT_USAGE,
    JsonOption,
    ServerOption,
    console,
    fail,
    print_json,
    run_live,
)

if TYPE_CHECKING:
    from rich.console import RenderableType

SPARK = "▁▂▃▄▅▆▇█"


def sparkline(values: list[int] | list[float], width: int = 60) -> str:
    """Unicode block sparkline of the last `width` values, scaled to their maximum."""
    vals = list(values)[-width:]
    top = max(vals) if vals else 0
    if top <= 0:
        return SPARK[0] * len(vals)
    return "".join(SPARK[min(len(SPARK) - 1, int(v / top * (len(SPARK) - 1) + 0.5))]
                   for v in vals)


def render_metrics(data: dict[str, Any], server: str = "", status: str = "",
                   live: bool = True) -> RenderableType:
    """The `rta top` screen for one metrics tick (`live=False`: the one-shot view, which
    has no key to quit)."""
    from rich.console import Group
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text

    totals = data.get("totals", {})
    head = Text.assemble(
        ("rta top ", "bold"), (server, "dim"), "  ",
        (f"{data.get('eventsPerSecond', 0):,} ev/s", "bold cyan"), "  ",
        (f"{data.get('activeUsers5m', 0):,} active users (5m)", "bold green"), "  ",
        (f"{data.get('lastMinute', {}).get('total', 0):,} events last minute", ""), "  ",
        (f"{totals.get('events', 0):,} stored", "dim"))
    if status:
        head.append(f"  [{status}]", style="yellow")
    per_second = data.get("perSecond", [])
    spark = Panel(Text(sparkline(per_second), style="cyan"),
                  title=f"events/s, last {len(per_second)} s (max {max(per_second, default=0):,})",
                  title_align="left")
    types = Table(title="top event types (1 min)", title_justify="left", expand=True)
    types.add_column("type")
    types.add_column("events", justify="right")
    for item in data.get("topTypes", []):
        types.add_row(item["type"], f"{item['count']:,}")
    pages = Table(title="top pages (1 min)", title_justify="left", expand=True)
    pages.add_column("page", overflow="fold")
    pages.add_column("views", justify="right")
    for item in data.get("topPages", []):
        pages.add_row(str(item["page"]), f"{item['count']:,}")
    grid = Table.grid(expand=True, padding=(0, 2))
    grid.add_column(ratio=1)
    grid.add_column(ratio=1)
    grid.add_row(types, pages)
    if not live:
        return Group(head, spark, grid)
    return Group(head, spark, grid, Text("q or Ctrl-C quits", style="dim"))


async def _watch_keys(scope: Any) -> None:
    """Cancel `scope` when q is pressed (stdin in cbreak mode); idle when stdin is no tty."""
    import trio

    if not sys.stdin.isatty():
        await trio.sleep_forever()
    import select
    import termios
    import tty

    fd = sys.stdin.fileno()
    old = termios.tcgetattr(fd)

    def read_key() -> str:
        while True:
            ready, _, _ = select.select([fd], [], [], 0.2)
            if ready:
                return sys.stdin.read(1)

    tty.setcbreak(fd)
    try:
        while True:
            key = await trio.to_thread.run_sync(read_key, abandon_on_cancel=True)
            if key in ("q", "Q", "\x03"):
                scope.cancel()
                return
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, old)


PIPE_WIDTH = 100  # columns of `rta top`'s panels when its output is not a terminal


def top(
    live: bool = typer.Option(False, "--live", "-l", help="Full-screen view that updates every "
                              "second and reconnects on its own (q or Ctrl-C quits)."),
    ticks: int = typer.Option(0, "--ticks", hidden=True, help="Stop after N updates (tests)."),
    server: str = ServerOption,
    as_json: bool = JsonOption,
) -> None:
    """Live traffic: events/s, top event types and pages, active users."""
    import trio

    from rta.cli.output import load_settings
    from rta.client.ws import follow

    settings = load_settings({"server": server})
    token = settings.token or None
    if not live:
        box: dict[str, Any] = {}

        def first(msg: dict[str, Any]) -> bool:
            if msg.get("channel") == "metrics":
                box["data"] = msg["data"]
                return False
            return True

        _run(lambda: follow(settings.server, [("metrics", None)], first, token=token,
                            reconnect=False), settings.server)
        if as_json:
            print_json(box["data"])
        else:
            out = console()  # (panels fill the width: a pipe gets a page's, not 65,536)
            out.print(render_metrics(box["data"], settings.server, live=False),
                      width=None if out.is_terminal else PIPE_WIDTH)
        return

    from rich.live import Live

    state: dict[str, Any] = {"data": None, "status": "connecting", "seen": 0}
    out = console()

    async def main() -> None:
        with Live(render_metrics({}, settings.server, "connecting"), console=out,
                  screen=out.is_terminal, auto_refresh=False, transient=True) as view:
            async with trio.open_nursery() as nursery:
                def on_message(msg: dict[str, Any]) -> bool:
                    if msg.get("channel") != "metrics":
                        return True
                    state["data"] = msg["data"]
                    state["status"] = ""
                    state["seen"] += 1
                    if as_json:
                        sys.stdout.write(json.dumps(msg["data"]) + "\n")
                        sys.stdout.flush()
                    else:
                        view.update(render_metrics(msg["data"], settings.server), refresh=True)
                    if ticks and state["seen"] >= ticks:
                        nursery.cancel_scope.cancel()
                    return True

                def on_status(kind: str, detail: str) -> None:
                    if kind != "connected":
                        view.update(render_metrics(state["data"] or {}, settings.server,
                                                   "reconnecting…"), refresh=True)

                nursery.start_soon(_watch_keys, nursery.cancel_scope)
                await follow(settings.server, [("metrics", None)], on_message, token=token,
                             on_status=on_status)
                nursery.cancel_scope.cancel()

    _run(main, settings.server)


def _run(fn: Any, server: str) -> None:
    run_live(fn, server)


def tail(
    event_type: list[str] = typer.Option(None, "--type", "-t", help="Event type (repeatable)."),
    where: list[str] = typer.Option(None, "--where", "-w",
                                    help="Property filter: 'page=/x', 'duration>1000', "
                                         "'page~prod', 'email?' (repeatable)."),
    user: str = typer.Option(None, "--user", "-u", help="Only this user id."),
    count: int = typer.Option(0, "--count", "-n", min=0,
                              help="Stop after this many events (0: never)."),
    server: str = ServerOption,
    as_json: bool = JsonOption,
) -> None:
    """Follow events as they arrive (sampled above the server's live rate; Ctrl-C stops).
    --json prints NDJSON."""
    from rta.cli.output import load_settings
    from rta.client.ws import follow
    from rta.core.errors import ValidationError
    from rta.core.queries.filters import parse_cli_where, predicate_to_json

    settings = load_settings({"server": server})
    flt: dict[str, Any] = {}
    if event_type:
        flt["type"] = list(event_type)
    if user:
        flt["userId"] = user
    if where:
        try:
            flt["where"] = [predicate_to_json(parse_cli_where(w)) for w in where]
        except ValidationError as exc:
            fail(exc.message, EXIT_USAGE)
    err = console(stderr=True)
    out = console()
    state = {"seen": 0, "rate": 1.0}

    def on_message(msg: dict[str, Any]) -> bool:
        if msg.get("channel") != "events":
            return True
        data = msg["data"]
        if data.get("sampleRate", 1.0) < 1.0 and state["rate"] == 1.0:
            err.print(f"[yellow]sampling: showing {data['sampleRate']:.1%} of matching events "
                      f"(live rate limit {data.get('maxRate')}/s)[/]")
        state["rate"] = data.get("sampleRate", 1.0)
        from rta.core.queries.timeparse import iso

        for ev in data["events"]:
            if as_json:
                sys.stdout.write(json.dumps(ev, ensure_ascii=False) + "\n")
            else:
                props = " ".join(f"{k}={v}" for k, v in ev["properties"].items())
                out.print(f"[dim]{iso(ev['timestamp'])}[/] [bold]{ev['type']}[/] "
                          f"{ev.get('userId') or '-'} {props}", markup=True, highlight=False)
            state["seen"] += 1
            if count and state["seen"] >= count:
                sys.stdout.flush()
                return False
        sys.stdout.flush()
        return True

    def on_status(kind: str, detail: str) -> None:
        if kind == "connected":
            err.print(f"following events on {settings.server} (Ctrl-C stops)")
        else:
            err.print(f"[yellow]connection lost ({detail}); reconnecting[/]")

    _run(lambda: follow(settings.server, [("events", flt or None)], on_message,
                        token=settings.token or None, on_status=on_status), settings.server)


def register(app: typer.Typer) -> None:
    """Add `rta top` and `rta tail`."""
    app.command("top")(top)
    app.command("tail")(tail)
