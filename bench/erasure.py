"""`python -m bench erasure`: erase one active person from a stored data set (#18 part 5).

The demo data set (10M events, 100k users by default) is bulk loaded into a data directory
and served by a real `rta serve` process. After a warm-up query, the most active user is
erased with `DELETE /persons/{id}` while a thread asks `/health` as fast as it answers; the
table shows the erasure's wall time, its receipt, and /health's latency during it. The
yardstick: DuckDB deleting the same user's rows from a native table of the same events in
the same run (`DELETE FROM events WHERE userId = ?`; DuckDB marks rows deleted and leaves
its strings to a later checkpoint, so it does less than an erasure to disk does).
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

import httpx
import numpy as np
import pyarrow.compute as pc

from bench.common import (
    build_store,
    dataset_args,
    duckdb_from_table,
    fmt_count,
    fmt_seconds,
    generate_events,
    print_table,
    ratio,
)


def serve(data_dir: str, log_path: str) -> tuple[subprocess.Popen[bytes], str]:
    """`rta serve` on `data_dir` (port 0, no auth on loopback); its process and URL."""
    log = open(log_path, "ab")  # noqa: SIM115 (the child writes it)
    proc = subprocess.Popen([sys.executable, "-m", "rta", "serve", "--port", "0",
                             "--data-dir", data_dir], stdout=log, stderr=log)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        with open(log_path, "rb") as f:
            found = re.findall(r"listening on (http://\S+?)(?:,|\s)", f.read().decode())
        if found:
            return proc, found[-1]
        if proc.poll() is not None:
            with open(log_path) as f:
                raise RuntimeError(f.read())
        time.sleep(0.1)
    proc.kill()
    raise TimeoutError("rta serve did not start")


def victims(table: Any) -> list[tuple[str, str, int]]:
    """(label, user, events): an active person (the 99th percentile of events per user)
    and the most active one (the demo's heaviest user, the worst case)."""
    counts = pc.value_counts(table.column("userId").combine_chunks())
    values = counts.field("values").to_pylist()
    n = counts.field("counts").to_numpy()
    keep = np.flatnonzero(np.array([v is not None for v in values]))
    order = keep[np.argsort(n[keep], kind="stable")]
    active = int(order[int(len(order) * 0.99)])
    top = int(order[-1])
    return [("active (p99)", str(values[active]), int(n[active])),
            ("most active", str(values[top]), int(n[top]))]


def erase_with_health(url: str, user: str) -> tuple[float, dict[str, Any], list[float]]:
    """DELETE /persons/{user} while a thread asks /health: (wall seconds, receipt, /health
    latencies)."""
    latencies: list[float] = []
    stop = threading.Event()

    def poll() -> None:
        with httpx.Client(base_url=url, timeout=60) as h:
            while not stop.is_set():
                s = time.perf_counter()
                r = h.get("/health")
                latencies.append(time.perf_counter() - s)
                if r.status_code != 200:
                    print(f"/health answered {r.status_code}", file=sys.stderr)
                time.sleep(0.01)

    poller = threading.Thread(target=poll)
    poller.start()
    try:
        time.sleep(0.3)
        with httpx.Client(base_url=url, timeout=600) as http:
            t0 = time.perf_counter()
            r = http.delete(f"/persons/{user}")
            erased = time.perf_counter() - t0
    finally:
        stop.set()
        poller.join()
    r.raise_for_status()
    return erased, r.json(), sorted(latencies)


def main(argv: list[str] | None = None) -> None:
    ap = dataset_args("python -m bench erasure", __doc__, repeat=1, requests=None)
    args = ap.parse_args(argv)
    table = generate_events(args.events, users=args.users, days=args.days)
    people = victims(table)
    rows: list[list[str]] = [["measure", "rta", "DuckDB", "rta/DuckDB"]]
    results = []
    with tempfile.TemporaryDirectory(prefix="rta-bench-erasure-") as tmp:
        data = os.path.join(tmp, "data")
        t0 = time.perf_counter()
        build_store(table, data).close()
        loaded = time.perf_counter() - t0
        proc, url = serve(data, os.path.join(tmp, "serve.log"))
        try:
            with httpx.Client(base_url=url, timeout=600) as http:
                ts = table.column("timestamp")
                params = {"type": "pageview", "startTime": str(pc.min(ts).as_py()),
                          "endTime": str(pc.max(ts).as_py())}
                before = http.get("/analytics/unique-users", params=params).json()
                for _label, user, _n in people:
                    results.append(erase_with_health(url, user))
                after = http.get("/analytics/unique-users", params=params).json()
        finally:
            proc.terminate()
            proc.wait(60)
        on_disk = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(data)
                      for f in fs)
    con = duckdb_from_table(table)
    for (label, user, n), (erased, receipt, lat) in zip(people, results, strict=True):
        t0 = time.perf_counter()
        con.execute("DELETE FROM events WHERE userId = ?", [user])
        duck = time.perf_counter() - t0
        if receipt["eventsRemoved"] != n:
            print(f"erasure: removed {receipt['eventsRemoved']} of {n} events",
                  file=sys.stderr)
        rows += [
            [f"erase {label}: {n:,} events (DELETE, wall)", fmt_seconds(erased),
             fmt_seconds(duck), ratio(erased, duck)],
            ["  receipt: events removed, segments rewritten, took",
             f"{receipt['eventsRemoved']:,}, {receipt['segmentsRewritten']}, "
             f"{fmt_seconds(receipt['tookMs'] / 1000)}", "-", "-"],
            ["  phases: cut, work, swap, finish (cut, swap on the loop)",
             ", ".join(fmt_seconds(receipt["phasesMs"].get(p, 0) / 1000)
                       for p in ("cut", "work", "swap", "finish")), "-", "-"],
            ["  /health meanwhile: requests, p50, p99, max",
             f"{len(lat)}, {fmt_seconds(statistics.median(lat))}, "
             f"{fmt_seconds(lat[int(len(lat) * 0.99)])}, {fmt_seconds(lat[-1])}"
             if lat else "-", "-", "-"]]
    rows += [["unique users (pageview, whole range) before -> after",
              f"{before['uniqueUsers']:,} -> {after['uniqueUsers']:,}", "-", "-"],
             ["bulk load (setup)", fmt_seconds(loaded), "-", "-"],
             ["data dir after", f"{on_disk / 2**20:.0f} MiB", "-", "-"]]
    print_table(f"Erasure of one person from {fmt_count(args.events)} stored events, "
                f"{args.users:,} users", rows)


if __name__ == "__main__":
    main(sys.argv[1:])
