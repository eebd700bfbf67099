"""The durable person property log: `<data dir>/persons/properties.log`.

One framed record (length + CRC, `records.py`, as the WAL and `links.log`) per group of
updates, appended and fsynced before the request that carried them is answered; a torn last
record is truncated at open. `rewrite` replaces the whole file atomically (write a new file,
fsync, rename over, fsync the folder): erasure uses it so no byte of a forgotten person's
values stays in the log.

Thread rule: one owner thread (the engine's event loop) appends and rewrites; opening reads
on any thread.
"""

from __future__ import annotations

import json
import os

from rta.core.embedded.store.records import frame, fsync_dir, read_valid
from rta.core.person_log import LOG_DIR
from rta.core.person_props import Update

LOG_NAME = "properties.log"


class ProfileLog:
    """Append-only updates; `path` None keeps them in memory only (no data directory)."""

    def __init__(self, data_dir: str | None, fsync: bool = True) -> None:
        self.path = None if data_dir is None else os.path.join(data_dir, LOG_DIR, LOG_NAME)
        self.fsync = fsync
        self._fd: int | None = None

    def read(self) -> list[Update]:
        """Every intact update, in the order written (a torn tail is cut off)."""
        if self.path is None or not os.path.exists(self.path):
            return []
        payloads, good, size = read_valid(self.path)
        if good < size:
            with open(self.path, "r+b") as f:
                f.truncate(good)
                os.fsync(f.fileno())
        return [Update.from_json(raw) for p in payloads for raw in json.loads(p)["updates"]]

    def _open(self) -> int:
        if self._fd is None:
            assert self.path is not None
            folder = os.path.dirname(self.path)
            created = not os.path.isdir(folder)
            os.makedirs(folder, exist_ok=True)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            if created:
                fsync_dir(os.path.dirname(folder))
            fsync_dir(folder)
        return self._fd

    @staticmethod
    def _record(updates: list[Update]) -> bytes:
        return frame(json.dumps({"updates": [u.to_json() for u in updates]},
                                ensure_ascii=False).encode())

    def append(self, updates: list[Update]) -> None:
        if self.path is None or not updates:
            return
        fd = self._open()
        os.write(fd, self._record(updates))
        if self.fsync:
            os.fsync(fd)

    def rewrite(self, updates: list[Update]) -> None:
        """The log becomes exactly `updates` (one record), atomically."""
        if self.path is None:
            return
        self.close()
        folder = os.path.dirname(self.path)
        os.makedirs(folder, exist_ok=True)
        tmp = self.path + ".tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            if updates:
                os.write(fd, self._record(updates))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        fsync_dir(folder)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
