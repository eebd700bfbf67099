"""Helpers for erasure tests: a distinctive event log and a byte search of a data directory
that reads inside the compressed segments too."""

from __future__ import annotations

import os
from typing import Any

import pyarrow as pa
import pyarrow.ipc as ipc

T0 = 1_700_000_000_000


def victim_events(tag: str, n_other: int = 240) -> tuple[list[dict[str, Any]], list[str]]:
    """Events of ten other users plus a victim with two distinct ids (an anonymous one
    identified into a login id), each victim event with session ids, an email and an event
    id only it has, and one property value it shares with the others. Returns the events
    and the victim's distinctive strings."""
    anon, login = f"anon-{tag}-victim", f"login-{tag}-victim"
    events: list[dict[str, Any]] = []
    for i in range(n_other):
        user = f"other-{tag}-{i % 10}"
        events.append({"type": ["page", "signup", "purchase"][i % 3], "userId": user,
                       "sessionId": f"s-{tag}-other-{i % 25}", "timestamp": T0 + i * 60_000,
                       "properties": {"plan": ["free", "pro"][i % 2], "n": i,
                                      "shared": "common-value"}})
    mine: list[dict[str, Any]] = []
    for i in range(30):
        mine.append({"id": f"evt-{tag}-victim-{i}", "type": ["page", "signup"][i % 2],
                     "userId": anon if i < 10 else login, "sessionId": f"sess-{tag}-victim-{i % 4}",
                     "timestamp": T0 + i * 480_000 + 7,
                     "properties": {"email": f"{tag}-victim@mail.example", "plan": "pro",
                                    "shared": "common-value",
                                    **({"rare": f"rare-{tag}-victim"} if i == 3 else {})}})
    mine.append({"type": "$identify", "userId": login, "timestamp": T0 + 10 * 480_000 + 9,
                 "properties": {"$anon_distinct_id": anon,
                                "$set": {"city": f"profile-{tag}-victim"}}})
    out = []
    for i, e in enumerate(events):  # interleaved, so every segment holds some of them
        out.append(e)
        if i % 8 == 0 and mine:
            out.append(mine.pop(0))
    out.extend(mine)
    needles = [anon, login, f"sess-{tag}-victim", f"{tag}-victim@mail.example",
               f"rare-{tag}-victim", f"evt-{tag}-victim", f"profile-{tag}-victim"]
    return out, needles


def file_texts(path: str) -> list[bytes]:
    """A file's bytes, and for an Arrow segment also every column's buffers after
    decompression and its schema metadata (what zstd hides from a plain grep)."""
    with open(path, "rb") as f:
        out = [f.read()]
    if path.endswith(".arrow"):
        reader = ipc.open_file(pa.memory_map(path, "r"))
        out.append(str(reader.schema.metadata).encode())
        for i in range(reader.num_record_batches):
            batch = reader.get_batch(i)
            for column in batch.columns:
                out.extend(_buffers(column))
    return out


def _buffers(array: pa.Array) -> list[bytes]:
    out = [b.to_pybytes() for b in array.buffers() if b is not None]
    if pa.types.is_list(array.type) or pa.types.is_struct(array.type):
        for child in (array.values,) if pa.types.is_list(array.type) else \
                [array.field(j) for j in range(array.type.num_fields)]:
            out.extend(_buffers(child))
    return out


def find_bytes(data_dir: str, needles: list[str]) -> list[tuple[str, str]]:
    """(file, needle) for every needle found in any file under `data_dir`."""
    found = []
    files = 0
    for root, _dirs, names in os.walk(data_dir):
        for name in names:
            path = os.path.join(root, name)
            files += 1
            texts = file_texts(path)
            for needle in needles:
                if any(needle.encode() in t for t in texts):
                    found.append((os.path.relpath(path, data_dir), needle))
    assert files, "nothing was searched"
    return found
