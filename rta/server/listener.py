"""hypercorn's trio worker with our own accept loop: quiet at the fd limit, capped per address.

hypercorn's `worker_serve` hands its listeners to `trio.serve_listeners`, which logs a
traceback for every failed accept (about ten a second once the process runs out of file
descriptors) and takes any number of connections from one address (1,100 stalled
connections from one client starved `/health`). `serve` is `worker_serve` (lifespan
startup and shutdown, graceful shutdown, the bound URLs reported through `task_status`)
with its own accept loop and a wrapper around each connection's `TCPServer`:

- an accept that fails for lack of resources (EMFILE, ENFILE, ENOMEM, ENOBUFS) is counted
  (`on_accept_error`), logged once a minute and retried after a short backoff;
- a connection beyond `per_address` open ones from the same address is closed at once;
- a connection that sends no complete request head within `head_timeout` is closed;
- the app may end its own connection (`current_connection().abort()`), so that a refused
  request body is not read to its end: hypercorn would otherwise keep reading it, and a
  final response sent while its queue to the app is full never completes.
"""

from __future__ import annotations

import errno
import logging
import os
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import trio
from hypercorn.config import Config
from hypercorn.trio.lifespan import Lifespan
from hypercorn.trio.statsd import StatsdLogger
from hypercorn.trio.tcp_server import TCPServer
from hypercorn.trio.worker_context import WorkerContext
from hypercorn.typing import ConnectionState
from hypercorn.utils import ShutdownError, raise_shutdown, repr_socket_addr, wrap_app

log = logging.getLogger("rta.server.listener")

CAPACITY_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS})
BACKOFF_MIN_S = 0.01
BACKOFF_MAX_S = 0.25
LOG_EVERY_S = 60.0
LINGER_S = 1.0  # after an abort: how long to read and drop what the client still sends
LINGER_BYTES = 1024 * 1024


@dataclass(frozen=True)
class ConnectionLimits:
    """What `serve` enforces per connection (0 / None: no limit)."""

    per_address: int = 256
    head_timeout: float | None = 30.0
    on_accept_error: Callable[[str], None] | None = None  # called with the errno's name
    on_refused: Callable[[], None] | None = None  # a connection over the per-address cap


@dataclass(eq=False)
class Connection:
    """One accepted connection, as the app running on it sees it (`current_connection`)."""

    address: str
    stream: trio.abc.Stream
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    requested: trio.Event = field(default_factory=trio.Event)
    aborted: bool = False
    active: int = 0  # app calls (requests, WebSocket sessions) running
    ended: bool = False  # the client closed its side (or reading failed)

    def enter(self) -> None:
        """The app starts serving a request on this connection (so a complete request head
        arrived: the head timeout no longer applies)."""
        self.requested.set()
        self.active += 1

    def leave(self) -> None:
        self.active -= 1
        self._close_if_done()

    def reader_done(self) -> None:
        """Nothing more will arrive. hypercorn would keep the connection (and its file
        descriptor) until the keep-alive timeout, 75 s; close it once no request runs."""
        self.ended = True
        self._close_if_done()

    def _close_if_done(self) -> None:
        if self.ended and not self.active:
            self.scope.cancel()

    def abort(self) -> None:
        """End this connection now, without reading the rest of what the client sends.

        Everything the app has sent so far has been written to the socket; the connection is
        then half-closed (the client reads our answer, then the end of the stream) and closed
        after a short linger, so a client still sending sees our answer rather than a reset."""
        self.aborted = True
        self.scope.cancel()


_CURRENT: ContextVar[Connection | None] = ContextVar("rta_connection", default=None)


def current_connection() -> Connection | None:
    """The connection the calling task serves (None outside `serve`, e.g. other servers).

    Set in the connection's own task and inherited by the tasks hypercorn starts for it,
    the app's included."""
    return _CURRENT.get()


