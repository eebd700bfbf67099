"""Adversarial soak for #24: no client can exhaust the daemon's memory, connections or loop.

`python -m bench adversarial [--quick] [--seed N] [--cycles N] [--phases 1,2,3,4]` runs four
phases, each against a fresh real `rta serve` subprocess (free port, temp data dir, settings
only from the environment given here), and prints one table of figures with PASS/FAIL per
target; exit status 1 when a target is missed. `--quick` (2-3 minutes) runs 10 crash cycles
instead of 20, holds floods 6 s instead of 30 and runs the query mix once instead of 3 times.

1. Crash cycles: HTTP (`/events/batch`) and WebSocket (`/ws` "events" messages) ingest with
   client-chosen UUIDs, SIGKILL at a random moment, restart; at the end every acknowledged id
   must be stored exactly once (NDJSON export, cross-checked by `GET /events` paging).
2. Key and type explosions: 100 events x 1,000 unique keys in one batch, 100k ordinary events
   and a query mix (peak RSS growth < 200 MB, no 5xx); 20k new event types (a clear 4xx once
   `max_event_types` is reached, no 5xx).
3. Oversized and slow bodies: 1 GiB chunked (413 within 1 s, RSS growth < 50 MB), a huge
   Content-Length with no body (prompt 413), a stalled body (408 within RTA_BODY_TIMEOUT=2).
4. Stalled and idle connection floods (1,100 stalled bodies, 2,000 idle sockets, paced so that
   they all reach the daemon) while `/health` is probed every 10-20 ms from 127.0.0.1 on new
   connections (p99 < 100 ms over ramp and hold), the per-address cap (400 from one address),
   and a daemon with RLIMIT_NOFILE 1,024 flooded past it (few EMFILE lines, /health recovers).

All traffic stays on 127.0.0.0/8: flood sockets bind source addresses 127.0.0.2.. to act as
distinct clients. The yardstick is the targets of #24, not DuckDB: this is about survival.
Every client operation has a timeout and every daemon is killed on the way out, so a daemon
that misbehaves shows as FAIL rows rather than a hung or leaked benchmark.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import multiprocessing
import os
import random
import re
import resource
import select
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any, ClassVar

import httpx

from bench.common import fmt_count, print_table

MiB = 1024 * 1024
PROBE_TIMEOUT = 1.0  # a /health probe slower than this counts as failed
HEALTH_P99_TARGET = 0.100
# Settings the daemon would otherwise inherit from this shell (`RTA_*` and the seed's names).
_INHERITED = ("PORT", "MAX_EVENTS", "RETENTION_DAYS", "ENABLE_COMPRESSION")


def source_ip(i: int) -> str:
    """The i-th simulated client address: 127.0.0.2 .. 127.0.0.254 (127.0.0.1 is the prober)."""
    return f"127.0.0.{2 + i % 253}"


# -- results ---------------------------------------------------------------------------------


@dataclass
class Results:
    """Rows of the one table: (phase, check, figure, target, PASS/FAIL/info)."""

    rows: list[list[str]] = field(default_factory=list)

    def add(self, phase: str, check: str, figure: str, target: str = "",
            ok: bool | None = None) -> None:
        verdict = "info" if ok is None else ("PASS" if ok else "FAIL")
        self.rows.append([phase, check, figure, target, verdict])
        print(f"  [{phase}] {check}: {figure} {target} -> {verdict}", file=sys.stderr,
              flush=True)

    @property
    def failed(self) -> int:
        return sum(r[4] == "FAIL" for r in self.rows)


def ms(seconds: float | None) -> str:
    if seconds is None or math.isinf(seconds):
        return "timeout"
    return f"{seconds * 1000:.0f} ms" if seconds < 10 else f"{seconds:.1f} s"


def mib(n: float) -> str:
    return f"{n / MiB:+.1f} MiB"


def percentile(values: list[float], q: float) -> float:
    if not values:
        return math.inf
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# -- the daemon under test --------------------------------------------------------------------


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS, VmHWM and RssAnon of `pid` in bytes (empty once the process is gone)."""
    out: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key, _, rest = line.partition(":")
                if key in ("VmRSS", "VmHWM", "RssAnon"):
                    out[key] = int(rest.split()[0]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return out


def _limit_nofile(n: int) -> None:  # runs in the child between fork and exec
    resource.setrlimit(resource.RLIMIT_NOFILE, (n, n))


class Daemon:
    """`rta serve` on 127.0.0.1:<free port> in its own process; `close()` always kills it.

    Unlike tests/support.ServeProcess, the environment is scrubbed of inherited `RTA_*`
    settings and the config file, so a developer's config cannot change the figures."""

    live: ClassVar[list[Daemon]] = []  # every started daemon, closed by main's finally

    def __init__(self, workdir: str, name: str, env: dict[str, str] | None = None,
                 nofile: int | None = None) -> None:
        self.data_dir = os.path.join(workdir, name)
        self.log_path = os.path.join(workdir, f"{name}.log")
        base = {k: v for k, v in os.environ.items()
                if not k.startswith("RTA_") and k not in _INHERITED}
        self.env = {**base, "RTA_CONFIG": os.path.join(workdir, "absent.toml"), **(env or {})}
        self.nofile = nofile
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.port = 0

    def start(self, timeout: float = 30.0) -> float:
        """Start and wait for "listening on"; the seconds it took."""
        started = time.monotonic()
        offset = self.log_size()
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "rta", "serve", "--port", "0", "--data-dir",
                 self.data_dir], stdout=log, stderr=log, env=self.env, stdin=subprocess.DEVNULL,
                preexec_fn=None if self.nofile is None else partial(_limit_nofile, self.nofile))
        Daemon.live.append(self)
        while time.monotonic() - started < timeout:
            found = re.findall(r"listening on (http://\S+?)(?:,|\s)", self.log_text(offset))
            if found:
                self.url = found[-1]
                self.port = int(self.url.rsplit(":", 1)[1])
                return time.monotonic() - started
            if self.proc.poll() is not None:
                raise RuntimeError(f"rta serve exited early:\n{self.log_text(offset)[-3000:]}")
            time.sleep(0.05)
        self.close()
        raise TimeoutError(f"rta serve did not start in {timeout:.0f}s")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://", 1) + "/ws"

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def fds(self) -> int:
        """Open file descriptors of the daemon (0 once it is gone)."""
        try:
            return len(os.listdir(f"/proc/{self.pid}/fd"))
        except OSError:
            return 0

    def memory(self) -> dict[str, int]:
        return proc_status(self.pid) if self.alive() else {}

    def kill(self) -> None:
        """SIGKILL: the crash being simulated."""
        if self.alive():
            assert self.proc is not None
            self.proc.send_signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(15)

    def close(self) -> None:
        """Graceful stop (SIGTERM, 15 s), then SIGKILL whatever is left."""
        if self.alive():
            assert self.proc is not None
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                pass
        self.kill()
        if self in Daemon.live:
            Daemon.live.remove(self)

    def log_size(self) -> int:
        try:
            return os.path.getsize(self.log_path)
        except OSError:
            return 0

    def log_text(self, offset: int = 0) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(offset)
                return f.read().decode(errors="replace")
        except OSError:
            return ""


