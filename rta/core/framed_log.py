"""An append-only file of JSON records, each framed (length + CRC, `records.py`, as the WAL).

The identity links, person properties and groups each keep one (`person_log.py`,
`profile_log.py`, `group_log.py`): appended and fsynced before the request that carried the
records is answered; a torn last record (a crash mid-write) is truncated at open; `rewrite`
replaces the whole file atomically (new file, fsync, rename, fsync the folder), which is how
an erasure leaves no byte of a person behind.

Thread rule: one owner thread (the engine's event loop) appends and rewrites; reading at
open on any thread.
"""

from __future__ import annotations

import json
import os
from typing import Any

from rta.core.embedded.store.records import frame, fsync_dir, read_valid


class FramedLog:
    """Records under `<data dir>/<folder>/<name>`; no data directory keeps nothing."""

    def __init__(self, data_dir: str | None, folder: str, name: str,
                 fsync: bool = True) -> None:
        self.path = None if data_dir is None else os.path.join(data_dir, folder, name)
        self.fsync = fsync
        self._fd: int | None = None

    def records(self) -> list[Any]:
        """Every intact record, in the order written (a torn tail is cut off)."""
        if self.path is None or not os.path.exists(self.path):
            return []
        payloads, good, size = read_valid(self.path)
        if good < size:
            with open(self.path, "r+b") as f:
                f.truncate(good)
                os.fsync(f.fileno())
        return [json.loads(p) for p in payloads]

    def append_record(self, record: Any) -> None:
        if self.path is None:
            return
        fd = self._open()
        os.write(fd, _framed(record))
        if self.fsync:
            os.fsync(fd)

    def rewrite_records(self, records: list[Any]) -> None:
        """The file becomes exactly `records`, atomically; appends then go to it."""
        if self.path is None:
            return
        self.close()
        folder = os.path.dirname(self.path)
        os.makedirs(folder, exist_ok=True)
        tmp = self.path + ".tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            if records:
                os.write(fd, b"".join(_framed(r) for r in records))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        fsync_dir(folder)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

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


def _framed(record: Any) -> bytes:
    # (ASCII escapes: a lone surrogate that slipped through cannot make the append fail)
    return frame(json.dumps(record, separators=(",", ":")).encode())
