"""The durable identity-link log: `<data dir>/persons/links.log` (a `FramedLog`).

One record per group of links, fsynced before the request that carried them is answered.
Links are kept for the life of the data (not aged out with event segments), because a link
keeps applying to every event of its ids, old or new; an erasure rewrites the file without
the person's.

Thread rule: one owner thread (the engine's event loop) appends; opening reads on any thread.
"""

from __future__ import annotations

from rta.core.framed_log import FramedLog
from rta.core.identity import Link

LOG_DIR = "persons"
LOG_NAME = "links.log"


class LinkLog(FramedLog):
    """Append-only links; no data directory keeps them in memory only."""

    def __init__(self, data_dir: str | None, fsync: bool = True) -> None:
        super().__init__(data_dir, LOG_DIR, LOG_NAME, fsync)

    def read(self) -> list[Link]:
        """Every intact link, in the order written."""
        return [Link.from_json(raw) for r in self.records() for raw in r["links"]]

    def append(self, links: list[Link]) -> None:
        if links:
            self.append_record({"links": [x.to_json() for x in links]})

    def rewrite(self, links: list[Link]) -> None:
        """Replace the log by `links`: an erasure's ids leave the disk."""
        self.rewrite_records([{"links": [x.to_json() for x in links]}] if links else [])
