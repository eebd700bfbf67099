"""WriteHealth: whether the store can currently make data durable, and why not.

`/health` must not say "ok" while every write answers 507 (disk full, a read-only mount,
WAL errors): monitors would keep routing traffic to a daemon that loses nothing but accepts
nothing either. Failures are recorded by where they happened and cleared by the next
success there, or by `probe_write` once the disk takes writes again.

Thread rule: updated and read on the event loop; `probe_write` runs in a worker thread.
"""

from __future__ import annotations

import os
import time


class WriteHealth:
    def __init__(self) -> None:
        self._failures: dict[str, tuple[str, float]] = {}  # where -> (reason, since)

    @property
    def ok(self) -> bool:
        return not self._failures

    def failed(self, where: str, reason: str) -> None:
        since = self._failures.get(where, ("", time.time()))[1]
        self._failures[where] = (reason, since)

    def recovered(self, *where: str) -> None:
        for name in where:
            self._failures.pop(name, None)

    def reasons(self) -> list[str]:
        now = time.time()
        return [f"{reason} (for {now - since:.0f} s)"
                for reason, since in self._failures.values()]


PROBE_BYTES = 64 * 1024  # room for a WAL frame of a small batch, not just a directory entry


def probe_write(directory: str) -> bool:
    """Whether `directory` takes a small durable write right now (the file is removed)."""
    path = os.path.join(directory, ".write-probe")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, b"\0" * PROBE_BYTES)
            os.fsync(fd)
        finally:
            os.close(fd)
        return True
    except OSError:
        return False
    finally:
        try:
            os.remove(path)
        except OSError:
            pass
