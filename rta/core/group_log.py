"""The durable group log: `<data dir>/groups/groups.log`.

One framed record (length + CRC, `records.py`, as the WAL and the person link log) per
ingested batch that named new group types or carried group identify calls, appended and
fsynced before the request is answered; a torn last record is truncated at open. Kept for
the life of the data (group properties outlive the events that set them).

Record: `{"types": [...], "sets": [GroupSet.to_json(), ...]}`.

Thread rule: one owner thread (the engine's event loop) appends; opening reads on any thread.
"""

from __future__ import annotations

import json
import os

from rta.core.embedded.store.records import frame, fsync_dir, read_valid
from rta.core.group_wire import GroupSet

LOG_DIR = "groups"
LOG_NAME = "groups.log"


class GroupLog:
    """Append-only group records; `path` None keeps nothing (no data directory)."""

    def __init__(self, data_dir: str | None, fsync: bool = True) -> None:
        self.path = None if data_dir is None else os.path.join(data_dir, LOG_DIR, LOG_NAME)
        self.fsync = fsync
        self._fd: int | None = None

    def read(self) -> list[tuple[list[str], list[GroupSet]]]:
        """Every intact record in the order written (a torn tail is cut off)."""
        if self.path is None or not os.path.exists(self.path):
            return []
        payloads, good, size = read_valid(self.path)
        if good < size:
            with open(self.path, "r+b") as f:
                f.truncate(good)
                os.fsync(f.fileno())
        out = []
        for p in payloads:
            record = json.loads(p)
            out.append(([str(t) for t in record.get("types", [])],
                        [GroupSet.from_json(s) for s in record.get("sets", [])]))
        return out

    def append(self, types: list[str], sets: list[GroupSet]) -> None:
        if self.path is None or not (types or sets):
            return
        if self._fd is None:
            folder = os.path.dirname(self.path)
            created = not os.path.isdir(folder)
            os.makedirs(folder, exist_ok=True)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            if created:
                fsync_dir(os.path.dirname(folder))
            fsync_dir(folder)
        record = frame(json.dumps({"types": types, "sets": [s.to_json() for s in sets]},
                                  separators=(",", ":")).encode())
        os.write(self._fd, record)
        if self.fsync:
            os.fsync(self._fd)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
