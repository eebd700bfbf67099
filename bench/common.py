"""Shared benchmark helpers: deterministic data, stores, DuckDB yardsticks, timing, output.

Every bench module measures our figure and DuckDB's on the same data in the same run, so the
helpers here make both sides cheap to set up. Generated tables are cached under `bench/data/`
(gitignored) as Arrow IPC files keyed by their parameters, so repeated runs skip generation.
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.ipc as ipc

from rta.core.embedded.store import ColumnStore, StoreConfig
from rta.core.queries.timeparse import DAY

DATA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")


def data_end_ms() -> int:
    """End of generated data: the start of the current UTC hour.

    Recent enough that "last 24h/7d" windows are meaningful, stable enough (per hour) that the
    cache is reused across a benchmark session.
    """
    hour = 3_600_000
    return int(time.time() * 1000) // hour * hour


def generate_events(n: int, users: int = 100_000, days: int = 30, seed: int = 1) -> pa.Table:
    """`n` demo events (see rta.core.demo) ending at `data_end_ms()`, cached on disk.

    Columns: id, type, userId, sessionId, timestamp (int64 ms), and `properties.<key>` per
    property (in DuckDB SQL quote them: "properties.page").
    """
    from rta.core.demo import generate_arrow

    end = data_end_ms()
    os.makedirs(DATA_DIR, exist_ok=True)
    path = os.path.join(DATA_DIR, f"events-n{n}-u{users}-d{days}-s{seed}-e{end}.arrow")
    if os.path.exists(path):
        with pa.memory_map(path, "r") as source:
            return ipc.open_file(source).read_all()
    table = generate_arrow(n, users=users, days=days, seed=seed, end_ms=end)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f, ipc.new_file(f, table.schema) as writer:
        writer.write_table(table)
    os.replace(tmp, path)
    _prune_cache(keep=path)
    return table


def _prune_cache(keep: str) -> None:
    """Drop cached files from earlier hours so bench/data/ does not grow without bound."""
    stale = int(time.time() * 1000) - 2 * DAY
    for name in os.listdir(DATA_DIR):
        full = os.path.join(DATA_DIR, name)
        if full != keep and name.startswith("events-") and name.endswith(".arrow"):
            try:
                end = int(name.rsplit("-e", 1)[1].split(".")[0])
            except (IndexError, ValueError):
                continue
            if end < stale:
                os.remove(full)


def build_store(table: pa.Table, data_dir: str) -> ColumnStore:
    """A ColumnStore in `data_dir` holding `table`, bulk loaded, everything in sealed segments.

    The caller owns the store (it holds the directory lock): call `store.close()` when done.
    """
    from rta.core.embedded.store.bulk import bulk_load

    store = ColumnStore(data_dir, StoreConfig(fsync=False))
    bulk_load(store, table)
    if store.stats()["headEvents"]:
        job = store.begin_seal()
        store.run_seal(job)
        store.finish_seal(job)
    return store


def duckdb_from_table(table: pa.Table) -> Any:
    """An in-memory DuckDB connection (2 threads) with `table` loaded as native table `events`.

    Loaded into DuckDB's own storage (not a view over Arrow) so the yardstick is DuckDB at its
    best. Property columns keep their dotted names: `SELECT "properties.page" FROM events`.
    """
    import duckdb

    con = duckdb.connect()
    con.execute("SET threads TO 2")
    con.register("events_arrow", table)
    con.execute("CREATE TABLE events AS SELECT * FROM events_arrow")
    con.unregister("events_arrow")
    return con


def dataset_and_duckdb(args: argparse.Namespace) -> tuple[pa.Table, int, Any]:
    """The synthetic events `dataset_args` asked for, the end of their range (the newest
    timestamp + 1 ms), and a DuckDB connection with them loaded: every query bench's setup."""
    table = generate_events(args.events, users=args.users, days=args.days)
    end = int(table.column("timestamp").to_numpy().max()) + 1
    return table, end, duckdb_from_table(table)


def fetch_all(con: Any, sql: str) -> Any:
    """Every row of one DuckDB query: the yardstick call the benches time."""
    return con.execute(sql).fetchall()


