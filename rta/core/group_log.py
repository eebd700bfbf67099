"""The durable group log: `<data dir>/groups/groups.log` (a `FramedLog`).

One record per ingested batch that named new group types or carried group identify calls,
fsynced before the request is answered. Kept for the life of the data (group properties
outlive the events that set them).

Record: `{"types": [...], "sets": [GroupSet.to_json(), ...]}`.

Thread rule: one owner thread (the engine's event loop) appends; opening reads on any thread.
"""

from __future__ import annotations

from rta.core.framed_log import FramedLog
from rta.core.group_wire import GroupSet

LOG_DIR = "groups"
LOG_NAME = "groups.log"


class GroupLog(FramedLog):
    """Append-only group records; no data directory keeps nothing."""

    def __init__(self, data_dir: str | None, fsync: bool = True) -> None:
        super().__init__(data_dir, LOG_DIR, LOG_NAME, fsync)

    def read(self) -> list[tuple[list[str], list[GroupSet]]]:
        """Every intact record in the order written."""
        return [([str(t) for t in r.get("types", [])],
                 [GroupSet.from_json(s) for s in r.get("sets", [])]) for r in self.records()]

    def append(self, types: list[str], sets: list[GroupSet]) -> None:
        if types or sets:
            self.append_record({"types": types, "sets": [s.to_json() for s in sets]})
