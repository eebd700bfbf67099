"""`python -m bench ingest`: how fast events get in, and what they cost to keep.

Measured in one run, next to yardsticks on the same data:
- in-process bulk append (`rta.core.embedded.store.bulk.load_table`, fsync on) of N demo events:
  events/s, bytes per event on disk and in RAM (the RSS growth of a fresh process that opens
  the store and runs a query mix over all of it), for the demo shape (20 property keys,
  client-sent UUIDs) and the standard shape (3 properties, server-generated ids); DuckDB's
  CREATE TABLE from the same Arrow table and its in-memory bytes per event;
- HTTP batch ingest into a real `rta serve` process (1,000-event JSON batches, 4 concurrent
  clients, fsync before ack): events/s, batch latency p50/p99, and the server's CPU time
  per event (all threads: a figure the machine's other load moves far less than rates);
- Arrow IPC stream batches (5,000 events, lz4) from one client: events/s and CPU/event (this
  and the JSON batches after one warm-up batch, outside the measure);
- one NDJSON file four ways: `rta ingest FILE` to a fresh daemon as Arrow and as JSON
  batches (wall rate, the daemon's CPU per event and RSS growth per event),
  `rta ingest --local`, and DuckDB's read_json;
- single-event POST /events requests/s next to a bare ASGI app served by the same hypercorn
  trio worker (the ceiling), measured by the same client in alternating rounds of one run;
- `rta ingest --local` of an NDJSON file (a real CLI process) and `bulk_load_ndjson`
  in-process, next to pyarrow's JSON reader alone and DuckDB's read_json of the same file.

`--events N` scales the bulk append (default 10M); the other parts scale from it.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pyarrow as pa

from bench.common import (
    DATA_DIR,
    data_end_ms,
    fmt_count,
    fmt_seconds,
    generate_events,
    print_table,
    ratio,
)

# The standard shape: time, type, user, session and three properties; ids are the
# server's (as when clients send none), so they are generated, not read from the table.
STANDARD = ["type", "userId", "sessionId", "timestamp", "properties.page",
            "properties.referrer", "properties.duration"]
RAM_PROBE = """
import json, sys
import numpy, pyarrow  # (in the baseline: every process that queries loads them)
from rta.daemon import tune_malloc
tune_malloc()  # (as rta serve does)
from rta.core.queries import analytics
from rta.core.config import EngineConfig
from rta.core.engine import Engine

def rss():
    with open("/proc/self/status") as f:
        fields = dict(line.split(":", 1) for line in f)
    return int(fields["VmRSS"].split()[0]) * 1024

base = rss()
engine = Engine(EngineConfig(data_dir=sys.argv[1], fsync=False, cache_ttl_ms=0))
opened = rss()
blocks = engine.store.snapshot().blocks
start, end = min(b.min_ts for b in blocks), max(b.max_ts for b in blocks)
span = {"startTime": start, "endTime": end}
for fn, params in [
        (analytics.run_count, {"groupBy": "type"}),
        (analytics.run_aggregate, {"interval": 3_600_000, **span}),
        (analytics.run_unique_users, span),
        (analytics.run_top, {"property": "page", "n": 10, **span}),
        (analytics.run_aggregate, {"metric": "duration", "aggregation": "p95",
                                   "interval": 86_400_000, **span})]:
    fn(engine, params)
queried = rss()
print(json.dumps({"events": engine.store.stats()["events"], "opened": opened - base,
                  "queried": queried - base, "cache": engine.store.column_cache.bytes}))
engine.close()
"""
BARE_APP = """
import sys, trio
from hypercorn.trio import serve
from rta.daemon import hypercorn_config

async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 202,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", b"10")]})
    await send({"type": "http.response.body", "body": b'{"id":"x"}'})

async def main():
    cfg = hypercorn_config("127.0.0.1", int(sys.argv[1]))
    await serve(app, cfg)

