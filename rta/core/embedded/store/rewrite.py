"""File rewrites for erasure: segments and WAL files without some users' events.

Every rewrite is atomic (write a temporary file, fsync, rename, fsync the folder), so a crash
leaves either the old file or the new one. A segment is rewritten under a new number (a
snapshot taken before keeps reading the old file, which the store drops the way retention
does); a WAL file is replaced in place (only files no one appends to any more).

The scans here read columns with `scan` (one pass, no column cache fill), so an erasure does
not evict what queries keep decoded.

Threads: pure functions over immutable blocks and closed files; they run in the erasure's
worker thread.
"""

from __future__ import annotations

import json
import os
from collections.abc import Collection
from dataclasses import dataclass, field

import numpy as np

from rta.core.embedded.store.block import BASE_COLUMNS, Block
from rta.core.embedded.store.column_cache import ColumnCache
from rta.core.embedded.store.records import frame, fsync_dir, read_valid
from rta.core.embedded.store.segment import (
    Segment,
    read_segment,
    segment_name,
    write_segment_file,
)
from rta.core.events import STR, EventBatch


@dataclass
class Codes:
    """Session and property string-value codes the erased events used: candidates for
    leaving the dictionaries (unless a remaining event uses them too)."""

    sessions: set[int] = field(default_factory=set)
    values: set[int] = field(default_factory=set)

    def add(self, other: Codes) -> None:
        self.sessions |= other.sessions
        self.values |= other.values

    def to_json(self) -> dict[str, list[int]]:
        return {"sessions": sorted(self.sessions), "values": sorted(self.values)}

    @classmethod
    def from_json(cls, raw: dict[str, list[int]]) -> Codes:
        return cls(set(raw.get("sessions", [])), set(raw.get("values", [])))


def string_props(block: Block) -> list[str]:
    """The block's string property columns ('s:<key>'), dense and sparse."""
    props = block.prop_columns
    return [n for n in (*props.dense_names(), *props.sparse_names()) if n.startswith(STR + ":")]


def _value_codes(block: Block, names: Collection[str]) -> np.ndarray:
    """Every string value code present in columns `names` of `block` (read once)."""
    if not names:
        return np.zeros(0, dtype=np.int32)
    props = block.scan_props(names)
    parts = [props.dense_column(n) for n in props.dense_names()]
    group = props.groups().get(STR)
    if group is not None:
        parts.append(group.values)
    if not parts:
        return np.zeros(0, dtype=np.int32)
    codes = np.concatenate([np.asarray(p, dtype=np.int64) for p in parts])
    return codes[codes >= 0]


def used_codes(block: Block) -> Codes:
    """The session and string value codes `block`'s events use."""
    sessions = np.unique(block.scan("session"))
    values = np.unique(_value_codes(block, string_props(block)))
    return Codes(set(sessions[sessions >= 0].tolist()), set(values.tolist()))


def still_used(block: Block, wanted: Codes) -> Codes:
    """Which of `wanted` `block`'s events use (vectorised: one isin per column)."""
    out = Codes()
    if not block.n:
        return out
    if wanted.sessions:
        sessions = block.scan("session")
        cand = np.fromiter(wanted.sessions, dtype=np.int64, count=len(wanted.sessions))
        out.sessions = set(cand[np.isin(cand, sessions)].tolist())
    if wanted.values:
        present = _value_codes(block, string_props(block))
        cand = np.fromiter(wanted.values, dtype=np.int64, count=len(wanted.values))
        out.values = set(cand[np.isin(cand, present)].tolist())
    return out


def materialize(block: Block) -> Block:
    """Every column of `block` in memory (a segment's read in one pass, uncached)."""
    base = block.scan_many(list(BASE_COLUMNS))
    props = block.prop_columns
    names = [*props.dense_names(), *props.sparse_names()]
    return Block(**base, id_text=block.id_text, props=block.scan_props(names),
                 label=block.label)


def erased_rows(block: Block, users: np.ndarray) -> np.ndarray:
    """Positions of `block`'s rows whose user code is in `users`."""
    if not block.n or not len(users):
        return np.zeros(0, dtype=np.int64)
    return np.flatnonzero(np.isin(block.scan("user"), users))


def split_segment(block: Block, gone: np.ndarray) -> tuple[Block, Block]:
    """(rows kept, rows `gone`) of `block`, in memory and in time order."""
    whole = materialize(block)
    keep = np.ones(whole.n, dtype=bool)
    keep[gone] = False
    return whole.take(np.flatnonzero(keep)), whole.take(gone)


def write_rewritten(directory: str | None, seg: Segment, kept: Block, seq: int,
                    cache: ColumnCache) -> Segment:
    """`kept` (what is left of `seg`) as segment `seq`: a new file, fsynced and renamed
    into place (in memory only for a store without a directory)."""
    if directory is None or not seg.path:
        recv = kept.recv
        return Segment(seq, "", kept, seg.wal_seq, int(recv.min()), int(recv.max()), 0)
    final = os.path.join(directory, segment_name(seq))
    tmp = final + ".tmp"
    write_segment_file(tmp, kept, seg.wal_seq)
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, final)
    fsync_dir(directory)
    return read_segment(seq, final, cache)


def filter_wal_file(path: str, users: Collection[str]) -> tuple[int, dict[int, int]]:
    """Rewrite WAL file `path` without the events of `users` (by `userId`). Returns the
    events removed and where each old record boundary now lies ({old offset: new offset},
    for a reader's saved position; empty when nothing changed). Records keep their order;
    a record left empty is dropped. A file gone meanwhile (a seal covered it and the store
    deleted it) has nothing left to filter."""
    try:
        payloads, _good, _size = read_valid(path)
    except FileNotFoundError:
        return 0, {}
    out: list[bytes] = []
    removed = 0
    needles = {form for u in users for form in (
        u.encode(), json.dumps(u)[1:-1].encode(), json.dumps(u, ensure_ascii=False)[1:-1]
        .encode())}
    moved: dict[int, int] = {}
    old_at = new_at = 0
    for payload in payloads:
        moved[old_at] = new_at
        old_at += len(frame(payload))
        if any(x in payload for x in needles):  # (cheap: most records hold none)
            batch = EventBatch.from_json(payload)
            keep = [i for i, u in enumerate(batch.users) if u not in users]
            removed += len(batch) - len(keep)
            if len(keep) < len(batch):
                payload = batch.select(keep).to_json() if keep else b""
        if payload:
            out.append(payload)
            new_at += len(frame(payload))
    moved[old_at] = new_at
    if not removed:
        return 0, {}
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(b"".join(frame(p) for p in out))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(os.path.dirname(path) or ".")
    return removed, moved


def codes_of(block: Block) -> Codes:
    """The session and string value codes of removed rows `block` (in memory)."""
    if not block.n:
        return Codes()
    return used_codes(block)
