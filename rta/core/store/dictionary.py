"""Persistent string dictionaries: strings map to dense int32 codes shared by every segment.

Dense global codes let unique-user counts, group-bys and funnels run as integer kernels
(bincount, sort, unique) across segments without re-encoding strings.
"""

from __future__ import annotations

import os
import threading

import numpy as np

from rta.core.store.records import frame, read_valid


class Dictionary:
    """Append-only string dictionary; the file is fsynced before any segment refers to it."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self.codes: dict[str, int] = {}
        self.strings: list[str] = []
        self._decoded: np.ndarray = np.empty(0, dtype=object)
        self._fd: int | None = None
        # Codes are positions in the file, so entries are written strictly in order, in
        # batches by sync(); a failed write is rolled back and retried whole next time.
        self._unwritten: list[str] = []
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()  # one sync at a time keeps the file in code order
        if path is not None:
            if os.path.exists(path):
                payloads, good, size = read_valid(path)
                if good < size:
                    os.truncate(path, good)
                for p in payloads:
                    self._add_memory(p.decode())
            self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def __len__(self) -> int:
        return len(self.strings)

    def _add_memory(self, text: str) -> int:
        code = len(self.strings)
        self.codes[text] = code
        self.strings.append(text)
        return code

    def code(self, text: str) -> int:
        """The code of `text`, adding it (and appending it to the file) when new."""
        code = self.codes.get(text)
        if code is None:
            with self._lock:
                code = self._add_memory(text)
                if self._fd is not None:
                    self._unwritten.append(text)
        return code

    def add_many(self, new: list[str]) -> int:
        """Add distinct strings not yet present, in one step (what `code()` does for each, under
        the lock once: a load can bring a million new sessions). Returns the first new code."""
        with self._lock:
            base = len(self.strings)
            self.strings.extend(new)
            self.codes.update(zip(new, range(base, base + len(new)), strict=True))
            if self._fd is not None:
                self._unwritten.extend(new)
        return base

    def encode(self, values: list[str | None]) -> np.ndarray:
        """Codes for `values`, -1 for None."""
        get = self.codes.get
        out = np.empty(len(values), dtype=np.int32)
        for i, v in enumerate(values):
            if v is None:
                out[i] = -1
            else:
                c = get(v)
                out[i] = c if c is not None else self.code(v)
        return out

    def lookup(self, text: str) -> int:
        """The code of `text`, or -1 when it was never seen (no insert)."""
        return self.codes.get(text, -1)

    def decoded(self) -> np.ndarray:
        """All strings as an object array indexable by code (cached until the dict grows)."""
        if len(self._decoded) != len(self.strings):
            self._decoded = np.array(self.strings, dtype=object)
        return self._decoded

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """Strings for `codes`; -1 decodes to None."""
        table = np.append(self.decoded(), np.array([None], dtype=object))
        return table[np.where(codes < 0, len(table) - 1, codes)]

    def sync(self) -> None:
        """Write pending entries and fsync (before any segment that uses them is committed)."""
        if self._fd is None:
            return
        with self._write_lock:
            self._sync_pending()

    def _sync_pending(self) -> None:
        assert self._fd is not None
        with self._lock:
            pending = self._unwritten
            self._unwritten = []
        if pending:
            data = b"".join(frame(t.encode()) for t in pending)
            start = os.lseek(self._fd, 0, os.SEEK_END)
            try:
                written = 0
                while written < len(data):
                    written += os.write(self._fd, data[written:])
                os.fsync(self._fd)
            except OSError:
                try:
                    os.ftruncate(self._fd, start)
                finally:
                    with self._lock:
                        self._unwritten = pending + self._unwritten
                raise
        else:
            os.fsync(self._fd)

    def close(self) -> None:
        if self._fd is not None:
            try:
                self.sync()
            except OSError:
                pass  # the WAL still holds every event; the entries are rebuilt on replay
            os.close(self._fd)
            self._fd = None


class Dictionaries:
    """The store's dictionaries: event types, users, sessions and property string values."""

    NAMES = ("types", "users", "sessions", "values")

    def __init__(self, directory: str | None) -> None:
        def path(name: str) -> str | None:
            return None if directory is None else os.path.join(directory, f"{name}.dict")

        self.types = Dictionary(path("types"))
        self.users = Dictionary(path("users"))
        self.sessions = Dictionary(path("sessions"))
        self.values = Dictionary(path("values"))

    def all(self) -> tuple[Dictionary, ...]:
        return (self.types, self.users, self.sessions, self.values)

    def sync(self) -> None:
        for d in self.all():
            d.sync()

    def close(self) -> None:
        for d in self.all():
            d.close()
