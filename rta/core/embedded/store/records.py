"""Length- and checksum-framed records: the on-disk unit of the WAL and the dictionaries.

A crash can leave a torn last record; readers stop at the first frame whose length runs past
the end of the file or whose CRC does not match, and report where the good data ends so the
file can be truncated there.

Threads: pure framing functions; a file is written by one thread at a time (its owner's).
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Iterator

HEADER = struct.Struct("<II")  # payload length, crc32 of payload


def frame(payload: bytes) -> bytes:
    return HEADER.pack(len(payload), zlib.crc32(payload)) + payload


def read_frames(data: bytes | memoryview) -> Iterator[tuple[int, bytes]]:
    """Yields (end offset, payload) for each intact record, stopping at the first torn one."""
    view = memoryview(data)
    offset = 0
    size = len(view)
    while offset + HEADER.size <= size:
        length, crc = HEADER.unpack_from(view, offset)
        start = offset + HEADER.size
        end = start + length
        if end > size:
            return
        payload = bytes(view[start:end])
        if zlib.crc32(payload) != crc:
            return
        offset = end
        yield offset, payload


def read_valid(path: str) -> tuple[list[bytes], int, int]:
    """All intact payloads, the offset where they end, and the file size."""
    with open(path, "rb") as f:
        data = f.read()
    payloads: list[bytes] = []
    good = 0
    for end, payload in read_frames(data):
        payloads.append(payload)
        good = end
    return payloads, good, len(data)


def fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
