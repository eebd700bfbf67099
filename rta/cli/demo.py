"""`rta demo generate`, and the demo data behind `rta serve --demo`.

Both come from `rta.core.demo`, the deterministic generator the tests and benchmarks share:
the same seed, size and end time give a byte-identical file.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import typer

from rta.cli.output import EXIT_USAGE, JsonOption, emit, fail, message

if TYPE_CHECKING:
    import pyarrow as pa

    from rta.core.engine import Engine

FORMATS = ("ndjson", "parquet", "csv")
DEMO_EVENTS = 200_000  # loaded by `rta serve --demo` into an empty store
DEMO_USERS = 5_000
DEMO_DAYS = 30
log = logging.getLogger("rta.demo")

demo_app = typer.Typer(help="Demo data: realistic, deterministic events for trying rta out.",
                       no_args_is_help=True)


def _hour_start() -> int:
    hour = 3_600_000
    return int(time.time() * 1000) // hour * hour


@demo_app.command("generate")
def generate(
    events: int = typer.Option(100_000, "--events", "-n", min=0, help="How many events."),
    output: str = typer.Option(..., "--output", "-o",
                               help="File to write; - writes NDJSON to stdout."),
    seed: int = typer.Option(1, "--seed", help="Random seed (same seed -> same file)."),
    days: float = typer.Option(30, "--days", min=0.001, help="Days of history to cover."),
    users: int = typer.Option(10_000, "--users", min=1, help="Distinct users."),
    end: str = typer.Option(None, "--end", help="Time of the newest event (ms epoch or "
                            "ISO-8601) [default: the start of the current UTC hour]."),
    fmt: str = typer.Option(None, "--format", "-f",
                            help="ndjson, parquet or csv [default: from the suffix, else "
                                 "ndjson]."),
    as_json: bool = JsonOption,
) -> None:
    """Write demo events: sessions, a purchase funnel, an A/B test, errors, API latency.

    Deterministic: the same --events, --seed, --days, --users and --end give a byte-identical
    file. Without --end the data ends at the start of the current UTC hour, so runs within
    the same hour match.
    """
    from rta.core.demo import generate_arrow
    from rta.core.errors import RtaError
    from rta.core.queries.timeparse import int_text, parse_time

    chosen = fmt or _format_from_suffix(output)
    if chosen not in FORMATS:
        fail(f"unknown format {chosen!r}; use one of {', '.join(FORMATS)}", EXIT_USAGE)
    if output == "-" and chosen != "ndjson":
        fail("only ndjson can be written to stdout", EXIT_USAGE)
    try:
        end_ms = _hour_start() if end is None else parse_time(
            end if (number := int_text(end)) is None else number, "end")
    except RtaError as exc:
        fail(exc.message, EXIT_USAGE)
    started = time.perf_counter()
    table = generate_arrow(events, users=users, days=days, seed=seed, end_ms=end_ms)
    if output == "-":
        import sys

        write_ndjson(table, sys.stdout.buffer)
        sys.stdout.flush()
    else:
        tmp = output + ".tmp"
        try:
            write_table(table, tmp, chosen)
            os.replace(tmp, output)
        except OSError as exc:
            fail(f"cannot write {output}: {exc.strerror or exc}")
    summary = {"events": table.num_rows, "output": output, "format": chosen, "seed": seed,
               "days": days, "users": users, "end": end_ms,
               "seconds": round(time.perf_counter() - started, 3)}
    if output == "-":
        return
    emit(summary, as_json, lambda s: message(
        f"wrote {s['events']:,} demo events to {s['output']} ({s['format']}) "
        f"in {s['seconds']}s"))


def _format_from_suffix(path: str) -> str:
    name = path.lower()
    if name.endswith((".parquet", ".pq")):
        return "parquet"
    if name.endswith(".csv"):
        return "csv"
    return "ndjson"


def write_table(table: pa.Table, path: str, fmt: str) -> None:
    """Write a demo table as NDJSON (nested `properties`), Parquet or CSV (flat columns)."""
    if fmt == "parquet":
        import pyarrow.parquet as pq

        pq.write_table(table, path, compression="zstd")
    elif fmt == "csv":
        import pyarrow.csv as pacsv

        pacsv.write_csv(table, path)
    else:
        with open(path, "wb") as f:
            write_ndjson(table, f)


def write_ndjson(table: pa.Table, out: Any) -> None:
    """One compact JSON object per line, keys in a fixed order (deterministic bytes)."""
    from rta.core.demo import table_events

    dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    lines: list[str] = []
    for event in table_events(table):
        lines.append(dumps(event))
        if len(lines) >= 10_000:
            out.write(("\n".join(lines) + "\n").encode())
            lines = []
    if lines:
        out.write(("\n".join(lines) + "\n").encode())


# -- rta serve --demo ----------------------------------------------------------------------


def demo_startup_hooks(events: int = DEMO_EVENTS, seed: int = 7
                       ) -> list[Callable[[Engine], Awaitable[None]]]:
    """Hooks for `rta serve --demo`: fill an empty store, then keep demo events flowing.

    The initial load goes straight into sealed segments via the bulk loader (about a second
    for 200k events) before the server accepts requests; the trickle then goes through
    `engine.ingest`, so live views, alerts and WebSocket streams see it like real traffic.
    The trickle continues the history at the history's own rate (`hourly_rates`: a few
    events a minute at night, a few times more in the afternoon), not faster, so charts
    have no spike at "now".
    """

    async def load_and_trickle(engine: Engine) -> None:
        import trio

        from rta.core.demo import generate_arrow, hourly_rates
        from rta.core.embedded.store.bulk import load_table

        now = int(time.time() * 1000)
        # (the same history on a restart, generated again: its rates pace the trickle)
        table = await trio.to_thread.run_sync(lambda: generate_arrow(
            max(events, 1), users=DEMO_USERS, days=DEMO_DAYS, seed=seed, end_ms=now))
        if engine.store.stats()["events"] == 0 and events > 0:
            # Synchronous on purpose: nothing else touches the store before serving starts.
            result = load_table(engine.store, table, limits=engine.validator.limits, now=now)
            message(f"demo: loaded {result.accepted:,} events in {result.seconds:.2f}s")
        from rta.core.dashboards import create_from_template, list_dashboards

        if not list_dashboards(engine):  # a new user lands on a moving dashboard at once
            board = create_from_template(engine, {"template": "overview"})
            message(f"demo: created dashboard {board['name']!r} from the overview template")
        rates = hourly_rates(table, now)
        pool = await trio.to_thread.run_sync(lambda: generate_arrow(
            20_000, users=DEMO_USERS, days=1, seed=seed + 1, end_ms=now))
        engine.add_background(lambda: trickle(engine, pool, rates))

    return [load_and_trickle]


async def trickle(engine: Engine, pool: pa.Table, rates: Any) -> None:
    """Replay demo events from `pool`, stamped now (new ids), at `rates[hour of day]` events
    a second (`trickle_pace`); the first goes out at once, so live views move from the start.
    """
    import trio

    from rta.core.demo import table_events, trickle_pace
    from rta.core.errors import RtaError

    events = list(table_events(pool))
    i = 0
    owed = 1.0
    while True:
        now = int(time.time() * 1000)
        count, owed = trickle_pace(rates, now, owed)
        batch = []
        for _ in range(count):
            event = dict(events[i % len(events)])
            i += 1
            event.pop("id")
            event["timestamp"] = now
            batch.append(event)
        if batch:
            valid, _rejected = engine.validator.validate_batch(batch, now=now)
            try:
                await engine.ingest(valid)
            except RtaError as exc:  # e.g. disk full: keep the daemon up, try again later
                log.warning("demo trickle: %s", exc.message)
        await trio.sleep(1.0)


def register(app: typer.Typer) -> None:
    """Add `rta demo ...`."""
    app.add_typer(demo_app, name="demo")