class RssSampler:
    """Samples the daemon's VmRSS every `interval` seconds on a thread; `peak` and `start`.

    VmHWM alone cannot isolate one step (it is the whole life's peak), so growth per step is
    the sampled peak against the RSS at the step's start, raised by VmHWM when that moved."""

    def __init__(self, daemon: Daemon, interval: float = 0.02) -> None:
        self.daemon = daemon
        self.interval = interval
        before = daemon.memory()
        self.start = before.get("VmRSS", 0)
        self.hwm_before = before.get("VmHWM", 0)
        self.peak = self.start
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, self.daemon.memory().get("VmRSS", 0))

    def stop(self) -> dict[str, int]:
        """{"peak_growth", "end_growth", "end"} in bytes."""
        self._stop.set()
        self._thread.join(5)
        after = self.daemon.memory()
        end = after.get("VmRSS", self.peak)
        if after.get("VmHWM", 0) > self.hwm_before:
            self.peak = max(self.peak, after["VmHWM"])
        return {"peak_growth": self.peak - self.start, "end_growth": end - self.start,
                "end": end}


# -- raw sockets -----------------------------------------------------------------------------


def read_status(sock: socket.socket, deadline: float) -> int | None:
    """The status code of the response on `sock`, or None on timeout / close without one."""
    buf = b""
    while b"\r\n" not in buf:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        sock.settimeout(left)
        try:
            data = sock.recv(4096)
        except (TimeoutError, OSError):
            return None
        if not data:
            break
        buf += data
    match = re.match(rb"HTTP/1\.[01] (\d{3})", buf)
    return int(match.group(1)) if match else None


def http_head(method: str, path: str, port: int, *extra: str) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", *extra, "", ""]
    return "\r\n".join(lines).encode()


def probe_health(port: int, timeout: float = PROBE_TIMEOUT) -> tuple[bool, float]:
    """One GET /health on a new connection from 127.0.0.1: (200?, seconds).

    A new connection every time, as a load balancer's health check does, so a daemon that
    stops accepting shows here, not only one whose event loop is slow."""
    t0 = time.perf_counter()
    deadline = time.monotonic() + timeout
    ok = False
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                      source_address=("127.0.0.1", 0)) as s:
            s.sendall(http_head("GET", "/health", port, "Connection: close"))
            ok = read_status(s, deadline) == 200
    except OSError:
        pass
    return ok, time.perf_counter() - t0


def _probe_main(port: int, ready: Any, stop: Any, conn: Any) -> None:
    """Prober process body: GET /health every 10-20 ms until `stop`; sends its samples.

    A separate process so the flood threads' GIL time does not show up as daemon latency."""
    rng = random.Random(port)
    samples: list[tuple[float, float, bool]] = []
    ready.set()
    while not stop.is_set():
        started = time.monotonic()
        ok, took = probe_health(port)
        samples.append((started, took, ok))
        time.sleep(max(0.0, rng.uniform(0.010, 0.020) - took))
    conn.send(samples)
    conn.close()


class Prober:
    """Runs `_probe_main` in a spawned process; `stop()` returns (started, seconds, ok)."""

    def __init__(self, port: int) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._stop = ctx.Event()
        ready = ctx.Event()
        self._recv, send = ctx.Pipe(duplex=False)
        self._proc = ctx.Process(target=_probe_main, args=(port, ready, self._stop, send),
                                 daemon=True)
        self._proc.start()
        send.close()
        ready.wait(30)  # (spawning re-imports this module)

    def stop(self) -> list[tuple[float, float, bool]]:
        self._stop.set()
        samples: list[tuple[float, float, bool]] = []
        if self._recv.poll(PROBE_TIMEOUT + 10):
            samples = self._recv.recv()
        self._proc.join(5)
        if self._proc.is_alive():
            self._proc.kill()
            self._proc.join(5)
        return samples


def summarize_probes(samples: list[tuple[float, float, bool]]) -> tuple[float, float, int, int]:
    """(p50, p99, failures, count); a failed probe counts as infinitely slow."""
    lat = [took if ok else math.inf for _, took, ok in samples]
    return percentile(lat, 0.5), percentile(lat, 0.99), sum(not s[2] for s in samples), len(lat)


