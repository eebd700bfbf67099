"""`python -m bench export`: streamed export to CSV and Parquet next to DuckDB's COPY.

Builds N demo events into a sealed on-disk store and the same table into DuckDB (native
table, 2 threads), then writes every event to a file in each format: ours through
`rta.core.export` (the exact code path of POST /export, minus the socket), DuckDB's with
`COPY events TO ...`. Same columns on both sides (the generated table's). Reports rows/s and
the peak anonymous RSS added while exporting (sampled every 5 ms; mapped segment pages are
page cache, not held memory, so they are left out), with ratios from the same run.
Targets: Parquet rows/s >= DuckDB's, CSV >= 0.5x; our peak extra RSS < 256 MiB.
"""

from __future__ import annotations

import argparse
import gc
import os
import tempfile
import threading
import time
from collections.abc import Callable

from bench.common import (
    anon_rss_bytes,
    build_store,
    duckdb_from_table,
    fmt_count,
    fmt_seconds,
    generate_events,
    print_table,
)
from rta.core.export import Export, parse_export


class PeakRss:
    """Samples this process's RSS in a thread; `extra` is the peak over the starting value."""

    def __init__(self, interval: float = 0.005) -> None:
        self.interval = interval
        self.base = anon_rss_bytes()
        self.peak = self.base
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, anon_rss_bytes())
            time.sleep(self.interval)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, anon_rss_bytes())

    @property
    def extra(self) -> int:
        return self.peak - self.base


def measure(fn: Callable[[], object], repeat: int) -> tuple[float, int]:
    """Best wall time and the largest peak extra RSS over `repeat` runs."""
    best, extra = float("inf"), 0
    for _ in range(repeat):
        gc.collect()
        with PeakRss() as rss:
            t0 = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - t0)
        extra = max(extra, rss.extra)
    return best, extra


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench export")
    parser.add_argument("--events", type=lambda s: int(s.replace("_", "")), default=10_000_000)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--formats", default="csv,parquet")
    args = parser.parse_args(argv)

    table = generate_events(args.events, users=args.users, days=args.days)
    n = table.num_rows
    columns = table.column_names
    rows = []
    with tempfile.TemporaryDirectory(prefix="rta-bench-export-") as tmp:
        store = build_store(table, os.path.join(tmp, "data"))
        con = duckdb_from_table(table)
        del table
        try:
            snap = store.snapshot()
            for fmt in args.formats.split(","):
                ours_path = os.path.join(tmp, f"ours.{fmt}")
                theirs_path = os.path.join(tmp, f"duckdb.{fmt}")
                spec = parse_export({"format": fmt, "fields": columns})

                def ours(spec: object = spec, path: str = ours_path) -> None:
                    ex = Export(snap, spec)  # type: ignore[arg-type]
                    with open(path, "wb") as f:
                        ex.write_to(f)
                    assert ex.rows_written == n

                option = "(HEADER)" if fmt == "csv" else "(FORMAT PARQUET)"

                def theirs(path: str = theirs_path, option: str = option) -> None:
                    con.execute(f"COPY events TO '{path}' {option}")

                t_ours, rss_ours = measure(ours, args.repeat)
                t_theirs, rss_theirs = measure(theirs, args.repeat)
                size_ours = os.path.getsize(ours_path)
                size_theirs = os.path.getsize(theirs_path)
                rows.append({
                    "format": fmt,
                    "rta": f"{fmt_seconds(t_ours)} ({fmt_count(n / t_ours)} rows/s)",
                    "duckdb COPY": f"{fmt_seconds(t_theirs)} ({fmt_count(n / t_theirs)} rows/s)",
                    "rows/s ratio": f"{t_theirs / t_ours:.2f}x",
                    "rta peak extra RSS": f"{rss_ours / 2**20:.0f} MiB",
                    "duckdb peak extra RSS": f"{rss_theirs / 2**20:.0f} MiB",
                    "file MB (rta / duckdb)": f"{size_ours / 1e6:.0f} / {size_theirs / 1e6:.0f}",
                })
                os.remove(ours_path)
                os.remove(theirs_path)
        finally:
            con.close()
            store.close()
    print_table(f"export of {fmt_count(n)} events (rows/s ratio = rta / duckdb; "
                "targets: parquet >= 1x, csv >= 0.5x, RSS < 256 MiB)", rows)
    return 0