def _peer_host(stream: trio.abc.Stream) -> str:
    sock = getattr(stream, "socket", None)
    if sock is None:  # (TLS: the socket is one level down)
        sock = getattr(getattr(stream, "transport_stream", None), "socket", None)
    try:
        peer = sock.getpeername() if sock is not None else None
    except OSError:
        return ""
    if isinstance(peer, tuple):
        return str(peer[0])
    return str(peer or "")


class Listener:
    """The accept loops and per-connection wrappers of one `serve` call."""

    def __init__(self, app: Any, config: Config, context: WorkerContext,
                 state: ConnectionState, limits: ConnectionLimits) -> None:
        self.app = app
        self.config = config
        self.context = context
        self.state = state
        self.limits = limits
        self.open: dict[str, int] = {}
        self.refused = 0
        self.accept_errors = 0
        self._logged_at = float("-inf")
        self._unlogged = 0

    async def accept_loop(self, listener: trio.SocketListener, nursery: trio.Nursery) -> None:
        async with listener:
            delay = 0.0
            while True:
                try:
                    stream = await listener.accept()
                except OSError as exc:
                    if exc.errno not in CAPACITY_ERRNOS:
                        raise
                    self._starved(exc)
                    delay = min(BACKOFF_MAX_S, max(BACKOFF_MIN_S, delay * 2))
                    await trio.sleep(delay)
                    continue
                delay = 0.0
                nursery.start_soon(self.handle, stream)

    def _starved(self, exc: OSError) -> None:
        """Count a failed accept; log one line a minute (trio logged a traceback each)."""
        name = errno.errorcode.get(exc.errno or 0, str(exc.errno))
        self.accept_errors += 1
        if self.limits.on_accept_error is not None:
            self.limits.on_accept_error(name)
        now = time.monotonic()
        if now - self._logged_at < LOG_EVERY_S:
            self._unlogged += 1
            return
        more = f" ({self._unlogged} more failed accepts since the last report)" \
            if self._unlogged else ""
        log.warning("cannot accept connections: %s (%s); retrying with backoff%s. Raise the "
                    "open-files limit or lower max_connections_per_address.",
                    name, os.strerror(exc.errno or 0), more)
        self._logged_at = now
        self._unlogged = 0

    async def handle(self, stream: trio.abc.Stream) -> None:
        """Serve one connection with hypercorn's TCPServer, within the per-address cap."""
        address = _peer_host(stream)
        cap = self.limits.per_address
        count = self.open.get(address, 0)
        if cap and count >= cap:
            self.refused += 1
            if self.limits.on_refused is not None:
                self.limits.on_refused()
            with trio.CancelScope(shield=True):
                await stream.aclose()
            return
        self.open[address] = count + 1
        conn = Connection(address, stream)
        _CURRENT.set(conn)  # (this task's context: hypercorn's tasks for it inherit it)
        try:
            with conn.scope:
                async with trio.open_nursery() as nursery:
                    if self.limits.head_timeout:
                        nursery.start_soon(self._head_deadline, conn, self.limits.head_timeout)
                    await _TCPServer(conn, self.app, self.config, self.context, self.state,
                                     stream)  # type: ignore[arg-type]
                    nursery.cancel_scope.cancel()
        finally:
            left = self.open.get(address, 1) - 1
            if left > 0:
                self.open[address] = left
            else:
                self.open.pop(address, None)
            await _close(stream, linger=conn.aborted)

    @staticmethod
    async def _head_deadline(conn: Connection, timeout: float) -> None:
        """Close a connection that has not sent one complete request head in `timeout`
        (later heads on a kept-alive connection fall under hypercorn's keep_alive_timeout)."""
        with trio.move_on_after(timeout):
            await conn.requested.wait()
            return
        conn.scope.cancel()