@dataclass
class _Conn:
    sock: socket.socket
    pending: bool  # non-blocking connect still in progress
    deadline: float
    buf: bytes = b""


class Flood:
    """`count` connections spread over `sources`, each sending `payload` once connected, then
    holding still; a thread watches them and counts what the server does (closes, answers).

    Non-blocking connects with a deadline and at most `parallel` in flight, so a daemon that
    stops accepting (full backlog) costs the flood seconds, not a connect timeout per socket.
    `gate()`, when given, bounds how many connects may have started so far: a burst overflows
    the daemon's accept queue, and with SYN cookies an idle connection whose handshake ACK is
    dropped there is open on this side only, never reaching the daemon at all."""

    def __init__(self, port: int, count: int, sources: list[str], payload: bytes = b"",
                 parallel: int = 256, connect_timeout: float = 3.0,
                 gate: Callable[[], int] | None = None) -> None:
        self.port = port
        self.gate = gate
        self.count = count
        self.sources = sources
        self.payload = payload
        self.parallel = parallel
        self.connect_timeout = connect_timeout
        self.opened = 0
        self.connect_failed = 0
        self.closed_by_server = 0
        self.statuses: Counter[int] = Counter()
        self.ramp_seconds = math.nan
        self._sel = selectors.DefaultSelector()
        self._conns: dict[int, _Conn] = {}
        self._pending = 0  # connects in progress
        self._open = 0  # connected and not closed by the server
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    @property
    def held(self) -> int:
        """Connections open on this side (some may still wait in the daemon's backlog)."""
        return self._open

    def _connect(self, i: int) -> None:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind((self.sources[i % len(self.sources)], 0))
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", self.port))
        except OSError:
            s.close()
            self.connect_failed += 1
            return
        self._conns[s.fileno()] = _Conn(s, True, time.monotonic() + self.connect_timeout)
        self._pending += 1
        self._sel.register(s, selectors.EVENT_WRITE)

    def _drop(self, fd: int, by_server: bool) -> None:
        conn = self._conns.pop(fd)
        if conn.pending:
            self._pending -= 1
        else:
            self._open -= 1
        if by_server:
            self.closed_by_server += 1
            match = re.match(rb"HTTP/1\.[01] (\d{3})", conn.buf)
            if match:
                self.statuses[int(match.group(1))] += 1
        try:
            self._sel.unregister(conn.sock)
        except (KeyError, ValueError):
            pass
        conn.sock.close()

    def _run(self) -> None:
        started = time.monotonic()
        next_i = 0
        next_sweep = started
        while not self._stop.is_set():
            allowed = self.count if self.gate is None else min(self.count, self.gate())
            while next_i < allowed and self._pending < self.parallel:
                self._connect(next_i)
                next_i += 1
            if next_i >= self.count and not self._pending and math.isnan(self.ramp_seconds):
                self.ramp_seconds = time.monotonic() - started
            for key, _ in self._sel.select(0.05):
                self._ready(key.fd)
            now = time.monotonic()
            if self._pending and now >= next_sweep:  # connects past their deadline
                next_sweep = now + 0.1
                for fd, conn in list(self._conns.items()):
                    if conn.pending and now > conn.deadline:
                        self.connect_failed += 1
                        self._drop(fd, False)

    def _ready(self, fd: int) -> None:
        conn = self._conns.get(fd)
        if conn is None:
            return
        if conn.pending:
            err = conn.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                self.connect_failed += 1
                self._drop(fd, False)
                return
            conn.pending = False
            self._pending -= 1
            self._open += 1
            self.opened += 1
            try:
                if self.payload:
                    conn.sock.send(self.payload)  # small: fits the socket buffer
            except OSError:
                self._drop(fd, True)
                return
            self._sel.modify(conn.sock, selectors.EVENT_READ)
            return
        try:
            data = conn.sock.recv(4096)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data and len(conn.buf) < 4096:
            conn.buf += data
        if not data:
            self._drop(fd, True)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)
        for conn in self._conns.values():
            conn.sock.close()
        self._conns.clear()
        self._sel.close()


# -- phase 1: crash cycles ---------------------------------------------------------------------


