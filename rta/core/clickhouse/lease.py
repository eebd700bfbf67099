"""A lease in ClickHouse: which one of several daemons on a database does a singleton job.

Alerts must be evaluated (and notified) by one daemon at a time, however many daemons ship
into the database. ClickHouse has no compare-and-set, so the lease is not a lock row that
daemons fight over: each daemon writes only its own claim row and every daemon reads all of
them and applies the same rule.

    a claim    (lease name, holder id, claimed, expires, version) in the `leases` table
               (ReplacingMergeTree(version): a renewal rewrites the daemon's row).
               `claimed` is when this run of claims began: a renewal keeps it, and a daemon
               whose own claim had expired (it stopped renewing, by its clock) claims afresh
               from now, so it goes to the back of the queue instead of snatching the lease
               back.
    renewal    every `renew_ms` (5 s): write the claim with expires = now + `term_ms` (15 s),
               then read every daemon's newest claim for the lease.
    holder     among claims not expired at the reader's now, the earliest claimed, ties
               broken by holder id: a rule every daemon computes identically from the rows.
    held       this daemon holds the lease while its last successful renewal found it the
               holder and its own claim has `guard_ms` (term/10) left to run. If renewals
               fail (ClickHouse unreachable for this daemon), `held` lapses before the claim
               expires, which is when the others may take over.
    release    a daemon that stops writes its claim expired, so the next in line takes over
               at its next renewal instead of after a term.

Failure modes: the rule depends on each daemon's clock only through "expired at now", so
clocks that disagree by more than `guard_ms` can give two holders (or none) for up to the
difference around a takeover; a daemon paused longer than `guard_ms` between a renewal and
its check (a stopped process, a long GC) can act once on a lease that has moved on. A
takeover therefore can repeat a notification (the new holder's rule states begin afresh);
it never loses the evaluation for longer than a term plus a renewal interval.

The clock is injectable (tests step it by hand) but must read near the wall clock in ms:
the table's TTL drops claims whose expiry is a day past, at insert time too.

Thread rule: `renew`, `holder_now` and `release` are blocking I/O (worker threads; `run`
calls them through trio.to_thread); `held` is a local check, safe from any thread.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable

import trio

from rta.core.clickhouse.connection import ClickHouse, ClickHouseError
from rta.core.clickhouse.schema import LEASES, write_settings

log = logging.getLogger("rta.lease")

TERM_MS = 15_000
RENEW_MS = 5_000
Clock = Callable[[], int]


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


def new_holder_id() -> str:
    """Unique per daemon run: host, process and a random part."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Lease:
    """One daemon's participation in the lease `name` on database `ch`."""

    def __init__(self, ch: ClickHouse, name: str, holder_id: str | None = None,
                 term_ms: int = TERM_MS, renew_ms: int = RENEW_MS, cluster: str | None = None,
                 clock: Clock = wall_ms, guard_ms: int | None = None) -> None:
        if not 0 < renew_ms < term_ms:
            raise ValueError("renew_ms must be positive and shorter than term_ms")
        self.ch = ch
        self.name = name
        self.holder_id = holder_id or new_holder_id()
        self.term_ms = term_ms
        self.renew_ms = renew_ms
        self.guard_ms = term_ms // 10 if guard_ms is None else guard_ms
        self.clock = clock
        self._settings = write_settings(cluster)
        self._lock = threading.Lock()
        self._version = 0
        self._claimed: int | None = None  # when our current run of claims began
        self._expires = 0  # our claim's expiry, as last written
        self._held_until = 0
        self.current: str | None = None  # the holder our last successful renewal saw
        self.last_error: str | None = None

    @property
    def held(self) -> bool:
        """Whether this daemon may act as the holder now (no I/O)."""
        return self.clock() < self._held_until

    def _write(self, claimed: int, expires: int) -> None:
        with self._lock:
            self._version = max(self._version + 1, time.time_ns())
            version = self._version
        self.ch.command(
            f"INSERT INTO `{self.ch.database}`.{LEASES} (name, holder, claimed, expires, "
            "version) SELECT {name:String}, {holder:String}, {claimed:Int64}, {expires:Int64}, "
            "{version:UInt64}",
            {"name": self.name, "holder": self.holder_id, "claimed": claimed,
             "expires": expires, "version": version}, settings=self._settings)

    def holder_now(self, now: int | None = None) -> str | None:
        """The holder by the rule, from the rows as they are (None: no live claim)."""
        now = self.clock() if now is None else now
        rows = self.ch.rows(
            "SELECT holder FROM (SELECT holder, argMax((claimed, expires), version) AS c "
            f"FROM `{self.ch.database}`.{LEASES} WHERE name = {{name:String}} GROUP BY holder) "
            "WHERE c.2 > {now:Int64} ORDER BY c.1, holder LIMIT 1",
            {"name": self.name, "now": now})
        return str(rows[0][0]) if rows else None

    def renew(self) -> bool:
        """Claim or renew, then see who holds; whether this daemon does. A failure (logged,
        kept in `last_error`) leaves `held` to lapse on its own."""
        now = self.clock()
        claimed = self._claimed if self._claimed is not None and now < self._expires else now
        expires = now + self.term_ms
        try:
            self._write(claimed, expires)
            self._claimed, self._expires = claimed, expires
            self.current = self.holder_now(now)
        except ClickHouseError as exc:
            if self.last_error != exc.message:
                log.warning("lease %s: could not renew: %s", self.name, exc.message)
            self.last_error = exc.message
            return self.held
        self.last_error = None
        self._held_until = expires - self.guard_ms if self.current == self.holder_id else 0
        return self.held

    def release(self) -> None:
        """Give the lease up now (the next in line takes it at its next renewal)."""
        self._held_until = 0
        claimed, self._claimed, self._expires = self._claimed, None, 0
        if claimed is not None:  # (expired now: 0 would be dropped by the TTL on insert)
            self._write(claimed, self.clock())

    async def run(self) -> None:
        """Renew every `renew_ms` for as long as the engine runs."""
        while True:
            await trio.to_thread.run_sync(self.renew)
            await trio.sleep(self.renew_ms / 1000)

    def stats(self) -> dict[str, object]:
        return {"name": self.name, "holderId": self.holder_id, "held": self.held,
                "holder": self.current, "lastError": self.last_error}
