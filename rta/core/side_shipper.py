"""What the person-link and person-property shippers share: a queue of changes made on the
event loop, a task that ships them to ClickHouse from a worker thread (everything once at
start, then each change; retried with backoff while ClickHouse is unreachable), and the
read-your-writes wait queries do (`mark`, `wait_shipped`).

Thread rule: `_queued_one` on the event loop; `run` is a task of the engine's nursery;
`wait_shipped` from query threads.
"""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable

import trio

from rta.core.errors import RtaError

log = logging.getLogger("rta.side_shipper")


class SideShipper(ABC):
    """Subclasses hold their pending changes under `_cond`, call `_queued_one` after adding
    one, and implement `_send(first)`: take the pending changes, send them (and with
    `first` everything), put them back on failure, return whether anything was sent and
    the queue count it covered."""

    what = "changes"  # (for the log line)

    def __init__(self, on_shipped: Callable[[], None]) -> None:
        self.on_shipped = on_shipped
        self._queued = 0
        self._shipped = 0
        self._cond = threading.Condition()
        self._wake = trio.Event()
        self._started = False

    def _queued_one(self) -> None:
        """After a change was added under `_cond`: count it and wake the task."""
        self._queued += 1
        self._wake.set()

    def mark(self) -> int:
        """What a query must wait for: every change queued so far."""
        return self._queued

    def wait_shipped(self, mark: int, timeout: float = 10.0) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self._shipped >= mark and self._started,
                                       timeout)

    @abstractmethod
    def _send(self, first: bool) -> tuple[bool, int]: ...

    @abstractmethod
    def _has_pending(self) -> bool: ...

    def _ship(self, first: bool) -> None:
        sent, upto = self._send(first)
        with self._cond:
            self._shipped = max(self._shipped, upto)
            self._started = True
            self._cond.notify_all()
        if sent or first:
            self.on_shipped()

    async def run(self) -> None:
        first = True
        delay = 1.0
        while True:
            self._wake = trio.Event()
            try:
                await trio.to_thread.run_sync(self._ship, first)
            except (RtaError, OSError) as exc:
                log.error("could not ship %s to ClickHouse (%s); retrying", self.what, exc)
                await trio.sleep(delay)
                delay = min(delay * 2, 30.0)
                continue
            first, delay = False, 1.0
            if not self._has_pending():
                await self._wake.wait()