@dataclass
class Ledger:
    """Ids sent and ids acknowledged (2xx / ack) across every cycle."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    sent: set[str] = field(default_factory=set)
    acked_http: list[str] = field(default_factory=list)
    acked_ws: list[str] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)

    def error(self, what: str) -> None:
        with self.lock:
            self.errors[what[:60]] += 1


def crash_event(client: str, n: int) -> dict[str, Any]:
    return {"id": str(uuid.uuid4()), "type": "crash_probe", "userId": client,
            "timestamp": int(time.time() * 1000), "properties": {"n": n, "client": client}}


def http_ingester(url: str, src: str, ledger: Ledger, stop: threading.Event, batch: int) -> None:
    """Posts batches until `stop` (or the daemon dies); records ids of every 202."""
    transport = httpx.HTTPTransport(local_address=src)
    with httpx.Client(base_url=url, timeout=httpx.Timeout(10, connect=2),
                      transport=transport) as client:
        n = 0
        while not stop.is_set():
            events = [crash_event(src, n + i) for i in range(batch)]
            n += batch
            ids = [e["id"] for e in events]
            with ledger.lock:
                ledger.sent.update(ids)
            try:
                r = client.post("/events/batch", json=events)
            except httpx.HTTPError as exc:
                ledger.error(f"http {type(exc).__name__}")
                time.sleep(0.05)
                continue
            if 200 <= r.status_code < 300:
                with ledger.lock:
                    ledger.acked_http.extend(ids)
            else:
                ledger.error(f"http {r.status_code}")


def ws_ingesters(url: str, connections: int, ledger: Ledger, stop: threading.Event,
                 batch: int, window: int = 8) -> None:
    """`connections` WebSocket clients, each pipelining up to `window` "events" messages;
    an id counts as acknowledged when an ack names its requestId and no error does."""
    import trio
    from trio_websocket import open_websocket_url

    async def one(k: int) -> None:
        inflight: dict[int, list[str]] = {}
        room = trio.Semaphore(window)
        request_ids = itertools.count(1)

        async def reader(ws: Any) -> None:
            while True:
                with trio.fail_after(15):
                    msg = json.loads(await ws.get_message())
                data = msg.get("data") or {}
                if msg.get("type") == "ack":
                    bad = {e.get("requestId") for e in data.get("errors") or []}
                    for rid in data.get("requestIds") or []:
                        ids = inflight.pop(rid, None)
                        if ids is None:
                            continue
                        room.release()
                        if rid in bad:
                            ledger.error("ws ack error")
                        else:
                            with ledger.lock:
                                ledger.acked_ws.extend(ids)
                elif msg.get("type") == "error" and msg.get("requestId") in inflight:
                    inflight.pop(msg["requestId"])
                    room.release()
                    ledger.error("ws error message")

        try:
            async with open_websocket_url(url, connect_timeout=5, disconnect_timeout=1) as ws, \
                    trio.open_nursery() as nursery:
                nursery.start_soon(reader, ws)
                n = 0
                while not stop.is_set():
                    with trio.fail_after(15):
                        await room.acquire()
                    rid = next(request_ids)
                    events = [crash_event(f"ws{k}", n + i) for i in range(batch)]
                    n += batch
                    inflight[rid] = [e["id"] for e in events]
                    with ledger.lock:
                        ledger.sent.update(inflight[rid])
                    with trio.fail_after(15):
                        await ws.send_message(json.dumps(
                            {"type": "events", "events": events, "requestId": rid}))
                nursery.cancel_scope.cancel()
        except Exception as exc:  # the kill ends every connection; counted, not fatal
            while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
                exc = exc.exceptions[0]  # type: ignore[assignment]
            ledger.error(f"ws {type(exc).__name__}")

    async def run() -> None:
        with trio.move_on_after(60):
            async with trio.open_nursery() as nursery:
                for k in range(connections):
                    nursery.start_soon(one, k)

    trio.run(run)


def exported_ids(url: str) -> list[str]:
    """Every stored id, from a streamed NDJSON export of the id field."""
    ids: list[str] = []
    with httpx.Client(base_url=url, timeout=httpx.Timeout(120, connect=5)) as client, \
            client.stream("POST", "/export", json={"format": "ndjson", "fields": ["id"]}) as r:
        r.raise_for_status()
        for line in r.iter_lines():
            if line.strip():
                ids.append(json.loads(line)["id"])
    return ids


def paged_ids(url: str, limit: int = 10_000, max_pages: int = 1000) -> list[str]:
    """Every stored id, from GET /events cursor paging (newest first)."""
    ids: list[str] = []
    params: dict[str, Any] = {"limit": limit}
    with httpx.Client(base_url=url, timeout=httpx.Timeout(60, connect=5)) as client:
        for _ in range(max_pages):
            r = client.get("/events", params=params)
            r.raise_for_status()
            body = r.json()
            ids.extend(e["id"] for e in body["events"])
            if not body.get("nextCursor") or not body["events"]:
                break
            params["cursor"] = body["nextCursor"]
    return ids


def phase_crash(workdir: str, res: Results, rng: random.Random, cycles: int) -> None:
    phase = "1 crash"
    ledger = Ledger()
    daemon = Daemon(workdir, "crash")
    restarts: list[float] = []
    completed = 0
    try:
        for cycle in range(cycles):
            try:
                restarts.append(daemon.start())
            except (RuntimeError, TimeoutError) as exc:
                res.add(phase, f"restart after kill {cycle}", str(exc).splitlines()[0],
                        "starts", False)
                return
            stop = threading.Event()
            workers = [threading.Thread(target=http_ingester, daemon=True,
                                        args=(daemon.url, source_ip(k), ledger, stop, 200))
                       for k in range(3)]
            workers.append(threading.Thread(target=ws_ingesters, daemon=True,
                                            args=(daemon.ws_url, 2, ledger, stop, 50)))
            for w in workers:
                w.start()
            time.sleep(rng.uniform(0.3, 2.0))
            daemon.kill()
            stop.set()
            for w in workers:
                w.join(20)
            completed += 1
            print(f"  [{phase}] cycle {cycle + 1}/{cycles}: acked "
                  f"{len(ledger.acked_http) + len(ledger.acked_ws):,} so far", file=sys.stderr,
                  flush=True)
        restarts.append(daemon.start())
        exported = exported_ids(daemon.url)
        paged = paged_ids(daemon.url)
    finally:
        daemon.close()
    acked = ledger.acked_http + ledger.acked_ws
    counts = Counter(exported)
    lost = [i for i in acked if counts[i] == 0]
    dup = sum(1 for i in set(acked) if counts[i] > 1)
    unknown = sum(1 for i in counts if i not in ledger.sent)
    stored_unacked = len(set(counts) - set(acked))
    res.add(phase, "SIGKILL cycles", f"{completed}", f">= {min(cycles, 10)}",
            completed >= min(cycles, 10))
    res.add(phase, "acknowledged ids", f"{fmt_count(len(acked))} (http "
            f"{fmt_count(len(ledger.acked_http))}, ws {fmt_count(len(ledger.acked_ws))})",
            "> 0", len(acked) > 0)
    res.add(phase, "acknowledged ids found once",
            f"{sum(1 for i in set(acked) if counts[i] == 1):,}", f"= {len(set(acked)):,}",
            all(counts[i] == 1 for i in set(acked)))
    res.add(phase, "lost / duplicated", f"{len(lost):,} / {dup:,}", "0 / 0",
            not lost and not dup)
    res.add(phase, "ids never sent", f"{unknown:,}", "0", unknown == 0)
    res.add(phase, "GET /events paging vs export", f"{len(paged):,} vs {len(exported):,}",
            "equal", Counter(paged) == counts)
    res.add(phase, "unacknowledged but stored", f"{stored_unacked:,}")
    res.add(phase, "restart time max / mean",
            f"{ms(max(restarts))} / {ms(sum(restarts) / len(restarts))}")
    res.add(phase, "client errors (expected at kill)",
            ", ".join(f"{k} x{v}" for k, v in ledger.errors.most_common(4)) or "none")


# -- phase 2: key and type explosions ----------------------------------------------------------


def timed_request(client: httpx.Client, method: str, path: str,
                  payload: Any = None) -> tuple[int | None, float, str]:
    """(status or None on a client error, seconds, error code / exception name)."""
    t0 = time.perf_counter()
    try:
        r = (client.get(path, params=payload) if method == "GET"
             else client.post(path, json=payload))
    except httpx.HTTPError as exc:
        return None, time.perf_counter() - t0, type(exc).__name__
    code = ""
    if r.status_code >= 400:
        try:
            err = r.json()["error"]
            code = str(err["code"])
            detail = (err.get("details") or [{}])[0]
            if isinstance(detail, dict) and detail.get("code"):
                code += f"/{detail['code']}"
        except (ValueError, KeyError, TypeError, IndexError):
            code = r.text[:60]
    return r.status_code, time.perf_counter() - t0, code


def statuses_text(statuses: Counter[Any]) -> str:
    return ", ".join(f"{k} x{v}" for k, v in sorted(statuses.items(), key=str)) or "none"


def stats_limits(client: httpx.Client) -> dict[str, Any]:
    """The `limits` section of /stats (store-wide key and type counts), {} if absent."""
    try:
        limits = client.get("/stats").json().get("limits")
    except (httpx.HTTPError, ValueError, AttributeError):
        return {}
    return limits if isinstance(limits, dict) else {}


def run_queries(client: httpx.Client, queries: list[tuple[str, str, dict[str, Any]]],
                repeat: int, phase: str) -> tuple[Counter[Any], float]:
    """Each query `repeat` times: (statuses with every 2xx as "2xx", slowest seconds)."""
    statuses: Counter[Any] = Counter()
    slowest = 0.0
    for _ in range(repeat):
        for method, path, params in queries:
            s, took, code = timed_request(client, method, path, params)
            statuses["2xx" if s is not None and 200 <= s < 300 else s] += 1
            slowest = max(slowest, took)
            if s is None or s >= 500:
                print(f"  [{phase}] {path} -> {s} {code}", file=sys.stderr)
    return statuses, slowest


def bad(statuses: Counter[Any]) -> int:
    """Client errors (None) and 5xx in `statuses`."""
    return sum(v for k, v in statuses.items() if k is None or (isinstance(k, int) and k >= 500))


def ingest_batches(client: httpx.Client, batches: Iterator[list[dict[str, Any]]]
                   ) -> tuple[Counter[Any], int, str | None]:
    """POST each batch: (statuses, events accepted, first refusal "status code after n")."""
    statuses: Counter[Any] = Counter()
    accepted = 0
    refusal: str | None = None
    for events in batches:
        s, _, code = timed_request(client, "POST", "/events/batch", events)
        statuses[s] += 1
        if s is not None and 200 <= s < 300:
            accepted += len(events)
        elif refusal is None:
            refusal = f"{s} {code} after {accepted:,} events"
    return statuses, accepted, refusal


def phase_explosion(workdir: str, res: Results, quick: bool) -> None:
    from bench.soak import QUERIES
    from rta.core.demo import iter_demo_events

    phase = "2 explode"
    repeat = 1 if quick else 3
    daemon = Daemon(workdir, "explode")
    daemon.start()
    try:
        client = httpx.Client(base_url=daemon.url, timeout=httpx.Timeout(30, connect=5))
        with client:
            client.get("/health")
            sampler = RssSampler(daemon)
            now = int(time.time() * 1000)
            wide = [{"type": "wide", "userId": f"w{e}", "timestamp": now,
                     "properties": {f"k{e}_{j}": j for j in range(1000)}} for e in range(100)]
            status, took, code = timed_request(client, "POST", "/events/batch", wide)
            del wide
            res.add(phase, "1 batch: 100 events x 1,000 unique keys",
                    f"{status} {code} in {ms(took)}".strip(), "no 5xx",
                    status is not None and status < 500)
            demo = iter_demo_events(100_000, users=5_000, days=1, seed=7)

            def ordinary() -> Iterator[list[dict[str, Any]]]:
                while batch := list(itertools.islice(demo, 5_000)):
                    for e in batch:
                        e.pop("id", None)
                    yield batch

            t0 = time.perf_counter()
            statuses, accepted, _ = ingest_batches(client, ordinary())
            res.add(phase, "100k ordinary events (20 x 5,000)",
                    f"{statuses_text(statuses)} in {ms(time.perf_counter() - t0)}",
                    "all 2xx", accepted == 100_000)
            queries = [*QUERIES, ("GET", "/analytics/top", {"property": "k0_0", "n": 10}),
                       ("GET", "/analytics/count", {"groupBy": "properties.k5_5"}),
                       ("GET", "/events", {"limit": 1000})]
            statuses, slowest = run_queries(client, queries, repeat, phase)
            res.add(phase, f"query mix ({len(queries)} x {repeat})",
                    f"{statuses_text(statuses)}, slowest {ms(slowest)}", "no 5xx",
                    bad(statuses) == 0)
            grown = sampler.stop()
            res.add(phase, "RSS growth peak / end (the three above)",
                    f"{mib(grown['peak_growth'])} / {mib(grown['end_growth'])}",
                    "peak < 200 MiB", grown["peak_growth"] < 200 * MiB)
            # Store-wide keys: batches within the per-batch key limit, 150k new keys in all.
            sampler = RssSampler(daemon)
            before = stats_limits(client)

            def keyed() -> Iterator[list[dict[str, Any]]]:
                for b in range(15):
                    yield [{"type": "wide", "userId": f"k{b}", "timestamp": now,
                            "properties": {f"s{b}_{e}_{j}": j for j in range(1000)}}
                           for e in range(10)]

            statuses, accepted, refusal = ingest_batches(client, keyed())
            limits = stats_limits(client)
            keys = limits.get("propertyKeys")
            cap = limits.get("maxPropertyKeys", 100_000)
            fours = sum(v for k, v in statuses.items() if k is not None and 400 <= k < 500)
            res.add(phase, "15 batches x 10 events x 1,000 new keys",
                    f"{statuses_text(statuses)}; first refusal: {refusal or 'none'}",
                    "4xx at the store's limit, no 5xx", fours > 0 and bad(statuses) == 0)
            res.add(phase, "store property keys (/stats limits)",
                    f"{keys if keys is not None else 'n/a'} (before: "
                    f"{before.get('propertyKeys', 'n/a')})", f"<= {cap:,} (max_property_keys)",
                    keys is not None and keys <= cap)
            statuses, slowest = run_queries(client, queries, repeat, phase)
            res.add(phase, "query mix after the key explosion",
                    f"{statuses_text(statuses)}, slowest {ms(slowest)}", "no 5xx",
                    bad(statuses) == 0)
            grown = sampler.stop()
            res.add(phase, "RSS growth peak / end (store-wide keys + queries)",
                    f"{mib(grown['peak_growth'])} / {mib(grown['end_growth'])}",
                    "peak < 200 MiB", grown["peak_growth"] < 200 * MiB)
            # Distinct event types: 20k new ones in batches of 1,000.
            sampler = RssSampler(daemon)

            def typed() -> Iterator[list[dict[str, Any]]]:
                for b in range(20):
                    yield [{"type": f"t_{b}_{i}", "userId": "types", "timestamp": now}
                           for i in range(1000)]

            statuses, accepted, refusal = ingest_batches(client, typed())
            s, _, _ = timed_request(client, "GET", "/analytics/count", {"groupBy": "type"})
            statuses[s] += 1
            limits = stats_limits(client)
            grown = sampler.stop()
        types = limits.get("eventTypes")
        cap = limits.get("maxEventTypes", 10_000)
        fours = sum(v for k, v in statuses.items() if k is not None and 400 <= k < 500)
        res.add(phase, "20k new event types (20 x 1,000)",
                f"{statuses_text(statuses)}; first refusal: {refusal or 'none'}",
                "4xx at the limit, no 5xx", fours > 0 and bad(statuses) == 0)
        res.add(phase, "store event types (/stats limits)",
                f"{types if types is not None else 'n/a'} ({accepted:,} new accepted)",
                f"<= {cap:,} (max_event_types)",
                (types if types is not None else accepted) <= cap)
        res.add(phase, "types: RSS growth peak", mib(grown["peak_growth"]))
    finally:
        daemon.close()


# -- phase 3: oversized and slow bodies -------------------------------------------------------


def send_chunked(port: int, total: int, limit_s: float) -> tuple[int | None, float, int]:
    """POST `total` bytes of chunked JSON junk to /events/batch, generated lazily (one 64 KiB
    chunk resent), until the server answers or closes: (status, seconds to it, bytes sent)."""
    piece = b'{"type":"a"},' * (65536 // 13)
    chunk = b"%x\r\n" % len(piece) + piece + b"\r\n"
    head = http_head("POST", "/events/batch", port, "Content-Type: application/json",
                     "Transfer-Encoding: chunked")
    t0 = time.monotonic()
    deadline = t0 + limit_s
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=5,
                                  source_address=(source_ip(0), 0)) as s:
        s.sendall(head + b"1\r\n[\r\n")
        view = memoryview(chunk)
        pos = 0
        s.setblocking(False)
        while sent < total and time.monotonic() < deadline:
            readable, writable, _ = select.select([s], [s], [], 0.2)
            if readable:
                break
            if not writable:
                continue
            try:
                n = s.send(view[pos:])
            except BlockingIOError:
                continue
            except OSError:  # reset: the server gave up on us; a response may be buffered
                break
            sent += n
            pos = (pos + n) % len(chunk)
        else:
            if sent >= total:
                try:
                    s.setblocking(True)
                    s.settimeout(5)
                    s.sendall(view[pos:] if pos else b"")
                    s.sendall(b"0\r\n\r\n")
                except OSError:
                    pass
        status = read_status(s, max(deadline, time.monotonic() + 1))
    return status, time.monotonic() - t0, sent


def send_head_only(port: int, length: int, wait_s: float) -> tuple[int | None, float]:
    """Headers announcing `length` body bytes, then silence: (status, seconds to it)."""
    t0 = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=5,
                                  source_address=(source_ip(1), 0)) as s:
        s.sendall(http_head("POST", "/events/batch", port, "Content-Type: application/json",
                            f"Content-Length: {length}"))
        status = read_status(s, t0 + wait_s)
    return status, time.monotonic() - t0


def phase_bodies(workdir: str, res: Results, quick: bool) -> None:
    phase = "3 bodies"
    body_timeout = 2.0
    daemon = Daemon(workdir, "bodies", env={"RTA_BODY_TIMEOUT": str(body_timeout)})
    daemon.start()
    try:
        probe_health(daemon.port)
        sampler = RssSampler(daemon, interval=0.01)
        status, took, sent = send_chunked(daemon.port, 1 << 30, 15 if quick else 60)
        grown = sampler.stop()
        res.add(phase, "1 GiB chunked body", f"{status or 'no answer'} in {ms(took)} after "
                f"{sent / MiB:,.0f} MiB sent", "413 within 1 s",
                status == 413 and took <= 1.0)
        res.add(phase, "1 GiB chunked: RSS growth peak", mib(grown["peak_growth"]),
                "< 50 MiB", grown["peak_growth"] < 50 * MiB)
        status, took = send_head_only(daemon.port, 100_000_000_000, 10)
        res.add(phase, "Content-Length 100 GB, no body", f"{status or 'no answer'} in "
                f"{ms(took)}", "413 within 1 s", status == 413 and took <= 1.0)
        status, took = send_head_only(daemon.port, 5_000_000, body_timeout + (8 if quick else 30))
        res.add(phase, f"Content-Length 5 MB then silence (body_timeout {body_timeout:g} s)",
                f"{status or 'no answer'} in {ms(took)}", f"408 within {body_timeout + 1:g} s",
                status == 408 and took <= body_timeout + 1)
        ok, took = probe_health(daemon.port, 5)
        res.add(phase, "/health afterwards", f"{'200' if ok else 'failed'} in {ms(took)}",
                "200", ok)
    finally:
        daemon.close()


# -- phase 4: stalled and idle connections -----------------------------------------------------


STALLED_BODY = b"[" + b'{"type":"a"},' * 40


@dataclass
class FloodRun:
    """A flood held under the prober: what the client and the daemon saw."""

    flood: Flood
    samples: list[tuple[float, float, bool]]
    hold_from: float  # monotonic time the hold began (the daemon loaded, or 15 s passed)
    fds_before: int
    fds_peak: int
    settled: float  # seconds from the flood's start until the daemon held it (nan: never)
    drained: float  # seconds after closing until the daemon's fds were back (nan: not in 30 s)


def wait_fds(daemon: Daemon, done: Callable[[int], bool], limit: float) -> float:
    """Seconds until `done(daemon.fds())` holds, polled every 50 ms; nan after `limit`."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit:
        if done(daemon.fds()):
            return time.monotonic() - t0
        time.sleep(0.05)
    return math.nan


