"""Server-generated event ids: RFC 9562 version-8 UUIDs, a per-process prefix plus a counter.

Random (version 4) ids cost 16 incompressible bytes per event on disk, more than the rest of
a typical event together. These are as unique in practice (the prefix carries 60 random bits,
drawn again in every process and after a fork) but consecutive within a process, so a sealed
segment stores them in a fraction of a byte each (see `store.encoding`).

Thread rule: any thread; the generator locks its counter.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import numpy as np

_VARIANT = 1 << 63  # RFC 9562 variant bits 10 in the low word
_COUNTER_MASK = (1 << 62) - 1


class _IdSource:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reset()
        os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        raw = int.from_bytes(os.urandom(8))
        self.hi = (raw & ~0xF000) | 0x8000  # version 8
        self.next = int.from_bytes(os.urandom(4))  # (a random start: no shared run of lows)

    def take(self, k: int) -> tuple[int, int]:
        """(high word, first counter) of `k` fresh ids."""
        with self._lock:
            first = self.next
            self.next += k
        if first + k > _COUNTER_MASK:  # (2**62 ids in one process: a new prefix, to be safe)
            with self._lock:
                self._reset()
            return self.take(k)
        return self.hi, first


_SOURCE = _IdSource()


def new_event_id() -> str:
    return new_event_ids(1)[0]


def new_event_ids(k: int) -> list[str]:
    """`k` fresh ids as canonical UUID text (a batch's are written as one byte matrix:
    formatting them one by one cost more than validating the events)."""
    hi, first = _SOURCE.take(k)
    head = f"{hi >> 32:08x}-{(hi >> 16) & 0xFFFF:04x}-{hi & 0xFFFF:04x}-"
    if k < 16:
        return [f"{head}{(lo >> 48):04x}-{lo & 0xFFFFFFFFFFFF:012x}"
                for lo in range(_VARIANT | first, _VARIANT | (first + k))]
    return _texts(head, np.arange(first, first + k, dtype=np.uint64) | np.uint64(_VARIANT))


def new_ids_with_words(k: int) -> tuple[list[str], np.ndarray, np.ndarray]:
    """`k` fresh ids as text and as (high, low) words, so the store need not parse back
    the ids it was just given (`EventBatch.id_words`)."""
    hi, first = _SOURCE.take(k)
    head = f"{hi >> 32:08x}-{(hi >> 16) & 0xFFFF:04x}-{hi & 0xFFFF:04x}-"
    lo = np.arange(first, first + k, dtype=np.uint64) | np.uint64(_VARIANT)
    return _texts(head, lo), np.full(k, hi, dtype=np.uint64), lo


def new_id_array(k: int) -> tuple[Any, np.ndarray, np.ndarray]:
    """`new_ids_with_words` with the texts as one Arrow string array (no Python string per
    id): for batches held as columns."""
    import pyarrow as pa

    hi, first = _SOURCE.take(k)
    head = f"{hi >> 32:08x}-{(hi >> 16) & 0xFFFF:04x}-{hi & 0xFFFF:04x}-"
    lo = np.arange(first, first + k, dtype=np.uint64) | np.uint64(_VARIANT)
    text = _matrix(head, lo)[:, :36]
    offsets = np.arange(0, 36 * (k + 1), 36, dtype=np.int32)
    ids = pa.StringArray.from_buffers(k, pa.py_buffer(offsets),
                                      pa.py_buffer(np.ascontiguousarray(text).tobytes()))
    return ids, np.full(k, hi, dtype=np.uint64), lo


def _matrix(head: str, lo: np.ndarray) -> np.ndarray:
    """(k, 37) bytes: each id's 36 characters and a newline."""
    k = len(lo)
    nibbles = ((lo[:, None] >> _SHIFTS) & np.uint64(0xF)).astype(np.uint8)
    text = np.empty((k, 37), dtype=np.uint8)
    text[:, :19] = np.frombuffer(head.encode(), dtype=np.uint8)
    text[:, 19:23] = _HEX[nibbles[:, :4]]
    text[:, 23] = 45  # '-'
    text[:, 24:36] = _HEX[nibbles[:, 4:]]
    text[:, 36] = 10  # '\n'
    return text


def _texts(head: str, lo: np.ndarray) -> list[str]:
    k = len(lo)
    if not k:
        return []
    nibbles = ((lo[:, None] >> _SHIFTS) & np.uint64(0xF)).astype(np.uint8)
    text = np.empty((k, 37), dtype=np.uint8)
    text[:, :19] = np.frombuffer(head.encode(), dtype=np.uint8)
    text[:, 19:23] = _HEX[nibbles[:, :4]]
    text[:, 23] = 45  # '-'
    text[:, 24:36] = _HEX[nibbles[:, 4:]]
    text[:, 36] = 10  # '\n'
    return text.tobytes()[:-1].decode("ascii").split("\n")


_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_SHIFTS = np.arange(60, -4, -4, dtype=np.uint64)  # the 16 nibbles of a word, high first


def new_id_words(k: int) -> tuple[np.ndarray, np.ndarray]:
    """(high words, low words) of `k` fresh ids, for columnar loads."""
    hi, first = _SOURCE.take(k)
    lo = np.arange(first, first + k, dtype=np.uint64) | np.uint64(_VARIANT)
    return np.full(k, hi, dtype=np.uint64), lo