def best_of(fn: Callable[[], Any], repeat: int = 5) -> float:
    """Best wall time in seconds of `repeat` calls (GC collected before, disabled during)."""
    best = float("inf")
    for _ in range(repeat):
        gc.collect()
        gc.disable()
        try:
            t0 = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - t0)
        finally:
            gc.enable()
    return best


def ratio(ours: float, theirs: float) -> str:
    """`ours / theirs` formatted for a table (for timings: < 1 means we are faster)."""
    if not theirs:
        return "-"
    return f"{ours / theirs:.2f}x"


def fmt_seconds(s: float) -> str:
    if s < 1e-3:
        return f"{s * 1e6:.0f} µs"
    if s < 1:
        return f"{s * 1e3:.1f} ms"
    return f"{s:.2f} s"


def fmt_count(x: float) -> str:
    if x >= 1e6:
        return f"{x / 1e6:.2f}M"
    if x >= 1e3:
        return f"{x / 1e3:.1f}k"
    return f"{x:.0f}"


def print_table(title: str, rows: Sequence[Sequence[Any]] | Sequence[dict[str, Any]]) -> None:
    """Print one benchmark table. `rows` are dicts (keys = headers) or sequences whose first
    row is the header. Uses rich when available, plain aligned text otherwise."""
    if not rows:
        print(f"{title}: (no rows)")
        return
    if isinstance(rows[0], dict):
        header = list(rows[0].keys())
        body = [[str(r.get(h, "")) for h in header] for r in rows]  # type: ignore[union-attr]
    else:
        header = [str(c) for c in rows[0]]
        body = [[str(c) for c in r] for r in rows[1:]]
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:  # pragma: no cover - rich is a dependency
        widths = [max(len(h), *(len(r[i]) for r in body)) for i, h in enumerate(header)]
        print(title)
        print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
        for r in body:
            print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
        return
    tbl = Table(title=title)
    for h in header:
        tbl.add_column(h)
    for r in body:
        tbl.add_row(*r)
    Console(file=sys.stdout, width=max(160, 24 * len(header))).print(tbl)


def anon_rss_bytes() -> int:
    """Anonymous resident memory (heap, buffers): RSS without file-backed pages such as the
    memory-mapped segments, which are reclaimable page cache rather than memory we hold."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return rss_bytes()


def rss_bytes() -> int:
    """Current resident set size of this process (falls back to peak RSS)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def dataset_args(prog: str, doc: str | None, repeat: int, requests: int | None, *,
                 events: int = 10_000_000, users: int = 100_000) -> argparse.ArgumentParser:
    """The argument parser every dataset benchmark shares (size, users, days, repeats, and
    HTTP requests unless `requests` is None)."""
    ap = argparse.ArgumentParser(prog=prog, description=doc)
    ap.add_argument("--events", type=lambda s: int(s.replace("_", "")), default=events)
    ap.add_argument("--users", type=int, default=users)
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--repeat", type=int, default=repeat)
    if requests is not None:
        ap.add_argument("--requests", type=int, default=requests)
    return ap


def http_latency(engine: Any, method: str, path: str, payload: dict[str, Any],
                 requests: int, warmup: int = 3) -> tuple[float, float]:
    """(p50, p99) seconds of `method path` (GET params or POST JSON) against a real hypercorn
    server over `engine`, after `warmup` unmeasured requests."""
    import statistics
    from functools import partial

    import httpx
    import trio

    from rta.daemon import serve_app

    samples: list[float] = []

    async def run() -> None:
        async with trio.open_nursery() as nursery:
            done = trio.Event()
            binds = await nursery.start(partial(serve_app, engine, "127.0.0.1", 0, False,
                                                done.wait))
            async with httpx.AsyncClient(base_url=binds[0], timeout=60) as client:
                for i in range(requests + warmup):
                    t0 = time.perf_counter()
                    if method == "GET":
                        r = await client.get(path, params=payload)
                    else:
                        r = await client.post(path, json=payload)
                    elapsed = time.perf_counter() - t0
                    r.raise_for_status()
                    if i >= warmup:
                        samples.append(elapsed)
            done.set()

    trio.run(run)
    samples.sort()
    return statistics.median(samples), samples[min(len(samples) - 1,
                                                   int(len(samples) * 0.99))]