def flood_under_probe(daemon: Daemon, count: int, sources: list[str], payload: bytes,
                      hold: float, settle_fds: int, ahead: int = 64) -> FloodRun:
    """Open the flood while /health is probed; once the daemon holds `settle_fds` open fds
    (or 15 s passed), hold `hold` seconds; close, and wait for the daemon to let go.

    Client-side connects complete before the daemon accepts them (the kernel queues them),
    so the daemon's own fd count is what says the flood has landed. The flood stays at most
    `ahead` connects ahead of what the daemon has accepted, so that it all lands (see `Flood`)
    and the probes measure the daemon rather than a kernel queue overflowing."""
    fds_before = daemon.fds()
    prober = Prober(daemon.port)
    time.sleep(0.2)  # a few probes before the flood
    started = time.monotonic()
    flood = Flood(daemon.port, count, sources, payload,
                  gate=lambda: daemon.fds() - fds_before + ahead)
    peak = fds_before
    settled = math.nan
    hold_from = math.inf
    try:
        while time.monotonic() < hold_from + hold:
            fds = daemon.fds()
            peak = max(peak, fds)
            now = time.monotonic()
            if math.isinf(hold_from) and (fds >= settle_fds or now >= started + 15):
                if fds >= settle_fds:
                    settled = now - started
                hold_from = now
            time.sleep(0.1)
    finally:
        samples = prober.stop()
        flood.close()
    drained = wait_fds(daemon, lambda n: n <= fds_before + 8, 30)
    return FloodRun(flood, samples, hold_from, fds_before, peak, settled, drained)