class _TCPServer(TCPServer):
    """hypercorn's connection handler, telling our `Connection` when reading has ended."""

    def __init__(self, conn: Connection, *args: Any) -> None:
        super().__init__(*args)
        self.rta_connection = conn

    async def _read_data(self) -> None:
        try:
            await super()._read_data()
        finally:
            self.rta_connection.reader_done()


async def _close(stream: trio.abc.Stream, linger: bool) -> None:
    """Close `stream` (hypercorn may have done so already). After an abort, half-close it
    first and drop what the client still sends for a moment: closing a socket with unread
    input sends a reset, which can reach the client before it has read our answer."""
    with trio.CancelScope(shield=True):
        if linger:
            with trio.move_on_after(LINGER_S):
                try:
                    await stream.send_eof()  # type: ignore[attr-defined]
                    seen = 0
                    while seen < LINGER_BYTES:
                        data = await stream.receive_some(65536)
                        if not data:
                            break
                        seen += len(data)
                except (trio.BrokenResourceError, trio.ClosedResourceError,
                        trio.BusyResourceError, AttributeError, OSError):
                    pass
        try:
            await stream.aclose()
        except (trio.BrokenResourceError, OSError):
            pass


async def serve(app: Any, config: Config, limits: ConnectionLimits, *,
                shutdown_trigger: Callable[..., Awaitable[Any]] | None = None,
                task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED) -> None:
    """hypercorn.trio.serve (its `worker_serve`, HTTP over TCP/TLS; no QUIC) with our
    accept loop and connection wrapper; reports the bound URLs through `task_status`."""
    config.set_statsd_logger_class(StatsdLogger)
    wrapped = wrap_app(app, config.wsgi_max_body_size, None)
    lifespan_state: dict[str, Any] = {}
    lifespan = Lifespan(wrapped, config, lifespan_state)
    context = WorkerContext(None)

    async with trio.open_nursery() as lifespan_nursery:
        await lifespan_nursery.start(lifespan.handle_lifespan)
        await lifespan.wait_for_startup()

        async with trio.open_nursery() as server_nursery:
            sockets = config.create_sockets()
            ssl_context = config.create_ssl_context()
            listeners: list[Any] = []
            binds: list[str] = []
            for sock, secure in [(s, True) for s in sockets.secure_sockets] + \
                    [(s, False) for s in sockets.insecure_sockets]:
                sock.listen(config.backlog)
                listener: Any = trio.SocketListener(trio.socket.from_stdlib_socket(sock))
                if secure and ssl_context is not None:
                    listener = trio.SSLListener(listener, ssl_context, https_compatible=True)
                listeners.append(listener)
                bind = repr_socket_addr(sock.family, sock.getsockname())
                scheme = "https" if secure else "http"
                binds.append(f"{scheme}://{bind}")
                await config.log.info(f"Running on {scheme}://{bind} (CTRL + C to quit)")
            for sock in sockets.quic_sockets:  # (never configured here)
                sock.close()

            server = Listener(wrapped, config, context,
                              ConnectionState(lifespan_state.copy()), limits)
            if hasattr(app, "config"):  # (reports open the dashboard on this address)
                app.config["RTA_BOUND_URLS"] = binds
            task_status.started(binds)
            try:
                async with trio.open_nursery(strict_exception_groups=True) as nursery:
                    if shutdown_trigger is not None:
                        nursery.start_soon(raise_shutdown, shutdown_trigger)
                    nursery.start_soon(raise_shutdown, context.terminate.wait)
                    for listener in listeners:
                        nursery.start_soon(server.accept_loop, listener, server_nursery)
                    await trio.sleep_forever()
            except BaseExceptionGroup as error:
                _, other_errors = error.split((ShutdownError, KeyboardInterrupt))
                if other_errors is not None:
                    raise other_errors from None
            finally:
                await context.terminated.set()
                server_nursery.cancel_scope.deadline = trio.current_time() + \
                    config.graceful_timeout

        await lifespan.wait_for_shutdown()
        lifespan_nursery.cancel_scope.cancel()

