"""Hostile clients at the transport (issue #24): bodies without end, bodies that stall,
too many connections, foreign Host and Origin headers on every path, huge WebSocket ingest.

Real servers on free ports; raw sockets wherever a well-behaved client library would not
send what an attacker does."""

from __future__ import annotations

import json
import os
import re
import resource
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import trio

import rta.server.events_api as events_api
from rta.client.ws import connect
from rta.core.config import EngineConfig
from rta.core.events import Limits
from tests.server.test_ws import recv_until
from tests.support import ServeProcess, live_server

MiB = 1024 * 1024


# -- raw HTTP -------------------------------------------------------------------------------


async def open_raw(url: str) -> trio.SocketStream:
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    return await trio.open_tcp_stream(parts.hostname, parts.port)


def head(method: str, path: str, headers: dict[str, str]) -> bytes:
    lines = [f"{method} {path} HTTP/1.1"] + [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


class Answer:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def code(self) -> str | None:
        try:
            return str(self.json()["error"]["code"])
        except (ValueError, KeyError, TypeError):
            return None


async def read_answer(stream: trio.SocketStream) -> Answer:
    """One HTTP/1.1 response (Content-Length framed, or none for a 101/handshake refusal)."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        data = await stream.receive_some(65536)
        if not data:
            raise EOFError(f"connection closed before an answer: {buf!r}")
        buf += data
    raw_head, _, rest = buf.partition(b"\r\n\r\n")
    lines = raw_head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        data = await stream.receive_some(65536)
        if not data:
            break
        rest += data
    return Answer(status, headers, rest[:length])


async def closed_by_server(stream: trio.SocketStream, within: float) -> bool:
    """True when the server ends the connection (EOF or reset) within `within` seconds."""
    with trio.move_on_after(within):
        try:
            while await stream.receive_some(65536):
                pass
        except trio.BrokenResourceError:
            pass
        return True
    return False


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def stream_until_answer(url: str, method: str, path: str, headers: dict[str, str],
                              cap: int = 64 * MiB) -> tuple[Answer, int, float, int]:
    """Send an endless chunked body (1 MiB chunks, at most `cap`) until the answer comes.

    Returns (answer, bytes sent by then, seconds, peak RSS growth of this process, where
    the server runs)."""
    stream = await open_raw(url)
    chunk = b"[" + b" " * (MiB - 2) + b"]"
    framed = b"%x\r\n" % len(chunk) + chunk + b"\r\n"
    state = {"sent": 0, "peak": 0}
    answer: list[Answer] = []
    base = rss_bytes()
    started = time.monotonic()

    async def send_body() -> None:
        await stream.send_all(head(method, path, {**headers, "Transfer-Encoding": "chunked"}))
        try:
            while state["sent"] < cap:
                await stream.send_all(framed)
                state["sent"] += len(chunk)
                state["peak"] = max(state["peak"], rss_bytes() - base)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        await trio.sleep_forever()  # (no last chunk: an old server would wait for it)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(send_body)
        with trio.move_on_after(10):
            answer.append(await read_answer(stream))
        elapsed = time.monotonic() - started
        nursery.cancel_scope.cancel()
    await stream.aclose()
    assert answer, f"no answer after streaming {state['sent']} bytes to {path}"
    return answer[0], state["sent"], elapsed, state["peak"]


LOCAL = {"Host": "127.0.0.1", "Content-Type": "application/json"}


@pytest.fixture
def config(tmp_path: Path) -> EngineConfig:
    return EngineConfig(data_dir=str(tmp_path / "data"), max_events=1000)


# -- 1. bodies are capped while they stream ---------------------------------------------------


@pytest.mark.parametrize("path", ["/events/batch", "/events", "/analytics/count", "/batch",
                                  "/v1/batch", "/no/such/route", "/health"])
async def test_endless_body_is_refused_at_the_routes_limit(config: EngineConfig,
                                                           path: str) -> None:
    async with live_server(config) as srv:
        limit = 10 * MiB if path.startswith(("/events", "/batch", "/v1/")) else MiB
        answer, sent, elapsed, growth = await stream_until_answer(srv.url, "POST", path, LOCAL)
        assert answer.status == 413 and answer.code == "payload_too_large", answer.body
        assert answer.json()["error"]["details"][0]["limit"] == limit
        assert sent <= limit + 8 * MiB  # answered at the limit, not at the end of the body
        assert elapsed < 3 and growth < 50 * MiB, (elapsed, growth)
        assert srv.engine.store.stats()["events"] == 0


@pytest.mark.parametrize("path", ["/health", "/analytics/count"])
async def test_get_that_ignores_its_body_answers_and_closes(config: EngineConfig,
                                                            path: str) -> None:
    """A GET answered without its body: answered at once, the connection then closed
    (not drained to the end of the body)."""
    async with live_server(config) as srv:
        answer, sent, elapsed, growth = await stream_until_answer(srv.url, "GET", path, LOCAL)
        assert answer.status in (200, 413), answer.body
        assert answer.headers.get("connection") == "close"
        assert sent <= 18 * MiB and elapsed < 3 and growth < 50 * MiB


async def test_refusals_before_reading_are_capped_too(config: EngineConfig) -> None:
    """--auth on, no token: 401s for small bodies, 413 at the limit for endless ones."""
    async with live_server(config, auth="on") as srv:
        for path in ("/batch", "/v1/batch", "/events/batch", "/analytics/count"):
            answer, sent, _, growth = await stream_until_answer(srv.url, "POST", path, LOCAL)
            assert answer.status == 413 and answer.code == "payload_too_large", (path, answer)
            assert sent <= 18 * MiB and growth < 50 * MiB
        async with httpx.AsyncClient(base_url=srv.url) as http:
            r = await http.post("/events", json={"type": "x"})
            assert r.status_code == 401
            r = await http.post("/v1/batch", json={"batch": []})
            assert r.status_code == 401


async def test_declared_length_over_the_limit_is_refused_before_reading(
        config: EngineConfig) -> None:
    async with live_server(config) as srv:
        for path, limit in (("/events/batch", 10 * MiB), ("/events", 10 * MiB),
                            ("/analytics/count", MiB), ("/v1/batch", 10 * MiB)):
            stream = await open_raw(srv.url)
            await stream.send_all(head("POST", path, {**LOCAL, "Content-Length":
                                                      str(limit + 1)}) + b"[")
            with trio.fail_after(1):
                answer = await read_answer(stream)
            assert answer.status == 413 and answer.code == "payload_too_large"
            assert answer.headers.get("connection") == "close"
            assert answer.headers.get("x-content-type-options") == "nosniff"
            assert await closed_by_server(stream, 1.5), "not closed: it waits for the body"
            await stream.aclose()


# -- 2. a body that stops arriving is answered 408 ---------------------------------------------


@pytest.mark.parametrize("path", ["/events/batch", "/events", "/analytics/count", "/v1/batch",
                                  "/batch", "/alerts"])
async def test_stalled_body_gets_408_and_close(config: EngineConfig, path: str) -> None:
    async with live_server(config, body_timeout=0.5) as srv:
        declared = "5000000" if path.startswith(("/events", "/batch", "/v1/")) else "500000"
        for framing in ({"Content-Length": declared}, {"Transfer-Encoding": "chunked"}):
            stream = await open_raw(srv.url)
            partial = b"[{" if "Content-Length" in framing else b"2\r\n[{\r\n"
            started = time.monotonic()
            await stream.send_all(head("POST", path, {**LOCAL, **framing}) + partial)
            with trio.fail_after(3):
                answer = await read_answer(stream)
            took = time.monotonic() - started
            assert answer.status == 408, (path, framing, answer.body)
            error = answer.json()["error"]
            assert error["code"] == "request_timeout" and error["message"]
            assert isinstance(error["details"], list)
            assert 0.4 < took < 2.0, took
            assert await closed_by_server(stream, 1.5)
            await stream.aclose()


async def test_connection_without_a_request_head_is_closed(config: EngineConfig) -> None:
    async with live_server(config, body_timeout=0.5) as srv:
        silent = await open_raw(srv.url)
        partial = await open_raw(srv.url)
        await partial.send_all(b"POST /events HTTP/1.1\r\nHost: 127.0")
        assert await closed_by_server(silent, 2.5)
        assert await closed_by_server(partial, 0.5)
        await silent.aclose()
        await partial.aclose()


# -- 3. connections: fd limit, per-address cap, quiet accept failures ---------------------------


def _soft_limit(pid: int) -> tuple[str, str]:
    with open(f"/proc/{pid}/limits") as f:
        for line in f:
            if line.startswith("Max open files"):
                soft, hard = line.split()[3:5]
                return soft, hard
    raise AssertionError("no open-files line")


def test_daemon_raises_its_soft_fd_limit(tmp_path: Path) -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard <= 256:
        pytest.skip("hard open-files limit too low to test raising the soft one")

    def lower_soft() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))

    proc = ServeProcess(str(tmp_path / "data"), preexec=lower_soft)
    proc.start()
    try:
        assert proc.proc is not None
        soft, got_hard = _soft_limit(proc.proc.pid)
        assert soft == got_hard != "256"
    finally:
        proc.stop()


async def test_connections_per_address_are_capped(config: EngineConfig) -> None:
    async with live_server(config, max_connections_per_address=4) as srv:
        held = [await open_raw(srv.url) for _ in range(4)]
        extra = await open_raw(srv.url)
        assert await closed_by_server(extra, 1.0), "a fifth connection was kept"
        await extra.aclose()
        await held.pop().aclose()
        await trio.sleep(0.05)
        async with httpx.AsyncClient(base_url=srv.url) as http:
            assert (await http.get("/health")).status_code == 200
            metrics = (await http.get("/metrics")).text
        assert re.search(r"^rta_connections_refused_total 1$", metrics, re.M), metrics
        for stream in held:
            await stream.aclose()


def test_accept_failures_at_the_fd_limit_are_quiet_and_counted(tmp_path: Path) -> None:
    import socket

    fds = 160

    def low_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (fds, fds))

    proc = ServeProcess(str(tmp_path / "data"), preexec=low_limit,
                        env={"RTA_MAX_CONNECTIONS_PER_ADDRESS": "0"})
    url = proc.start()
    parts = urlsplit(url)
    held: list[socket.socket] = []
    try:
        for _ in range(fds + 40):  # (the backlog keeps those the server cannot accept)
            held.append(socket.create_connection((parts.hostname, parts.port), timeout=5))
        time.sleep(2.5)
        for sock in held:
            sock.close()
        held.clear()
        time.sleep(0.5)
        with httpx.Client(base_url=url, timeout=10) as http:
            assert http.get("/health").status_code == 200
            metrics = http.get("/metrics").text
        found = re.search(r'^rta_accept_errors_total\{errno="EMFILE"\} (\d+)$', metrics, re.M)
        assert found and int(found.group(1)) > 0, metrics
    finally:
        for sock in held:
            sock.close()
        proc.stop()
    log = Path(proc.log_path).read_text()
    assert "Traceback" not in log, log
    assert len(re.findall("cannot accept connections: EMFILE", log)) == 1, log


# -- 4. Host and Origin: the same rules on every path -----------------------------------------


EVENT = {"type": "pageview", "userId": "u1"}
PATHS: dict[str, tuple[str, str, dict[str, str], bytes]] = {
    "POST /events": ("POST", "/events", {"Content-Type": "application/json"},
                     json.dumps(EVENT).encode()),
    "POST /events/batch json": ("POST", "/events/batch", {"Content-Type": "application/json"},
                                json.dumps([EVENT]).encode()),
    "POST /events/batch ndjson": ("POST", "/events/batch",
                                  {"Content-Type": "application/x-ndjson"},
                                  json.dumps(EVENT).encode() + b"\n"),
    "POST /batch (PostHog)": ("POST", "/batch", {"Content-Type": "application/json"},
                              json.dumps({"batch": [{"event": "e", "distinct_id": "d"}]}
                                         ).encode()),
    "POST /v1/batch (Segment)": ("POST", "/v1/batch", {"Content-Type": "application/json"},
                                 json.dumps({"batch": [{"type": "track", "event": "e",
                                                        "userId": "u"}]}).encode()),
    "GET /analytics/count": ("GET", "/analytics/count", {}, b""),
    "GET /ws": ("GET", "/ws", {"Connection": "Upgrade", "Upgrade": "websocket",
                               "Sec-WebSocket-Version": "13",
                               "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}, b""),
}
# What security.py forbids: (headers, refusal code, paths it applies to; None = all).
# Origin: only state-changing requests and the /ws handshake, never the SDK routes
# (browser SDKs post from customers' own sites).
ORIGIN_PATHS = {"POST /events", "POST /events/batch json", "POST /events/batch ndjson",
                "GET /ws"}
FORBIDDEN: dict[str, tuple[dict[str, str], str, set[str] | None]] = {
    "foreign Host": ({"Host": "evil.example"}, "host_forbidden", None),
    "foreign Host with port": ({"Host": "evil.example:80"}, "host_forbidden", None),
    "rebinding name": ({"Host": "127.0.0.1.evil.example"}, "host_forbidden", None),
    "cross-site Origin": ({"Host": "127.0.0.1", "Origin": "http://evil.example"},
                          "origin_forbidden", ORIGIN_PATHS),
    "null Origin": ({"Host": "localhost", "Origin": "null"}, "origin_forbidden",
                    ORIGIN_PATHS),
    "Origin of another port": ({"Host": "127.0.0.1:1", "Origin": "http://127.0.0.1:2"},
                               "origin_forbidden", ORIGIN_PATHS),
}


@pytest.mark.parametrize("path_name", list(PATHS))
@pytest.mark.parametrize("case", list(FORBIDDEN))
async def test_host_and_origin_rules_hold_on_every_path(tmp_path: Path, case: str,
                                                        path_name: str) -> None:
    method, path, extra, body = PATHS[path_name]
    headers, code, applies = FORBIDDEN[case]
    forbidden = applies is None or path_name in applies
    config = EngineConfig(data_dir=str(tmp_path / "data"))
    async with live_server(config) as srv:
        stream = await open_raw(srv.url)
        sized = {"Content-Length": str(len(body))} if method == "POST" else {}
        await stream.send_all(head(method, path, {**headers, **extra, **sized}) + body)
        with trio.fail_after(5):
            answer = await read_answer(stream)
        await stream.aclose()
        if forbidden:
            assert (answer.status, answer.code) == (403, code), answer.body
            assert srv.engine.store.stats()["events"] == 0
        else:
            assert answer.status in (101, 200, 202), (answer.status, answer.body)


# -- 5. GET /events off the loop; WebSocket ingest within max_batch_bytes ----------------------


async def test_event_listing_runs_off_the_event_loop(config: EngineConfig,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    threads: list[str] = []
    original = events_api.event_list.execute

    def spy(*args: Any) -> Any:
        threads.append(threading.current_thread().name)
        return original(*args)

    monkeypatch.setattr(events_api.event_list, "execute", spy)
    async with live_server(config) as srv, httpx.AsyncClient(base_url=srv.url) as http:
        assert (await http.post("/events", json=EVENT)).status_code == 202
        r = await http.get("/events")
        assert r.status_code == 200 and len(r.json()["events"]) == 1
    assert threads and threads[0] != threading.main_thread().name


async def test_websocket_ingest_message_obeys_max_batch_bytes(tmp_path: Path) -> None:
    limit = MiB
    config = EngineConfig(data_dir=str(tmp_path / "data"),
                          limits=Limits(max_batch_bytes=limit))
    async with live_server(config) as srv, connect(srv.url) as conn:
        pad = "x" * 20_000
        events = [{"type": "t", "userId": f"u{i}", "properties": {"pad": pad}}
                  for i in range(80)]  # ~1.6 MB: under the event limits, over the batch's
        await conn.send({"type": "events", "events": events, "requestId": 1})
        msg = await recv_until(conn, lambda m: m.get("type") in ("error", "ack"))
        assert msg["type"] == "error", msg
        assert msg["data"]["code"] == "payload_too_large", msg
        assert msg["data"]["details"][0]["limit"] == limit
        # the connection stays usable
        await conn.send({"type": "events", "events": events[:2], "requestId": 2})
        ack = await recv_until(conn, lambda m: m.get("type") == "ack")
        assert ack["data"]["accepted"] == 2 and ack["data"]["requestIds"] == [2]
    assert srv.engine.store.stats()["events"] == 2