def report_flood(res: Results, phase: str, name: str, run: FloodRun,
                 target: bool = True) -> None:
    """Two rows: what landed, and /health during the whole flood (ramp included: a daemon
    that accepts slowly makes probes wait in the same backlog) and during the hold alone."""
    flood = run.flood
    p50, p99, failed, n = summarize_probes(run.samples)
    held = [x for x in run.samples if x[0] >= run.hold_from]
    _, hold_p99, hold_failed, _ = summarize_probes(held)
    loaded = "never" if math.isnan(run.settled) else ms(run.settled)
    drained = "not in 30 s" if math.isnan(run.drained) else ms(run.drained)
    res.add(phase, f"{name}: connections", f"{flood.opened:,} opened, "
            f"{flood.connect_failed:,} connect failures, {flood.closed_by_server:,} closed by "
            f"server ({statuses_text(flood.statuses)}); daemon fds {run.fds_before:,} -> peak "
            f"{run.fds_peak:,}, loaded after {loaded}, released after close in {drained}")
    res.add(phase, f"{name}: /health p50 / p99", f"{ms(p50)} / {ms(p99)} ({n:,} probes, "
            f"{failed:,} failed); hold only: p99 {ms(hold_p99)}, {hold_failed:,} failed",
            "p99 < 100 ms" if target else "",
            (p99 < HEALTH_P99_TARGET and n > 0) if target else None)