trio.run(main)
"""


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench ingest")
    parser.add_argument("--events", type=int, default=10_000_000,
                        help="events for the in-process bulk append (default 10M)")
    parser.add_argument("--file-events", type=int, default=1_000_000,
                        help="events in the NDJSON file (default 1M, at most --events)")
    parser.add_argument("--http-events", type=int, default=400_000,
                        help="events sent as HTTP batches (default 400k, at most --events)")
    parser.add_argument("--seconds", type=float, default=5.0,
                        help="duration of each single-event POST run")
    parser.add_argument("--cli-events", type=int, default=1_000_000,
                        help="events in the file `rta ingest` sends to a daemon (default "
                        "1M, at most --events)")
    parser.add_argument("--skip", default="", help="comma list of parts to skip: "
                        "bulk,http,arrow,cli,single,file")
    args = parser.parse_args(argv)
    skip = set(filter(None, args.skip.split(",")))
    rows: list[list[str]] = [["measure", "rta", "yardstick (same data, same run)",
                              "rta vs yardstick", "target"]]
    tmp = tempfile.mkdtemp(prefix="rta-bench-ingest-")
    try:
        if "bulk" not in skip:
            rows += bench_bulk(args.events, tmp)
        if "http" not in skip:
            rows += bench_http_batches(min(args.http_events, args.events), tmp)
        if "arrow" not in skip:
            rows += bench_arrow_batches(min(args.http_events, args.events), tmp)
        if "cli" not in skip:
            rows += bench_cli_to_daemon(min(args.cli_events, args.events), tmp)
        if "single" not in skip:
            rows += bench_single(args.seconds, tmp)
        if "file" not in skip:
            rows += bench_file(min(args.file_events, args.events), tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print_table(f"ingest ({os.cpu_count()} CPUs)", rows)
    return 0


# -- in-process bulk append ----------------------------------------------------------------


def _load(table: pa.Table, data_dir: str) -> tuple[float, dict[str, Any]]:
    """(seconds, store stats) of a bulk load into a new store."""
    from rta.core.embedded.store import ColumnStore, StoreConfig
    from rta.core.embedded.store.bulk import load_table

    gc.collect()
    store = ColumnStore(data_dir, StoreConfig(fsync=True))
    started = time.perf_counter()
    result = load_table(store, table)
    seconds = time.perf_counter() - started
    assert result.accepted == table.num_rows, (result.accepted, len(result.rejected))
    stats = store.stats()
    dict_bytes = sum(os.path.getsize(os.path.join(data_dir, "dicts", f))
                     for f in os.listdir(os.path.join(data_dir, "dicts")))
    stats["dictBytes"] = dict_bytes
    store.close()
    return seconds, stats


def _ram(data_dir: str) -> dict[str, int]:
    """RSS growth of a fresh process that opens the store, then runs a query mix over all
    of it (counts by type, hourly series, unique users, top pages, daily p95)."""
    out = subprocess.run([sys.executable, "-c", RAM_PROBE, data_dir], capture_output=True,
                         text=True, check=True)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def _duckdb_load(table: pa.Table) -> tuple[float, int]:
    """(seconds to CREATE TABLE from Arrow, DuckDB's in-memory bytes)."""
    import duckdb

    con = duckdb.connect()
    con.execute("SET threads TO 2")
    con.register("src", table)
    started = time.perf_counter()
    con.execute("CREATE TABLE events AS SELECT * FROM src")
    seconds = time.perf_counter() - started
    con.execute("CHECKPOINT")
    used = con.execute("SELECT sum(memory_usage_bytes) FROM duckdb_memory()").fetchone()
    con.close()
    return seconds, int(used[0] or 0) if used else 0


def _duckdb_read_json(path: str) -> float:
    """Seconds for DuckDB (2 threads) to load an NDJSON file into a native table: the
    yardstick of every file-ingest row."""
    import duckdb

    con = duckdb.connect()
    con.execute("SET threads TO 2")
    started = time.perf_counter()
    con.execute(f"CREATE TABLE events AS SELECT * FROM read_json('{path}', "
                "format='newline_delimited')")
    seconds = time.perf_counter() - started
    con.close()
    return seconds


def bench_bulk(n: int, tmp: str) -> list[list[str]]:
    table = generate_events(n)
    rows = []
    for label, tbl in (("demo shape: 20 keys, client UUIDs", table),
                       ("standard shape: 3 props", table.select(STANDARD))):
        data_dir = os.path.join(tmp, "bulk-" + label.split()[0])
        seconds, stats = _load(tbl, data_dir)
        ram = _ram(data_dir)
        duck_s, duck_bytes = _duckdb_load(tbl)
        rate, duck_rate = n / seconds, n / duck_s
        target = label.startswith("standard")
        rows.append([f"bulk append {fmt_count(n)} ({label}) events/s", fmt_count(rate),
                     f"DuckDB CREATE TABLE {fmt_count(duck_rate)}", ratio(duck_s, seconds),
                     ">= 1M/s"])
        on_disk = (int(stats["bytesOnDisk"]) + int(stats["dictBytes"])) / n
        rows.append(["  bytes/event on disk, sealed segments + dictionaries", f"{on_disk:.1f}",
                     "", "", "<= 12" if target else ""])
        rows.append(["  bytes/event in RAM: a fresh process opens the store",
                     f"{ram['opened'] / n:.1f}", "", "", ""])
        rows.append([f"  ... then a query mix over all of it (decoded-column cache "
                     f"{ram['cache'] / 2**20:.0f} MiB)", f"{ram['queried'] / n:.1f}",
                     f"DuckDB table {duck_bytes / n:.1f}", ratio(ram["queried"], duck_bytes),
                     "<= 32" if target else ""])
        shutil.rmtree(data_dir, ignore_errors=True)
        gc.collect()
    return rows


# -- a real daemon -------------------------------------------------------------------------


class Daemon:
    """`rta serve` (or the bare ASGI app) as a subprocess on a free port."""

    def __init__(self, args: list[str], log_path: str) -> None:
        self.log_path = log_path
        self.log = open(log_path, "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=self.log)
        self.url = ""

    def wait_url(self, pattern: str, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with open(self.log_path, "rb") as f:
                m = re.search(pattern, f.read().decode(errors="replace"))
            if m:
                self.url = m.group(1)
                return self.url
            if self.proc.poll() is not None:
                with open(self.log_path) as f:
                    raise RuntimeError(f.read())
            time.sleep(0.05)
        raise TimeoutError("server did not start")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def run_then_stop(daemon: Daemon, run: Callable[[], Awaitable[float]],
                  warm_up: bytes | None = None) -> tuple[float, float]:
    """Run the async client `run` (it answers its own seconds) against `daemon`, then stop
    the daemon: (those seconds, the daemon's CPU seconds meanwhile). `warm_up` is a request
    sent first, outside the measure: the first batch of a kind pays one-off imports (the
    first pyarrow.compute call imports pandas: ~0.4 s of CPU, 2 us an event of a 200k run)."""
    import trio

    try:
        if warm_up is not None:
            async def warm() -> None:
                conn = await RawConnection.open(daemon.url)
                try:
                    await conn.request(warm_up)
                finally:
                    await conn.aclose()

            trio.run(warm)
        cpu = cpu_seconds(daemon.proc.pid)
        seconds = trio.run(run)
        cpu = cpu_seconds(daemon.proc.pid) - cpu
    finally:
        daemon.stop()
    return seconds, cpu


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process (all its threads) has used so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_rta(tmp: str, name: str) -> Daemon:
    data = os.path.join(tmp, name)
    d = Daemon([sys.executable, "-m", "rta", "serve", "--port", "0", "--data-dir", data,
                "--log-format", "text"], os.path.join(tmp, name + ".log"))
    d.wait_url(r"listening on (http://[^\s,]+)")
    return d


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_bare(tmp: str) -> Daemon:
    import httpx

    port = free_port()
    script = os.path.join(tmp, "bare_app.py")
    with open(script, "w") as f:
        f.write(BARE_APP)
    d = Daemon([sys.executable, script, str(port)], os.path.join(tmp, "bare.log"))
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.post(url + "/events", content=b"{}", timeout=1)
            d.url = url
            return d
        except httpx.HTTPError:
            time.sleep(0.05)
    d.stop()
    raise TimeoutError("bare app did not start")


# -- a lean HTTP/1.1 client ----------------------------------------------------------------


class RawConnection:
    """Keep-alive HTTP/1.1 over a trio socket with pre-built requests: far less client CPU
    per request than httpx, so on a 2-core box the server, not the client, is measured."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.buf = b""

    @classmethod
    async def open(cls, url: str) -> RawConnection:
        import trio

        host, port = url.removeprefix("http://").split(":")
        stream = await trio.open_tcp_stream(host, int(port))
        return cls(stream)

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        await self.stream.send_all(raw)
        while b"\r\n\r\n" not in self.buf:
            await self._fill()
        head, _, rest = self.buf.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split()[1])
        headers = {k.strip().lower(): v.strip() for k, _, v in
                   (line.partition(b":") for line in lines[1:])}
        if b"content-length" in headers:
            length = int(headers[b"content-length"])
            while len(rest) < length:
                self.buf = head + b"\r\n\r\n" + rest
                await self._fill()
                head, _, rest = self.buf.partition(b"\r\n\r\n")
            body, self.buf = rest[:length], rest[length:]
        else:  # chunked
            while b"\r\n0\r\n\r\n" not in rest:
                self.buf = head + b"\r\n\r\n" + rest
                await self._fill()
                head, _, rest = self.buf.partition(b"\r\n\r\n")
            body, _, self.buf = rest.partition(b"\r\n0\r\n\r\n")
        return status, body

    async def _fill(self) -> None:
        data = await self.stream.receive_some(65536)
        if not data:
            raise ConnectionError("server closed the connection")
        self.buf += data

    async def aclose(self) -> None:
        await self.stream.aclose()


def post_request(url: str, path: str, body: bytes, kind: str = "application/json") -> bytes:
    host = url.removeprefix("http://")
    return (f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: {kind}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


# -- HTTP batches --------------------------------------------------------------------------


def _bodies(table: pa.Table, size: int) -> list[bytes]:
    from rta.core.demo import table_events

    bodies = []
    batch: list[dict[str, Any]] = []
    for event in table_events(table):
        batch.append(event)
        if len(batch) == size:
            bodies.append(json.dumps(batch, separators=(",", ":")).encode())
            batch = []
    if batch:
        bodies.append(json.dumps(batch, separators=(",", ":")).encode())
    return bodies


def bench_http_batches(n: int, tmp: str, clients: int = 4, size: int = 1000
                       ) -> list[list[str]]:
    import trio

    # Other ids than the bulk data (another seed), ending now so no timestamp is refused.
    table = generate_events(n, users=100_000, days=7, seed=11)
    bodies = _bodies(table, size)
    daemon = start_rta(tmp, "http-batch")
    requests = [post_request(daemon.url, "/events/batch", b) for b in bodies]
    warm_up = post_request(daemon.url, "/events/batch", _bodies(
        generate_events(size, users=1_000, days=7, seed=21), size)[0])
    latencies: list[float] = []
    accepted = 0
    errors = 0

    async def client(queue: list[bytes]) -> None:
        nonlocal accepted, errors
        conn = await RawConnection.open(daemon.url)
        try:
            while queue:
                raw = queue.pop()
                t0 = time.perf_counter()
                status, body = await conn.request(raw)
                latencies.append(time.perf_counter() - t0)
                if status < 300:
                    accepted += json.loads(body).get("accepted", 0)
                else:
                    errors += 1
        finally:
            await conn.aclose()

    async def run() -> float:
        queue = list(reversed(requests))
        started = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for _ in range(clients):
                nursery.start_soon(client, queue)
        return time.perf_counter() - started

    seconds, cpu = run_then_stop(daemon, run, warm_up)
    lat = sorted(latencies)
    p50 = statistics.median(lat)
    p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
    note = f" ({errors} failed)" if errors else ""
    return [
        [f"HTTP batches {fmt_count(n)}: {clients} clients x {size}, fsync; events/s{note}",
         fmt_count(accepted / seconds), "", "", ">= 250k/s"],
        ["  batch latency p50 / p99", f"{fmt_seconds(p50)} / {fmt_seconds(p99)}", "", "",
         "p99 <= 100 ms"],
        ["  server CPU per event, all threads (steadier than rates on a busy box)",
         f"{cpu / max(accepted, 1) * 1e6:.1f} µs", "", "", ""],
    ]


def bench_arrow_batches(n: int, tmp: str, size: int = 5000) -> list[list[str]]:
    """Arrow IPC stream batches (lz4, as `rta ingest` sends them) from one client, one
    request at a time: what the daemon accepts, and its CPU per event."""

    from rta.client.client import ARROW_STREAM, arrow_stream

    table = generate_events(n, users=100_000, days=7, seed=12)
    bodies = [arrow_stream(table.slice(i, size)) for i in range(0, n, size)]
    daemon = start_rta(tmp, "arrow-batch")
    requests = [post_request(daemon.url, "/events/batch", b, ARROW_STREAM) for b in bodies]
    warm_up = post_request(daemon.url, "/events/batch", arrow_stream(
        generate_events(size, users=1_000, days=7, seed=22)), ARROW_STREAM)
    accepted = errors = 0

    async def run() -> float:
        nonlocal accepted, errors
        conn = await RawConnection.open(daemon.url)
        started = time.perf_counter()
        for raw in requests:
            status, body = await conn.request(raw)
            if status < 300:
                accepted += json.loads(body).get("accepted", 0)
            else:
                errors += 1
        seconds = time.perf_counter() - started
        await conn.aclose()
        return seconds

    seconds, cpu = run_then_stop(daemon, run, warm_up)
    note = f" ({errors} failed)" if errors else ""
    return [[f"Arrow batches {fmt_count(n)}: 1 client x {size}, lz4, fsync; events/s{note}",
             fmt_count(accepted / seconds), "", "", ">= 1M/s"],
            ["  server CPU per event, all threads", f"{cpu / max(accepted, 1) * 1e6:.1f} µs",
             "", "", ""]]


def rss_of(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        fields = dict(line.split(":", 1) for line in f)
    return int(fields["VmRSS"].split()[0]) * 1024


def bench_cli_to_daemon(n: int, tmp: str) -> list[list[str]]:
    """One NDJSON file (standard shape), four ways in the same run: `rta ingest FILE` to a
    fresh daemon as Arrow and as JSON batches (a real CLI process each: wall rate, the
    daemon's CPU per event and its RSS growth), `rta ingest --local`, DuckDB read_json."""
    path = ndjson_file(n, standard=True)
    size_mb = os.path.getsize(path) / 1e6
    duck_s = _duckdb_read_json(path)

    data = os.path.join(tmp, "cli-local")
    started = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "rta", "ingest", "--local", "--data-dir", data,
                          path, "--json"], capture_output=True, text=True, check=False)
    local_s = time.perf_counter() - started
    shutil.rmtree(data, ignore_errors=True)
    local_ok = out.returncode == 0
    rows = [[f"rta ingest --local {fmt_count(n)} NDJSON, standard shape ({size_mb:.0f} MB), "
             "events/s", fmt_count(n / local_s) if local_ok else f"failed ({out.returncode})",
             f"DuckDB read_json {fmt_count(n / duck_s)}", ratio(duck_s, local_s), ""]]
    for wire in ("arrow", "json"):
        daemon = start_rta(tmp, f"cli-{wire}")
        try:
            time.sleep(0.5)
            rss0 = rss_of(daemon.proc.pid)
            cpu = cpu_seconds(daemon.proc.pid)
            started = time.perf_counter()
            out = subprocess.run([sys.executable, "-m", "rta", "ingest", path, "--server",
                                  daemon.url, "--json", "--wire", wire],
                                 capture_output=True, text=True, check=False)
            seconds = time.perf_counter() - started
            cpu = cpu_seconds(daemon.proc.pid) - cpu
            rss = rss_of(daemon.proc.pid) - rss0
        finally:
            daemon.stop()
        ok = out.returncode == 0 and json.loads(out.stdout)["accepted"] == n
        rows += [
            [f"rta ingest FILE to a daemon, {wire} batches, events/s",
             fmt_count(n / seconds) if ok else f"failed ({out.returncode}: "
             f"{out.stderr.strip()[-200:]})", f"--local {fmt_count(n / local_s)}",
             f"{local_s / seconds:.2f}x --local", ">= 0.5x --local"],
            ["  daemon CPU per event, all threads", f"{cpu / n * 1e6:.1f} µs", "", "", ""],
            ["  daemon RSS growth per event", f"{rss / n:.1f} B", "", "", "<= 32 B (10M)"]]
    return rows


# -- single events -------------------------------------------------------------------------


def _hammer(url: str, path: str, body: bytes, seconds: float, clients: int = 16) -> float:
    import trio

    count = 0
    raw = post_request(url, path, body)

    async def client(deadline: float) -> None:
        nonlocal count
        conn = await RawConnection.open(url)
        try:
            while time.perf_counter() < deadline:
                status, _ = await conn.request(raw)
                if status < 300:
                    count += 1
        finally:
            await conn.aclose()

    async def run() -> float:
        started = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for _ in range(clients):
                nursery.start_soon(client, started + seconds)
        return time.perf_counter() - started

    elapsed = trio.run(run)
    return count / elapsed


def bench_single(seconds: float, tmp: str, rounds: int = 3) -> list[list[str]]:
    """Both servers up at once, measured in alternating rounds (bare, rta, bare, rta, ...):
    on a shared machine the load drifts, and a ratio of runs minutes apart measures that."""
    event = json.dumps({"type": "pageview", "userId": "user_1", "sessionId": "s_1",
                        "properties": {"page": "/", "duration": 1200}}).encode()
    bare = start_bare(tmp)
    daemon = start_rta(tmp, "single")
    try:
        _hammer(bare.url, "/events", event, 1.0)  # warm up
        _hammer(daemon.url, "/events", event, 1.0)
        pairs = []
        for _ in range(rounds):
            ceiling = _hammer(bare.url, "/events", event, seconds / rounds)
            ours = _hammer(daemon.url, "/events", event, seconds / rounds)
            pairs.append((ours, ceiling))
    finally:
        bare.stop()
        daemon.stop()
    ours = statistics.median(o for o, _ in pairs)
    ceiling = statistics.median(c for _, c in pairs)
    share = statistics.median(o / c for o, c in pairs)
    return [[f"single-event POST /events req/s, 16 clients, {rounds} alternating rounds",
             fmt_count(ours), f"bare ASGI app {fmt_count(ceiling)}",
             f"{share:.0%} of bare", ">= 85% of bare"]]


# -- NDJSON file ---------------------------------------------------------------------------


def ndjson_file(n: int, standard: bool = False) -> str:
    """The NDJSON file of `generate_events(n)` (all 20 keys, client ids) or of its standard
    shape (3 properties, no ids), cached beside the Arrow cache."""
    from rta.cli.demo import write_ndjson

    shape = "-std" if standard else ""
    path = os.path.join(DATA_DIR, f"events-n{n}-s1-e{data_end_ms()}{shape}.ndjson")
    if not os.path.exists(path):
        table = generate_events(n)
        with open(path + ".tmp", "wb") as f:
            write_ndjson(table.select(STANDARD) if standard else table, f)
        os.replace(path + ".tmp", path)
    return path


def bench_file(n: int, tmp: str) -> list[list[str]]:
    rows = []
    for standard in (False, True):
        rows += _bench_one_file(n, tmp, standard)
    return rows


def _bench_one_file(n: int, tmp: str, standard: bool) -> list[list[str]]:
    import pyarrow.json as pajson

    from rta.core.embedded.store import ColumnStore, StoreConfig
    from rta.core.embedded.store.bulk import bulk_load_ndjson

    path = ndjson_file(n, standard)
    shape = "standard shape" if standard else "demo shape"
    size_mb = os.path.getsize(path) / 1e6
    started = time.perf_counter()
    pajson.read_json(path)
    arrow_s = time.perf_counter() - started

    duck_s = _duckdb_read_json(path)

    data = os.path.join(tmp, "file-inproc")
    store = ColumnStore(data, StoreConfig(fsync=True))
    result = bulk_load_ndjson(store, path)
    store.close()
    assert result.accepted == n, (result.accepted, result.rejected[:3])
    inproc_s = result.seconds
    shutil.rmtree(data, ignore_errors=True)

    data = os.path.join(tmp, "file-cli")
    started = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "rta", "ingest", "--local", "--data-dir", data,
                          path, "--json"], capture_output=True, text=True, check=False)
    cli_s = time.perf_counter() - started
    shutil.rmtree(data, ignore_errors=True)
    cli_rate = fmt_count(n / cli_s) if out.returncode == 0 else f"failed ({out.returncode})"
    return [
        [f"rta ingest --local {fmt_count(n)} NDJSON, {shape} ({size_mb:.0f} MB), process "
         "wall events/s", cli_rate, f"DuckDB read_json {fmt_count(n / duck_s)}",
         ratio(duck_s, cli_s) if out.returncode == 0 else "-", ">= 1M/s"],
        ["  bulk_load_ndjson in-process events/s", fmt_count(n / inproc_s),
         f"pyarrow read_json alone {fmt_count(n / arrow_s)}", ratio(arrow_s, inproc_s), ""],
    ]


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
