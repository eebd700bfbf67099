"""Write-ahead log: every acknowledged batch is framed, written and fsynced before the ack.

The log is a sequence of files; sealing a segment rotates to a new file, and a file is deleted
once a durable segment covers it (the segment records the highest WAL sequence it holds).

Threads: one caller at a time: the store's owner thread, or a worker it waits on (group
commit writes in a worker); `replay` at startup only.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator

from rta.core.embedded.store.records import frame, fsync_dir, read_valid

log = logging.getLogger("rta.wal")
_NAME = re.compile(r"^wal-(\d{8})\.log$")


class WriteAheadLog:
    def __init__(self, directory: str, fsync: bool = True) -> None:
        self.directory = directory
        self.fsync = fsync
        os.makedirs(directory, exist_ok=True)
        self._fd: int | None = None
        self.seq = max(self.sequences(), default=0)
        self.bytes_written = 0
        # (file, offset) just past the last record written: every acknowledged event lies
        # before it (the ClickHouse shipper's read-your-writes mark)
        self.end: tuple[int, int] = (self.seq, 0)

    def sequences(self) -> list[int]:
        out = []
        for name in os.listdir(self.directory):
            m = _NAME.match(name)
            if m:
                out.append(int(m.group(1)))
        return sorted(out)

    def path(self, seq: int) -> str:
        return os.path.join(self.directory, f"wal-{seq:08d}.log")

    def replay(self, after_seq: int, keep_after: int | None = None
               ) -> Iterator[tuple[int, bytes]]:
        """Intact records of files newer than `after_seq`; torn tails are truncated. Older
        files are deleted, except those after `keep_after` (another reader still needs them)."""
        keep_after = after_seq if keep_after is None else keep_after
        for seq in self.sequences():
            path = self.path(seq)
            if seq <= after_seq:
                if seq <= keep_after:
                    os.remove(path)
                continue
            payloads, good, size = read_valid(path)
            if good < size:
                log.warning("WAL %s: truncating torn tail (%d of %d bytes intact)",
                            path, good, size)
                os.truncate(path, good)
            for p in payloads:
                yield seq, p

    def open_new(self) -> int:
        """Start a new file: appends go there from now on. Returns the previous sequence."""
        previous = self.seq
        if self._fd is not None:
            os.close(self._fd)
        self.seq += 1
        self._fd = os.open(self.path(self.seq), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        fsync_dir(self.directory)
        self.end = (self.seq, os.lseek(self._fd, 0, os.SEEK_END))
        return previous

    def write(self, payloads: list[bytes]) -> None:
        """Append records and fsync once for all of them (group commit). Runs off the loop."""
        if self._fd is None:
            self.open_new()
        assert self._fd is not None
        data = b"".join(frame(p) for p in payloads)
        start = os.lseek(self._fd, 0, os.SEEK_END)
        try:
            written = 0
            view = memoryview(data)
            while written < len(data):
                written += os.write(self._fd, view[written:])
            if self.fsync:
                os.fdatasync(self._fd)
        except OSError:
            self._roll_back(start)
            raise
        self.bytes_written += len(data)
        self.end = (self.seq, start + len(data))

    def _roll_back(self, offset: int) -> None:
        """Remove a failed group's partial records so later appends follow intact ones; if
        even that fails, continue in a new file (replay reads each file up to its damage)."""
        assert self._fd is not None
        try:
            os.ftruncate(self._fd, offset)
        except OSError:
            log.error("WAL: could not roll back a failed write; starting a new file")
            os.close(self._fd)
            self._fd = None

    def drop_through(self, seq: int) -> None:
        """Delete files up to and including `seq` (a durable segment now holds them)."""
        for s in self.sequences():
            if s <= seq and s != self.seq:
                os.remove(self.path(s))

    def size_bytes(self) -> int:
        return sum(os.path.getsize(self.path(s)) for s in self.sequences())

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