def phase_connections(workdir: str, res: Results, quick: bool) -> None:
    phase = "4 conns"
    hold = 6.0 if quick else 30.0
    daemon = Daemon(workdir, "conns")
    daemon.start()
    try:
        sampler = RssSampler(daemon, interval=0.1)
        stalled_head = http_head("POST", "/events/batch", daemon.port,
                                 "Content-Type: application/json",
                                 "Content-Length: 1000000") + STALLED_BODY
        base = daemon.fds()
        run = flood_under_probe(daemon, 1_100, [source_ip(i) for i in range(5)],
                                stalled_head, hold, base + 1_050)
        report_flood(res, phase, "1,100 stalled bodies / 5 addresses", run)
        time.sleep(1)
        run = flood_under_probe(daemon, 2_000, [source_ip(i) for i in range(9)], b"", hold,
                                base + 1_950)
        report_flood(res, phase, "2,000 idle / 9 addresses", run)
        grown = sampler.stop()
        res.add(phase, "floods: RSS growth peak", mib(grown["peak_growth"]))
        # The per-address cap: one address opening far more than it allows.
        cap = 256
        base = daemon.fds()
        flood = Flood(daemon.port, 400, [source_ip(20)], gate=lambda: daemon.fds() - base + 64)
        try:
            seen: list[int] = []

            def steady(n: int) -> bool:  # the same count for the last second
                seen.append(n)
                return len(seen) > 20 and len(set(seen[-20:])) == 1

            wait_fds(daemon, steady, 15)
            held = seen[-1] - base
        finally:
            flood.close()
        res.add(phase, "400 idle from one address: held by the daemon",
                f"{held:,}, peak {max(seen) - base:,} (offered {flood.opened:,}, "
                f"{flood.closed_by_server:,} closed by server {statuses_text(flood.statuses)})",
                f"<= {cap} (the cap)", held <= cap)
        ok, took = probe_health(daemon.port, 5)
        res.add(phase, "/health afterwards", f"{'200' if ok else 'failed'} in {ms(took)}",
                "200", ok)
    finally:
        daemon.close()
    phase_low_fd(workdir, res, hold)


