"""Persistent string dictionaries: strings map to dense int32 codes shared by every segment.

Dense global codes let unique-user counts, group-bys and funnels run as integer kernels
(bincount, sort, unique) across segments without re-encoding strings.
"""

from __future__ import annotations

import os

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
            code = self._add_memory(text)
            if self._fd is not None:
                os.write(self._fd, frame(text.encode()))
        return code

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
        if self._fd is not None:
            os.fsync(self._fd)

    def close(self) -> None:
        if self._fd is not None:
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
