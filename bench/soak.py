"""Soak: sustained mixed ingest, queries and WebSocket clients against a real `rta serve`.

`python -m bench soak --minutes 5 [--ingest-threads 2] [--query-threads 2] [--ws-clients 50]`
prints throughput, p50/p99 latencies per workload, the daemon's RSS over time, total and
anonymous (the anonymous bytes per stored event must stay flat: the last third within 15% of
the middle third, since the store itself grows with what is ingested), and error counts
(must be zero). Exit status 1 when either check fails. The yardstick here is the server itself over
time, not DuckDB: a soak is about drift, not speed.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import trio
from trio_websocket import open_websocket_url

from bench.common import print_table

QUERIES: list[tuple[str, str, dict[str, Any]]] = [
    ("GET", "/analytics/count", {"groupBy": "type", "startTime": "last_1h"}),
    ("POST", "/analytics/aggregate", {"eventType": "pageview", "metric": "duration",
                                      "interval": "1m", "startTime": "last_1h"}),
    ("GET", "/analytics/unique-users", {"startTime": "last_1h"}),
    ("GET", "/analytics/top", {"property": "page", "n": 10}),
    ("POST", "/queries/funnel", {"steps": [{"eventType": "pageview"}, {"eventType": "click"},
                                           {"eventType": "purchase"}], "timeLimit": 600000}),
    ("GET", "/events", {"limit": 50}),
]


def rss_kib(pid: int) -> tuple[int, int]:
    """(total RSS, anonymous RSS) in KiB. Mapped segment files count in the total as they
    are read, but they are page cache; a leak shows in the anonymous part."""
    total = anon = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                total = int(line.split()[1])
            elif line.startswith("RssAnon:"):
                anon = int(line.split()[1])
    return total, anon


class Recorder:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.latencies: dict[str, list[float]] = {}
        self.errors: dict[str, int] = {}
        self.events = 0

    def ok(self, kind: str, seconds: float) -> None:
        with self.lock:
            self.latencies.setdefault(kind, []).append(seconds)

    def error(self, kind: str, what: str) -> None:
        with self.lock:
            key = f"{kind}: {what[:80]}"
            self.errors[key] = self.errors.get(key, 0) + 1


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def ingest_worker(url: str, rec: Recorder, stop: threading.Event, seed: int) -> None:
    from rta.core.demo import iter_demo_events

    source = itertools.cycle(list(iter_demo_events(50_000, seed=seed)))
    with httpx.Client(base_url=url, timeout=30) as client:
        while not stop.is_set():
            batch = [next(source) for _ in range(500)]
            for e in batch:
                e["timestamp"] = int(time.time() * 1000)
                e.pop("id", None)
            started = time.perf_counter()
            try:
                r = client.post("/events/batch", json=batch)
            except httpx.HTTPError as exc:
                rec.error("ingest", type(exc).__name__)
                continue
            if r.status_code == 202:
                rec.ok("ingest batch", time.perf_counter() - started)
                with rec.lock:
                    rec.events += len(batch)
            else:
                rec.error("ingest", f"{r.status_code} {r.text}")


def query_worker(url: str, rec: Recorder, stop: threading.Event) -> None:
    with httpx.Client(base_url=url, timeout=60) as client:
        i = 0
        while not stop.is_set():
            method, path, params = QUERIES[i % len(QUERIES)]
            i += 1
            started = time.perf_counter()
            try:
                r = (client.get(path, params=params) if method == "GET"
                     else client.post(path, json=params))
            except httpx.HTTPError as exc:
                rec.error(path, type(exc).__name__)
                continue
            if r.status_code == 200:
                rec.ok(path, time.perf_counter() - started)
            else:
                rec.error(path, f"{r.status_code} {r.text}")


def ws_clients(url: str, count: int, rec: Recorder, stop: threading.Event) -> None:
    ws_url = url.replace("http://", "ws://") + "/ws"

    async def client() -> None:
        try:
            async with open_websocket_url(ws_url) as ws:
                await ws.get_message()
                await ws.send_message(json.dumps({"type": "subscribe", "channel": "metrics"}))
                while not stop.is_set():
                    with trio.move_on_after(1):
                        msg = json.loads(await ws.get_message())
                        if msg["type"] == "metrics":
                            lag = time.time() * 1000 - msg["timestamp"]
                            rec.ok("ws tick lag", max(lag, 0) / 1000)
        except Exception as exc:  # counted, the soak goes on
            rec.error("websocket", f"{type(exc).__name__}: {exc}")

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            for _ in range(count):
                nursery.start_soon(client)

    trio.run(main)


def start_daemon(data_dir: str) -> tuple[subprocess.Popen[bytes], str, Any]:
    log = open(os.path.join(os.path.dirname(data_dir), "soak-serve.log"), "wb")  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, "-m", "rta", "serve", "--port", "0",
                             "--data-dir", data_dir], stdout=log, stderr=log)
    for _ in range(400):
        time.sleep(0.05)
        with open(log.name, "rb") as f:
            found = re.findall(rb"listening on (http://\S+?)(?:,|\s)", f.read())
        if found:
            return proc, found[0].decode(), log
    raise RuntimeError("rta serve did not start")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench soak")
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--ingest-threads", type=int, default=2)
    parser.add_argument("--query-threads", type=int, default=2)
    parser.add_argument("--ws-clients", type=int, default=50)
    args = parser.parse_args(argv)
    workdir = tempfile.mkdtemp(prefix="rta-soak-")
    proc, url, log = start_daemon(os.path.join(workdir, "data"))
    rec = Recorder()
    stop = threading.Event()
    workers: list[threading.Thread] = []

    def spawn(fn: Callable[..., None], *a: Any) -> None:
        t = threading.Thread(target=fn, args=a, daemon=True)
        t.start()
        workers.append(t)

    for k in range(args.ingest_threads):
        spawn(ingest_worker, url, rec, stop, k + 1)
    for _ in range(args.query_threads):
        spawn(query_worker, url, rec, stop)
    spawn(ws_clients, url, args.ws_clients, rec, stop)
    samples: list[tuple[float, int, int, int]] = []  # (t, total KiB, anon KiB, events)
    started = time.monotonic()
    deadline = started + args.minutes * 60
    try:
        while time.monotonic() < deadline:
            time.sleep(min(5.0, max(0.1, deadline - time.monotonic())))
            total, anon = rss_kib(proc.pid)
            samples.append((time.monotonic() - started, total, anon, rec.events))
            print(f"  t={samples[-1][0]:6.0f}s rss={total / 1024:7.1f} MiB "
                  f"anon={anon / 1024:7.1f} MiB events={rec.events:,}", file=sys.stderr,
                  flush=True)
    finally:
        stop.set()
        for t in workers:
            t.join(10)
        proc.terminate()
        proc.wait(30)
        log.close()
    elapsed = samples[-1][0] if samples else 0.0
    rows: list[list[Any]] = [["ingest", f"{rec.events / max(elapsed, 1e-9):,.0f} events/s", "",
                              ""]]
    for kind, values in sorted(rec.latencies.items()):
        rows.append([kind, f"{len(values):,} ok", f"p50 {percentile(values, 0.5) * 1000:.1f} ms",
                     f"p99 {percentile(values, 0.99) * 1000:.1f} ms"])
    # The store grows as events arrive, so memory is judged per stored event: anonymous
    # bytes per event in the last third against the middle third (a leak grows it).
    third = max(1, len(samples) // 3)

    def per_event(part: list[tuple[float, int, int, int]]) -> float:
        return sum(s[2] * 1024 / max(s[3], 1) for s in part) / len(part)

    middle = samples[third:2 * third] or samples
    last = samples[-third:]
    growth = per_event(last) / max(per_event(middle), 1e-9) - 1
    step = max(1, len(samples) // 8)
    rows.append(["RSS total (incl. mapped segments)",
                 " -> ".join(f"{s[1] / 1024:.0f}" for s in samples[::step]) + " MiB", "", ""])
    rows.append(["RSS anonymous", " -> ".join(f"{s[2] / 1024:.0f}" for s in samples[::step])
                 + " MiB", f"{per_event(last):.0f} B/event (middle {per_event(middle):.0f})",
                 f"{growth * 100:+.1f}% " + ("flat" if growth < 0.15 else "GROWS")])
    errors = sum(rec.errors.values())
    rows.append(["errors", str(errors), "", "; ".join(list(rec.errors)[:3])])
    print_table(f"soak: {args.minutes:g} min, {args.ingest_threads} ingest + "
                f"{args.query_threads} query threads, {args.ws_clients} WebSocket clients",
                [["workload", "throughput", "p50", "p99"], *rows])
    return 0 if errors == 0 and growth < 0.15 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
