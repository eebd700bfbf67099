"""The daemon: trio.run -> open_engine -> hypercorn's trio worker serving the Quart app.

SIGINT/SIGTERM trigger a graceful shutdown: stop accepting, finish in-flight requests, then
the engine flushes, seals and releases the data directory.
"""

from __future__ import annotations

import ctypes
import logging
import signal
import sys
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import trio
from hypercorn.config import Config as HyperConfig

from rta.core.config import EngineConfig
from rta.core.engine import Engine, open_engine
from rta.server.app import create_app
from rta.server.listener import ConnectionLimits, serve

log = logging.getLogger("rta.daemon")
StartupHook = Callable[[Engine], Awaitable[None]]
KEEP_ALIVE_S = 75  # an idle kept-alive connection is closed after this long
WS_MAX_MESSAGE_BYTES = 16 * 1024 * 1024  # hypercorn's cap on one WebSocket message


def hypercorn_config(host: str, port: int) -> HyperConfig:
    cfg = HyperConfig()
    bind_host = f"[{host}]" if ":" in host and not host.startswith("[") else host
    cfg.bind = [f"{bind_host}:{port}"]
    cfg.accesslog = None
    cfg.errorlog = logging.getLogger("hypercorn.error")
    cfg.graceful_timeout = 5
    cfg.keep_alive_timeout = KEEP_ALIVE_S
    cfg.websocket_max_message_size = WS_MAX_MESSAGE_BYTES
    cfg.websocket_ping_interval = None  # the app pings itself; hypercorn's task delays shutdown
    return cfg


async def serve_app(engine: Engine, host: str, port: int, compression: bool = True,
                    shutdown_trigger: Callable[[], Awaitable[Any]] | None = None,
                    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
                    **options: Any) -> None:
    """Serve `engine` over HTTP until `shutdown_trigger` returns; reports the bound URLs.

    hypercorn's trio worker with our accept loop (`rta.server.listener`): connections per
    client address capped (`max_connections_per_address`), a connection that sends no
    request within `body_timeout` closed, accept failures at the fd limit counted
    (`rta_accept_errors_total`) and logged once a minute."""
    app = create_app(engine, compression=compression, **{"host": host, **options})
    accept_errors = engine.metrics.counter(
        "rta_accept_errors_total", "accepts that failed for lack of resources (errno: EMFILE "
        "= out of file descriptors); the connection waits in the backlog")
    refused = engine.metrics.counter(
        "rta_connections_refused_total", "connections closed on arrival: their address "
        "already had max_connections_per_address open")
    per_address = options.get("max_connections_per_address")
    limits = ConnectionLimits(
        per_address=256 if per_address is None else int(per_address),
        head_timeout=float(options.get("body_timeout") or 30.0),
        on_accept_error=lambda name: accept_errors.inc(errno=name),
        on_refused=lambda: refused.inc())
    await serve(app, hypercorn_config(host, port), limits,
                shutdown_trigger=shutdown_trigger, task_status=task_status)


def raise_fd_limit() -> None:
    """Raise the soft open-files limit to the hard one: every connection holds a
    descriptor, and the usual soft limit (1,024) ran out at ~1,100 stalled clients, after
    which nobody (not even /health) could connect."""
    try:
        import resource
    except ImportError:  # (not POSIX)
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard
    if hard == resource.RLIM_INFINITY:  # (setting infinity fails on Linux and macOS)
        target = 1 << 20
    if soft != resource.RLIM_INFINITY and soft >= target:
        return
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError) as exc:
        log.warning("could not raise the open-files limit from %s to %s: %s", soft, target, exc)


def tune_malloc() -> None:
    """Large arrays go straight to mmap and back to the OS when freed.

    Queries over the whole history allocate transient arrays proportional to the data; with
    glibc's adaptive threshold those land in per-thread arenas and stay resident after the
    query, so RSS grew with the data in the soak. A fixed 1 MiB threshold and two arenas keep
    the resident set to what is actually held. No-op off glibc."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 1 << 20)  # M_MMAP_THRESHOLD (fixing it also stops the adaptation)
        libc.mallopt(-8, 2)  # M_ARENA_MAX
    except (OSError, AttributeError):
        pass


async def run_daemon(config: EngineConfig, host: str, port: int, compression: bool = True,
                     on_ready: Callable[[list[str], Engine], None] | None = None,
                     startup: list[StartupHook] | None = None, **options: Any) -> None:
    tune_malloc()
    raise_fd_limit()
    shutdown = trio.Event()

    async def watch_signals() -> None:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for signum in signals:
                log.info("received %s, shutting down", signal.Signals(signum).name)
                shutdown.set()
                return

    async with open_engine(config) as engine:
        for hook in startup or []:
            await hook(engine)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(watch_signals)
            binds = await nursery.start(partial(
                serve_app, engine, host, port, compression, shutdown.wait, **options))
            if on_ready is not None:
                on_ready(binds, engine)
            # hypercorn returns once shutdown is set and connections are drained.


def configure_logging(fmt: str = "text", level: int = logging.INFO) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        import json
        import time

        class JsonFormatter(logging.Formatter):
            def format(self, record: logging.LogRecord) -> str:
                payload = {"ts": round(time.time(), 3), "level": record.levelname.lower(),
                           "logger": record.name, "message": record.getMessage()}
                extra = getattr(record, "fields", None)
                if isinstance(extra, dict):
                    payload.update(extra)
                return json.dumps(payload, default=str)

        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # httpx logs every request line at INFO, full URL included: webhook URLs (Slack and the
    # like) carry their secret in the path. Deliveries are recorded in the alert history.
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(max(level, logging.WARNING))
