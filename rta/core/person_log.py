"""The durable identity-link log: `<data dir>/persons/links.log`.

One framed record (length + CRC, `records.py`, as the WAL) per group of links, appended and
fsynced before the request that carried them is answered; a torn last record (a crash
mid-write) is truncated at open. Links are kept for the life of the data (not aged out with
event segments), because a link keeps applying to every event of its ids, old or new.

Thread rule: one owner thread (the engine's event loop) appends; opening reads on any thread.
"""

from __future__ import annotations

import json
import os

from rta.core.embedded.store.records import frame, fsync_dir, read_valid
from rta.core.identity import Link

LOG_DIR = "persons"
LOG_NAME = "links.log"


class LinkLog:
    """Append-only links; `path` None keeps them in memory only (no data directory)."""

    def __init__(self, data_dir: str | None, fsync: bool = True) -> None:
        self.path = None if data_dir is None else os.path.join(data_dir, LOG_DIR, LOG_NAME)
        self.fsync = fsync
        self._fd: int | None = None

    def read(self) -> list[Link]:
        """Every intact link, in the order written (a torn tail is cut off)."""
        if self.path is None or not os.path.exists(self.path):
            return []
        payloads, good, size = read_valid(self.path)
        if good < size:
            with open(self.path, "r+b") as f:
                f.truncate(good)
                os.fsync(f.fileno())
        return [Link.from_json(raw) for p in payloads for raw in json.loads(p)["links"]]

    def append(self, links: list[Link]) -> None:
        if self.path is None or not links:
            return
        if self._fd is None:
            folder = os.path.dirname(self.path)
            created = not os.path.isdir(folder)
            os.makedirs(folder, exist_ok=True)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            if created:
                fsync_dir(os.path.dirname(folder))
            fsync_dir(folder)
        record = frame(json.dumps({"links": [x.to_json() for x in links]}).encode())
        os.write(self._fd, record)
        if self.fsync:
            os.fsync(self._fd)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def rewrite(self, links: list[Link]) -> None:
        """Replace the log by `links` (write, fsync, rename): an erasure's ids leave the
        disk. Appends then go to the new file."""
        if self.path is None:
            return
        folder = os.path.dirname(self.path)
        os.makedirs(folder, exist_ok=True)
        tmp = self.path + ".tmp"
        with open(tmp, "wb") as f:
            if links:
                f.write(frame(json.dumps({"links": [x.to_json() for x in links]}).encode()))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        fsync_dir(folder)
        self.close()  # (the next append opens the new file)