def phase_low_fd(workdir: str, res: Results, hold: float) -> None:
    phase = "4 low fd"
    nofile = 1024
    daemon = Daemon(workdir, "lowfd", nofile=nofile)
    daemon.start()
    try:
        offset = daemon.log_size()
        # A partial request head: unlike a silent socket, its data is retransmitted until the
        # daemon's kernel takes the connection, so all of them press on the fd limit.
        slow_head = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        run = flood_under_probe(daemon, 1_500, [source_ip(i) for i in range(7)], slow_head,
                                hold, nofile - 8, ahead=600)
        report_flood(res, phase, f"1,500 slow heads, RLIMIT_NOFILE {nofile}", run,
                     target=False)
        log = daemon.log_text(offset)
        emfile = sum(1 for line in log.splitlines()
                     if "EMFILE" in line or "Too many open files" in line)
        tracebacks = log.count("Traceback")
        res.add(phase, "stderr while flooded", f"{emfile:,} EMFILE lines, {tracebacks:,} "
                f"tracebacks, {len(log.splitlines()):,} lines in all",
                "<= 5 EMFILE lines, <= 2 tracebacks", emfile <= 5 and tracebacks <= 2)
        t0 = time.monotonic()
        ok = False
        while not ok and time.monotonic() - t0 < 15:
            ok, _ = probe_health(daemon.port)
            if not ok:
                time.sleep(0.1)
        took = time.monotonic() - t0
        res.add(phase, "/health recovers after the flood closes",
                f"{'200' if ok else 'no'} after {ms(took)} (daemon fds now {daemon.fds():,})",
                "within 5 s", ok and took <= 5)
        res.add(phase, "daemon alive", "yes" if daemon.alive() else "no", "yes", daemon.alive())
    finally:
        daemon.close()


# -- main ------------------------------------------------------------------------------------


def raise_own_fd_limit(want: int = 8192) -> None:
    """The floods hold ~2,000 sockets at once in this process."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench adversarial",
                                     description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="shorter holds and fewer repeats")
    parser.add_argument("--seed", type=int, default=None, help="seed for the kill moments")
    parser.add_argument("--cycles", type=int, default=None, help="SIGKILL cycles (>= 10)")
    parser.add_argument("--phases", default="1,2,3,4", help="comma-separated subset of 1-4")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    cycles = args.cycles or (10 if args.quick else 20)
    rng = random.Random(seed)
    raise_own_fd_limit()
    workdir = tempfile.mkdtemp(prefix="rta-adversarial-")
    print(f"  workdir {workdir}, seed {seed}", file=sys.stderr, flush=True)
    res = Results()
    runs: dict[str, Callable[[], None]] = {
        "1": lambda: phase_crash(workdir, res, rng, cycles),
        "2": lambda: phase_explosion(workdir, res, args.quick),
        "3": lambda: phase_bodies(workdir, res, args.quick),
        "4": lambda: phase_connections(workdir, res, args.quick),
    }
    started = time.monotonic()
    try:
        for key in args.phases.split(","):
            key = key.strip()
            if key not in runs:
                print(f"unknown phase {key!r}; choose from 1, 2, 3, 4", file=sys.stderr)
                return 2
            t0 = time.monotonic()
            try:
                runs[key]()
            except Exception as exc:  # one broken phase must not hide the others' figures
                traceback.print_exc()
                res.add(key, "phase completed", f"{type(exc).__name__}: {exc}"[:120], "", False)
            print(f"  phase {key}: {time.monotonic() - t0:.1f}s", file=sys.stderr, flush=True)
    finally:
        for daemon in list(Daemon.live):
            daemon.close()
    load = os.getloadavg()[0]
    print_table(f"adversarial (#24){' --quick' if args.quick else ''}: seed {seed}, "
                f"{time.monotonic() - started:.0f} s, load {load:.1f} on {os.cpu_count()} "
                f"CPUs, logs in {workdir}",
                [["phase", "check", "figure", "target", "result"], *res.rows])
    return 1 if res.failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
