"""Sealed segments: immutable, time-sorted Blocks persisted as uncompressed Arrow IPC files.

Uncompressed IPC memory-maps zero-copy, so sealed data costs page cache rather than heap and
the events held can exceed RAM. The zone map (time bounds, per-type counts, covered WAL
sequence) lives in the schema metadata so pruning needs no extra file.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc

from rta.core.store.block import BASE_COLUMNS, Block
from rta.core.store.records import fsync_dir

FORMAT_VERSION = 1
_NAME = re.compile(r"^seg-(\d{8})\.arrow$")


@dataclass
class Segment:
    seq: int
    path: str
    block: Block
    wal_seq: int
    min_recv: int
    max_recv: int
    size_bytes: int

    @cached_property
    def sorted_ids(self) -> np.ndarray:
        """Sorted low id halves, for vectorised duplicate lookups."""
        return np.sort(self.block.id_lo)


def segment_name(seq: int) -> str:
    return f"seg-{seq:08d}.arrow"


def list_segments(directory: str) -> list[tuple[int, str]]:
    out = []
    for name in os.listdir(directory):
        m = _NAME.match(name)
        if m:
            out.append((int(m.group(1)), os.path.join(directory, name)))
    return sorted(out)


def write_segment_file(path: str, block: Block, wal_seq: int) -> None:
    """Write the segment file format to `path` (no fsync, no rename: callers decide)."""
    arrays = [pa.array(getattr(block, c)) for c in BASE_COLUMNS]
    names = list(BASE_COLUMNS)
    if block.id_text is not None:
        arrays.append(block.id_text)
        names.append("id_text")
    for name, col in block.props.items():
        arrays.append(pa.array(col))
        names.append("p:" + name)
    meta = {
        "version": FORMAT_VERSION, "wal_seq": wal_seq, "rows": block.n,
        "min_ts": block.min_ts, "max_ts": block.max_ts,
        "min_recv": int(block.recv.min()) if block.n else 0,
        "max_recv": int(block.recv.max()) if block.n else 0,
    }
    table = pa.Table.from_arrays(arrays, names=names).replace_schema_metadata(
        {"rta": json.dumps(meta)})
    with open(path, "wb") as f, ipc.new_file(f, table.schema) as writer:
        writer.write_table(table, max_chunksize=max(block.n, 1))


def write_segment(directory: str, seq: int, block: Block, wal_seq: int) -> Segment:
    """Write, fsync and atomically rename a segment file, then reopen it memory-mapped."""
    final = os.path.join(directory, segment_name(seq))
    tmp = final + ".tmp"
    write_segment_file(tmp, block, wal_seq)
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, final)
    fsync_dir(directory)
    return read_segment(seq, final)


def read_segment(seq: int, path: str) -> Segment:
    """Memory-map a segment; raises on a damaged file (the caller reports and skips it)."""
    source = pa.memory_map(path, "r")
    table = ipc.open_file(source).read_all()
    meta = json.loads(table.schema.metadata[b"rta"])
    if meta.get("version") != FORMAT_VERSION or table.num_rows != meta["rows"]:
        raise ValueError(f"segment {path}: unexpected format or row count")

    def col(name: str) -> np.ndarray:
        chunked = table.column(name)
        if chunked.num_chunks == 1:
            return chunked.chunk(0).to_numpy(zero_copy_only=True)
        return chunked.to_numpy()

    props = {name[2:]: col(name) for name in table.column_names if name.startswith("p:")}
    id_text = table.column("id_text").combine_chunks() if "id_text" in table.column_names \
        else None
    block = Block(**{c: col(c) for c in BASE_COLUMNS}, id_text=id_text, props=props,
                  label=os.path.basename(path))
    return Segment(seq=seq, path=path, block=block, wal_seq=meta["wal_seq"],
                   min_recv=meta["min_recv"], max_recv=meta["max_recv"],
                   size_bytes=os.path.getsize(path))
