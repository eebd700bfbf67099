"""Server text frames written straight to hypercorn's socket: the one module that reaches
into hypercorn's internals (`DirectSender.attach` checks every attribute it uses and falls
back to plain ASGI when one differs; `tests/server/test_ws_transport.py` fails if it does).

Why: a `/ws` tick to 1,000 subscribers through ASGI cost ~150 us a subscriber (a dict,
wsproto framing, three protocol layers, a lock, a cancel scope, two checkpoints), over the
100 ms target; one shared frame and one non-blocking `send` each keeps it at a few ms.
"""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from rta.core.live import Subscriber
from rta.server.ws_session import SendText

Send = Callable[[dict[str, Any]], Awaitable[None]]
_NOSIGNAL = getattr(socket, "MSG_NOSIGNAL", 0)


_frame_cache: tuple[str | None, bytes] = (None, b"")


def text_frame(text: str) -> bytes:
    """`text` as one unmasked, final WebSocket text frame (RFC 6455 5.2), as a server sends.

    Cached for the last text: a broadcast hands the same string to every subscriber, so
    1,000 subscribers cost one encoding."""
    global _frame_cache
    if _frame_cache[0] is text:
        return _frame_cache[1]
    payload = text.encode()
    n = len(payload)
    if n < 126:
        head = bytes((0x81, n))
    elif n < 65536:
        head = bytes((0x81, 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x81, 127)) + n.to_bytes(8, "big")
    frame = head + payload
    _frame_cache = (text, frame)
    return frame


class DirectSender:
    """Writes server text frames straight to a hypercorn HTTP/1.1 connection's socket.

    Through ASGI each message costs a dict, wsproto framing, three protocol layers, a lock,
    a cancel scope and two trio checkpoints inside `send_all` (~150 us here), and a
    broadcast wakes one sender task per subscriber: a tick to 1,000 clients took longer than
    the 100 ms target. Here the (cached, shared) frame goes out with one non-blocking
    `send`, from the publisher itself when the subscriber has nothing queued
    (`Subscriber.direct`), else from the connection's sender task.

    Frames never interleave: every write, ours and hypercorn's own (pongs, close), happens
    under the connection's send lock. hypercorn's `trio.Lock` is swapped for a semaphore at
    attach time, because a partial write made by the publisher must keep the lock until the
    sender task writes the rest, and a trio.Lock may only be released by its owner.

    Attached only to plain-TCP HTTP/1.1 connections without a negotiated WebSocket extension
    (permessage-deflate changes the frames); anything else, including a hypercorn whose
    internals differ from what `attach` checks, goes through ASGI as usual.
    """

    partial_writes = 0  # frames whose tail went out through send_all (for the tests)

    def __init__(self, ws: Any, stream: trio.SocketStream, sock: socket.socket,
                 lock: trio.Semaphore, open_state: Any) -> None:
        self.ws = ws
        self.stream = stream
        self.sock = sock
        self.lock = lock
        self.open_state = open_state
        self.rest: memoryview | None = None  # the unwritten tail of a partial direct write
        self.broken = False
        self.sub: Subscriber | None = None

    @classmethod
    def attach(cls, send: Send) -> DirectSender | None:
        try:
            from hypercorn.protocol.h11 import H11Protocol
            from hypercorn.protocol.ws_stream import WSStream
            from hypercorn.trio.tcp_server import TCPServer
            from wsproto.connection import ConnectionState

            ws = getattr(send, "__self__", None)
            if not isinstance(ws, WSStream):
                return None
            proto = getattr(ws.send, "__self__", None)
            if not isinstance(proto, H11Protocol):
                return None  # HTTP/2 WebSockets multiplex streams over one socket
            server = getattr(proto.send, "__self__", None)
            if not isinstance(server, TCPServer):
                return None
            stream, lock = server.stream, server.send_lock
            if type(stream) is not trio.SocketStream:
                return None  # TLS
            sock = getattr(stream.socket, "_sock", None)
            if not isinstance(sock, socket.socket) or not isinstance(lock, trio.Lock) \
                    or lock.locked():
                return None
            if ws.connection._proto.extensions or ws.connection.state != ConnectionState.OPEN:
                return None
            semaphore = trio.Semaphore(1, max_value=1)
            server.send_lock = semaphore  # `async with` works the same for hypercorn
            return cls(ws, stream, sock, semaphore, ConnectionState.OPEN)
        except Exception:  # another hypercorn: ASGI it is
            return None

    def usable(self) -> bool:
        ws = self.ws
        return not self.broken and not ws.closed and ws.connection.state == self.open_state

    def _write(self, frame: bytes) -> int:
        """One non-blocking send (the lock held); a closed socket raises, never writes."""
        try:
            return self.sock.send(frame, _NOSIGNAL)
        except (BlockingIOError, InterruptedError):
            return 0
        except OSError as exc:
            self.broken = True
            raise trio.BrokenResourceError(str(exc)) from exc

    def try_send(self, text: str) -> bool:
        """`Subscriber.direct`: write now if the socket takes it; False means "queue it"."""
        if not self.lock.value or not self.usable():
            return False
        frame = text_frame(text)
        self.lock.acquire_nowait()
        try:
            written = self._write(frame)
        except trio.BrokenResourceError:
            written = 0
        if written == len(frame):
            self.lock.release()
            return True
        if not written or self.sub is None:
            self.lock.release()
            return False
        DirectSender.partial_writes += 1
        self.rest = memoryview(frame)[written:]  # the lock stays held until `flush`
        self.sub.poke()
        return True

    async def flush(self) -> None:
        """Write the tail of a partial direct write, then let other writers in."""
        rest, self.rest = self.rest, None
        if rest is None:
            return
        try:
            await self.stream.send_all(rest)
        except BaseException:
            self.broken = True  # a partial frame is on the wire: no more frames
            raise
        finally:
            self.lock.release()

    def sender(self, fallback: SendText) -> SendText:
        async def send_text(text: str) -> None:
            await self.flush()
            if not self.usable():
                await fallback(text)
                return
            frame = text_frame(text)
            lock = self.lock
            if lock.value:
                lock.acquire_nowait()
            else:
                await lock.acquire()
            try:
                written = self._write(frame)
                if written < len(frame):
                    DirectSender.partial_writes += 1
                    try:
                        await self.stream.send_all(memoryview(frame)[written:])
                    except BaseException:
                        self.broken = True
                        raise
            finally:
                lock.release()
        return send_text

    def close(self) -> None:
        """The session ended: release a lock still held for an unwritten tail."""
        if self.rest is not None:
            self.rest = None
            self.broken = True
            self.lock.release()
