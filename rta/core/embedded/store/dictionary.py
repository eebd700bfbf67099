"""Persistent string dictionaries: strings map to dense int32 codes shared by every segment.

Dense global codes let unique-user counts, group-bys and funnels run as integer kernels
(bincount, sort, unique) across segments without re-encoding strings.

Users and sessions run to millions of distinct strings (about one session per seven events),
and a Python dict costs ~150 bytes per entry: 2 GB for the sessions of 100M events. So only
the most recent entries (the "hot" part, where a live stream's new sessions are) live in a
dict; older ones move in batches to a "cold" part of Arrow string arrays (the text plus
4 bytes) indexed by a numpy open-addressing table of 64-bit string hashes (`HashIndex`),
which is probed a whole batch at a time and every hit checked against the stored text.

Threads: lookups, `encode` and `decode` are safe from any thread (an RLock); `sync` from
any thread, one at a time (its write lock); loading and `close` on the store's owner thread.
"""

from __future__ import annotations

import bisect
import logging
import os
import struct
import threading
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from itertools import repeat
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from rta.core.embedded.store.records import frame, fsync_dir, read_valid

log = logging.getLogger("rta.store")
HOT_MAX = 1 << 17  # entries kept in the dict before they move to the cold part
FILE_HEADER = b"rta-dictionary 2"
ERASED = "\x00erased:"  # the placeholder `Dictionary.forget` leaves for an erased string
_COUNT = struct.Struct("<I")
_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)
_MIX1 = np.uint64(0xFF51AFD7ED558CCD)
_MIX2 = np.uint64(0xC4CEB9FE1A85EC53)


def string_hashes(arr: pa.Array) -> np.ndarray:
    """64-bit hashes of a string array without nulls: FNV-style over 8-byte little-endian
    words (zero-padded), seeded with the length, then an avalanche. Strings of one length
    are a (rows, length) byte matrix, so each length costs a few passes over its rows."""
    arr = arr.cast(pa.large_string())
    n = len(arr)
    out = np.zeros(n, dtype=np.uint64)
    if not n:
        return out
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int64)[arr.offset:arr.offset + n + 1]
    data_buf = arr.buffers()[2]
    data = np.frombuffer(data_buf, dtype=np.uint8) if data_buf is not None else \
        np.zeros(0, np.uint8)
    lengths = np.diff(offsets)
    first = int(lengths[0])
    if bool((lengths == first).all()):  # (ids usually share one length: no gather at all)
        rows = data[int(offsets[0]):int(offsets[-1])].reshape(n, first)
        out[:] = _hash_matrix(rows, first)
        return out
    order = np.argsort(lengths, kind="stable")
    sorted_lengths = lengths[order]
    bounds = np.flatnonzero(np.diff(sorted_lengths)) + 1
    for group in np.split(order, bounds):
        length = int(lengths[group[0]])
        for part in np.array_split(group, max(1, len(group) * max(length, 1) // (1 << 22))):
            index = offsets[part][:, None] + np.arange(length)
            out[part] = _hash_matrix(data[index], length)
    return out


def _hash_matrix(rows: np.ndarray, length: int) -> np.ndarray:
    """`string_hashes` of the strings in a (n, length) uint8 matrix."""
    n = rows.shape[0]
    width = -(-length // 8) * 8
    if width != length:
        padded = np.zeros((n, width), dtype=np.uint8)
        padded[:, :length] = rows
        rows = padded
    words = np.ascontiguousarray(rows).view("<u8")
    h = np.full(n, _FNV_OFFSET ^ np.uint64(length * 0x9E3779B1), dtype=np.uint64)
    for w in range(words.shape[1]):
        h ^= words[:, w]
        h *= _FNV_PRIME
        h ^= h >> np.uint64(29)
    h ^= h >> np.uint64(33)
    h *= _MIX1
    h ^= h >> np.uint64(33)
    h *= _MIX2
    h ^= h >> np.uint64(33)
    h[h == 0] = 1
    return h


def pack_strings(strings: list[str]) -> bytes:
    """One frame payload for a batch of strings: count, int32 offsets, UTF-8 bytes."""
    arr = pa.array(strings, pa.string())
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int32)[:len(arr) + 1]
    data = arr.buffers()[2]
    end = int(offsets[-1])
    return _COUNT.pack(len(arr)) + offsets.tobytes() + (
        data.to_pybytes()[:end] if data is not None else b"")


def _pack_array(arr: pa.Array) -> bytes:
    """`pack_strings` of an Arrow string array, without a Python string per entry."""
    n = len(arr)
    if not n:
        return _COUNT.pack(0) + np.zeros(1, np.int32).tobytes()
    arr = pa.concat_arrays([arr.cast(pa.string())])
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int32)[arr.offset:arr.offset + n + 1]
    data = arr.buffers()[2]
    lo, hi = int(offsets[0]), int(offsets[-1])
    body = data.to_pybytes()[lo:hi] if data is not None and hi > lo else b""
    return _COUNT.pack(n) + (offsets - lo).astype(np.int32).tobytes() + body


def unpack_strings(payload: bytes) -> pa.Array:
    (n,) = _COUNT.unpack_from(payload)
    body = pa.py_buffer(payload)
    offsets = body.slice(_COUNT.size, 4 * (n + 1))
    data = body.slice(_COUNT.size + 4 * (n + 1))
    arr = pa.Array.from_buffers(pa.string(), n, [None, offsets, data])
    arr.validate(full=True)  # (the frame's CRC matched; this guards a logic error, not rot)
    return arr


class HashIndex:
    """uint64 hash -> int32 code as two arrays sorted by hash, 12 bytes an entry, plus a
    directory of where each run of hashes sharing their top bits starts (~8 entries a run).
    A batch of lookups reads the directory, then binary-searches its short runs, all
    vectorised: a few cache misses per string where a plain binary search over millions of
    keys takes ~24. (An open-addressing table cost more: its probe rounds for misses.)
    Inserting merges, O(entries), which the Dictionary does once per HOT_MAX new strings.

    Keys are distinct: `build` reports the entries it left out for sharing a hash."""

    def __init__(self) -> None:
        self.keys = np.zeros(0, dtype=np.uint64)
        self.vals = np.zeros(0, dtype=np.int32)
        self._reindex()

    @property
    def size(self) -> int:
        return len(self.keys)

    @property
    def nbytes(self) -> int:
        return self.keys.nbytes + self.vals.nbytes + self._dir.nbytes

    def _reindex(self) -> None:
        self._bits = max(8, (len(self.keys) // 8).bit_length())
        counts = np.bincount(self._prefix(self.keys), minlength=1 << self._bits)
        self._dir = np.zeros(len(counts) + 1, dtype=np.int64)
        np.cumsum(counts, out=self._dir[1:])

    def _prefix(self, hashes: np.ndarray) -> np.ndarray:
        return (hashes >> np.uint64(64 - self._bits)).astype(np.int64)

    def find(self, hashes: np.ndarray) -> np.ndarray:
        """The code stored under each hash, -1 where there is none."""
        n = len(self.keys)
        if not n or not len(hashes):
            return np.full(len(hashes), -1, dtype=np.int32)
        prefix = self._prefix(hashes)
        lo, hi = self._dir[prefix], self._dir[prefix + 1]
        open_ = np.flatnonzero(lo < hi)
        while len(open_):  # binary search inside each run, all runs at once
            a, b = lo[open_], hi[open_]
            mid = (a + b) >> 1
            right = self.keys[mid] < hashes[open_]
            lo[open_] = np.where(right, mid + 1, a)
            hi[open_] = np.where(right, b, mid)
            open_ = open_[lo[open_] < hi[open_]]
        pos = np.minimum(lo, n - 1)
        return np.where(self.keys[pos] == hashes, self.vals[pos], -1).astype(np.int32)

    def insert(self, hashes: np.ndarray, codes: np.ndarray) -> None:
        """Add entries whose hashes are distinct and absent."""
        order = np.argsort(hashes)
        at = np.searchsorted(self.keys, hashes[order])
        self.keys = np.insert(self.keys, at, hashes[order])
        self.vals = np.insert(self.vals, at, codes[order])
        self._reindex()

    def build(self, hashes: np.ndarray, codes: np.ndarray) -> np.ndarray:
        """Replace the contents; returns the positions (in `hashes`) of entries left out
        because another one has the same hash."""
        order = np.argsort(hashes)
        keys = hashes[order]
        dup = np.zeros(len(keys), dtype=bool)
        dup[1:] = keys[1:] == keys[:-1]
        self.keys = keys[~dup]
        self.vals = codes[order[~dup]]
        self._reindex()
        return order[dup]


class Strings(Sequence[str]):
    """A dictionary's strings by code: the cold Arrow chunks, then the hot list."""

    def __init__(self, owner: Dictionary) -> None:
        self._d = owner

    def __len__(self) -> int:
        return len(self._d)

    def __getitem__(self, index: Any) -> Any:
        d = self._d
        if isinstance(index, slice):
            start, stop, step = index.indices(len(d))
            return [self[i] for i in range(start, stop, step)]
        if index < 0:
            index += len(d)
        with d._lock:
            if index >= d._cold_n:
                return d._hot_strings[index - d._cold_n]
            k = bisect.bisect_right(d._cold_starts, index) - 1
            return d._cold_chunks[k][index - d._cold_starts[k]].as_py()

    def __iter__(self) -> Iterator[str]:
        d = self._d
        with d._lock:
            chunks, hot = list(d._cold_chunks), list(d._hot_strings)
        for chunk in chunks:
            yield from chunk.to_pylist()
        yield from hot


@dataclass(frozen=True)
class PreparedForget:
    """`Dictionary.prepare_forget`'s result: the codes, their strings, and per cold chunk
    index (the chunk it was built from, the chunk with the placeholders)."""

    codes: np.ndarray
    old: list[Any]
    chunks: dict[int, tuple[pa.Array, pa.Array]]


def _valid_codes(codes: np.ndarray, n: int) -> np.ndarray:
    codes = np.unique(np.asarray(codes, dtype=np.int64))
    return codes[(codes >= 0) & (codes < n)]


def _replaced_chunks(chunks: list[pa.Array], starts: list[int], cold_n: int,
                     codes: np.ndarray, skip: Collection[int] = ()
                     ) -> dict[int, tuple[pa.Array, pa.Array]]:
    """For each cold chunk holding some of `codes` (except `skip`): (chunk, the chunk with
    those strings replaced by placeholders)."""
    cold = codes[codes < cold_n]
    out: dict[int, tuple[pa.Array, pa.Array]] = {}
    if not len(cold):
        return out
    which = np.searchsorted(np.asarray(starts), cold, side="right") - 1
    for k in np.unique(which).tolist():
        if k in skip:
            continue
        chunk = chunks[k]
        mine = cold[which == k]
        mask = np.zeros(len(chunk), dtype=bool)
        mask[mine - starts[k]] = True
        marks = pa.array([f"{ERASED}{c}" for c in mine.tolist()], pa.string())
        out[k] = (chunk, pc.replace_with_mask(chunk.cast(pa.string()), pa.array(mask), marks))
    return out


def _utf8(text: str) -> bool:
    """Whether `text` is encodable (JSON lets unpaired surrogate escapes through)."""
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class Dictionary:
    """Append-only string dictionary; the file is fsynced before any segment refers to it."""

    def __init__(self, path: str | None, hot_max: int = HOT_MAX) -> None:
        self.path = path
        self.hot_max = hot_max
        self._hot: dict[str, int] = {}
        self._hot_strings: list[str] = []
        self._promoted = 0  # cold entries also in _hot
        self._cold_chunks: list[pa.Array] = []
        self._cold_starts: list[int] = []
        self._cold_n = 0
        self._index = HashIndex()
        self._overflow: dict[str, int] = {}  # cold strings whose hash another one has
        self.strings = Strings(self)
        self._decoded: np.ndarray = np.empty(0, dtype=object)
        self._fd: int | None = None
        # Codes are positions in the file, so entries are written strictly in order, in
        # batches by sync(); a failed write is rolled back and retried whole next time.
        self._unwritten: list[str] = []
        self._lock = threading.RLock()
        self._write_lock = threading.Lock()  # one sync at a time keeps the file in code order
        self._batched = True  # file format: batch frames after a header (else one per string)
        if path is not None:
            if os.path.exists(path):
                self._load(path)  # (truncates a torn tail, possibly to nothing)
            self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            if not os.fstat(self._fd).st_size:
                os.write(self._fd, frame(FILE_HEADER))  # (made durable by the first sync)
                self._batched = True

    def _load(self, path: str) -> None:
        """Read the file: a header, then one frame per sync holding that sync's strings as an
        Arrow string array's offsets and bytes (built with no Python per string). Files of
        the first format, one frame per string, still load (and are appended to in it)."""
        payloads, good, size = read_valid(path)
        if good < size:
            os.truncate(path, good)
        if not payloads:
            return
        if payloads[0] == FILE_HEADER:
            arrays = [unpack_strings(p) for p in payloads[1:]]
            del payloads
            words = pa.concat_arrays(arrays) if arrays else pa.array([], pa.string())
            del arrays
            step = 1 << 20
            chunks = [words.slice(i, step) for i in range(0, len(words), step)]
            hashes = np.concatenate([string_hashes(c) for c in chunks]) if chunks else \
                np.zeros(0, np.uint64)
            left_out = self._index.build(hashes, np.arange(len(words), dtype=np.int32))
            for i in left_out.tolist():
                self._overflow[words[i].as_py()] = i
            self._cold_chunks = chunks
            self._cold_starts = list(range(0, len(words), step))
            self._cold_n = len(words)
            return
        self._batched = False
        step = max(self.hot_max, 1 << 20)
        for i in range(0, len(payloads), step):
            self._append([p.decode() for p in payloads[i:i + step]])
        del payloads
        try:
            self._rewrite_batched(path)
        except OSError as exc:  # (a full disk: keep the first format, lose only speed)
            log.warning("dictionary %s stays in its first format: %s", path, exc)

    def _rewrite_batched(self, path: str) -> None:
        """Rewrite a first-format file in batch frames (same strings, same order), atomically,
        so the next start loads it without a Python step per string."""
        tmp = path + ".tmp"
        with open(tmp, "wb") as f:
            f.write(frame(FILE_HEADER))
            step = 1 << 20
            for start in range(0, len(self), step):
                f.write(frame(pack_strings(self.array(start, min(len(self), start + step))
                                           .to_pylist())))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        fsync_dir(os.path.dirname(path) or ".")
        self._batched = True

    def __len__(self) -> int:
        return self._cold_n + len(self._hot_strings)

    @property
    def nbytes(self) -> int:
        """Approximate RAM held (the hot dict at ~150 bytes an entry)."""
        cold = sum(c.nbytes for c in self._cold_chunks) + self._index.nbytes
        return cold + 150 * len(self._hot_strings)

    # -- lookups ---------------------------------------------------------------------------

    def lookup(self, text: str) -> int:
        """The code of `text`, or -1 when it was never seen (no insert)."""
        return int(self.lookup_many([text])[0])

    def lookup_many(self, values: Sequence[str | None]) -> np.ndarray:
        """int32 codes of `values`, -1 for None and for strings never seen."""
        with self._lock:
            get: Any = self._hot.get
            codes = np.fromiter(map(get, values, repeat(-1)), dtype=np.int32,
                                count=len(values))
            if self._cold_n and len(codes):
                misses = np.flatnonzero(codes < 0)
                if len(misses):
                    texts = [values[i] for i in misses.tolist()]
                    found = self._cold_lookup(texts)
                    codes[misses] = found
                    self._promote(texts, found)
            return codes

    def _promote(self, texts: list[str | None], codes: np.ndarray) -> None:
        """Keep cold strings just looked up in the dict too, so a returning user costs a
        dict hit next time; at most `hot_max` of them, then the dict starts over."""
        hit = np.flatnonzero(codes >= 0)
        if not len(hit):
            return
        if self._promoted + len(hit) > self.hot_max:
            base = self._cold_n
            self._hot = dict(zip(self._hot_strings, range(base, base + len(self._hot_strings)),
                                 strict=True))
            self._promoted = 0
        found: list[Any] = [texts[i] for i in hit.tolist()]  # (str: only strings are found)
        self._hot.update(zip(found, codes[hit].tolist(), strict=True))
        self._promoted += len(hit)

    def _cold_lookup(self, texts: list[str | None]) -> np.ndarray:
        out = np.full(len(texts), -1, dtype=np.int32)
        # (a text with an unpaired surrogate was never stored: it cannot be UTF-8)
        keep = [i for i, t in enumerate(texts) if t is not None and _utf8(t)]
        if not keep:
            return out
        words = pa.array([texts[i] for i in keep], pa.string())
        found = self._index.find(string_hashes(words))
        hit = np.flatnonzero(found >= 0)
        if len(hit):
            stored = self._cold_take(found[hit])
            same = pc.equal(stored, words.take(pa.array(hit))).to_numpy(zero_copy_only=False)
            rows = np.asarray(keep)[hit[same]]
            out[rows] = found[hit[same]]
        if self._overflow:
            for i in keep:
                code = self._overflow.get(texts[i]) if out[i] < 0 else None  # type: ignore[arg-type]
                if code is not None:
                    out[i] = code
        return out

    def _cold_take(self, codes: np.ndarray) -> pa.Array:
        """Cold strings by code (a take per chunk: ChunkedArray.take concatenates first)."""
        if len(self._cold_chunks) == 1:
            return self._cold_chunks[0].take(pa.array(codes))
        starts = np.asarray(self._cold_starts)
        which = np.searchsorted(starts, codes, side="right") - 1
        order = np.argsort(which, kind="stable")
        sorted_which = which[order]
        bounds = np.flatnonzero(np.diff(sorted_which)) + 1
        parts = []
        for run in np.split(order, bounds):
            k = int(which[run[0]])
            parts.append(self._cold_chunks[k].take(pa.array(codes[run] - starts[k])))
        inverse = np.empty(len(order), dtype=np.int64)
        inverse[order] = np.arange(len(order))
        return pa.concat_arrays(parts).take(pa.array(inverse))

    # -- additions -------------------------------------------------------------------------

    def code(self, text: str) -> int:
        """The code of `text`, adding it (and appending it to the file) when new."""
        with self._lock:
            code = self.lookup(text)
            if code < 0:
                code = self.add_many([text])
            return code

    def add_many(self, new: list[str]) -> int:
        """Add distinct strings not yet present, in one step. Returns the first new code."""
        with self._lock:
            base = len(self)
            self._append(new)
            if self._fd is not None:
                self._unwritten.extend(new)
            return base

    def encode(self, values: Sequence[str | None]) -> np.ndarray:
        """Codes for `values` (-1 for None), adding the new strings."""
        with self._lock:
            codes = self.lookup_many(values)
            misses = np.flatnonzero(codes < 0)
            if len(misses):
                texts = [values[i] for i in misses.tolist()]
                fresh = dict.fromkeys(t for t in texts if t is not None)
                if fresh:
                    base = self.add_many(list(fresh))  # (lookup_many: none is present)
                    new: Any = dict(zip(fresh, range(base, base + len(fresh)), strict=True)).get
                    codes[misses] = np.fromiter(map(new, texts, repeat(-1)), dtype=np.int32,
                                                count=len(texts))
            return codes

    def encode_array(self, arr: pa.Array | pa.ChunkedArray, empty_is_null: bool = False
                     ) -> np.ndarray:
        """`encode` of an Arrow string column (null -> -1; "" too with `empty_is_null`, as
        the validator stores an empty userId as none): each distinct string is looked up
        once, in order of first appearance, so the codes (new ones included) are the very
        codes `encode` gives for the column's values as a list."""
        if isinstance(arr, pa.ChunkedArray):
            arr = arr.combine_chunks()
        encoded = pc.dictionary_encode(arr)  # (dictionary in order of first appearance)
        words: list[Any] = encoded.dictionary.to_pylist()
        if empty_is_null:
            words = [w or None for w in words]
        codes = np.append(self.encode(words), np.int32(-1))
        indices = encoded.indices
        if indices.null_count:
            indices = indices.fill_null(len(words))
        return codes[np.asarray(indices.to_numpy(zero_copy_only=False), dtype=np.int64)]

    def _append(self, new: list[str]) -> None:
        base = len(self)
        self._hot.update(zip(new, range(base, base + len(new)), strict=True))
        self._hot_strings.extend(new)
        if len(self._hot_strings) >= self.hot_max:
            self._freeze()

    def _freeze(self) -> None:
        """Move the hot entries to the cold part (index first, so no reader misses one)."""
        self._freeze_array(pa.array(self._hot_strings, pa.string()))
        self._hot = {}
        self._hot_strings = []
        self._promoted = 0

    def _freeze_array(self, words: pa.Array) -> None:
        """Append `words` (the next codes in order) to the cold part."""
        base = self._cold_n
        codes = np.arange(base, base + len(words), dtype=np.int32)
        hashes = string_hashes(words)
        clash = np.zeros(len(words), dtype=bool)
        if self._index.size:
            clash |= self._index.find(hashes) >= 0
        order = np.argsort(hashes, kind="stable")
        dup = np.zeros(len(words), dtype=bool)
        dup[order[1:]] = hashes[order[1:]] == hashes[order[:-1]]
        clash |= dup
        for i in np.flatnonzero(clash).tolist():
            self._overflow[words[i].as_py()] = base + i
        self._index.insert(hashes[~clash], codes[~clash])
        self._cold_chunks.append(words)
        self._cold_starts.append(base)
        self._cold_n = base + len(words)

    # -- decoding --------------------------------------------------------------------------

    def array(self, start: int, stop: int) -> pa.Array:
        """Strings with codes start <= code < stop as one Arrow array."""
        with self._lock:
            parts = [chunk.slice(max(start - base, 0), max(stop - base, 0) - max(start - base, 0))
                     for chunk, base in zip(self._cold_chunks, self._cold_starts, strict=True)
                     if base < stop and base + len(chunk) > start]
            lo, hi = max(start - self._cold_n, 0), max(stop - self._cold_n, 0)
            if hi > lo:
                parts.append(pa.array(self._hot_strings[lo:hi], pa.string()))
        if not parts:
            return pa.array([], pa.string())
        return parts[0] if len(parts) == 1 else pa.concat_arrays(parts)

    def decoded(self) -> np.ndarray:
        """All strings as an object array indexable by code (cached until the dict grows)."""
        if len(self._decoded) != len(self):
            self._decoded = np.array(list(self.strings), dtype=object)
        return self._decoded

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """Strings for `codes`; -1 decodes to None."""
        codes = np.asarray(codes)
        out = np.full(len(codes), None, dtype=object)
        with self._lock:
            cold = (codes >= 0) & (codes < self._cold_n)
            if cold.any():
                out[cold] = self._cold_take(codes[cold]).to_numpy(zero_copy_only=False)
            hot = np.flatnonzero(codes >= self._cold_n)
            if len(hot):
                strings, base = self._hot_strings, self._cold_n
                out[hot] = [strings[c - base] for c in codes[hot].tolist()]
        return out

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
            data = frame(pack_strings(pending)) if self._batched else b"".join(
                frame(t.encode()) for t in pending)
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

    # -- erasure (rta/core/erasure.py) -------------------------------------------------------

    def prepare_forget(self, codes: np.ndarray) -> PreparedForget:
        """The work of `forget(codes)` that needs no lock (the cold chunks rebuilt with the
        placeholders, the strings found), done ahead in a worker so `forget` itself, on the
        event loop, only swaps chunks in."""
        codes = _valid_codes(codes, len(self))
        with self._lock:
            chunks, starts, cold_n = list(self._cold_chunks), list(self._cold_starts), \
                self._cold_n
            old = self.decode(codes).tolist()
        return PreparedForget(codes, old, _replaced_chunks(chunks, starts, cold_n, codes))

    def forget(self, codes: np.ndarray, prepared: PreparedForget | None = None) -> None:
        """Replace the strings of `codes` by placeholders no lookup finds (`ERASED` + the
        code), in memory: the codes stay valid for the events that remain (none of which
        refers to them), a string sent again gets a new code, and `compact_file` then
        writes the file without them. `prepared` (from `prepare_forget` of the same codes)
        saves the rebuilding."""
        codes = _valid_codes(codes, len(self))
        if not len(codes):
            return
        if prepared is not None and not np.array_equal(prepared.codes, codes):
            prepared = None
        with self._lock:
            old = prepared.old if prepared is not None else self.decode(codes).tolist()
            stale = self._hot.keys() & set(old)
            over = self._overflow.keys() & set(old) if self._overflow else set()
            if stale or over:
                by_text = dict(zip(old, codes.tolist(), strict=True))
                for text in stale:
                    if self._hot[text] == by_text[text]:
                        del self._hot[text]
                for text in over:
                    if self._overflow[text] == by_text[text]:
                        del self._overflow[text]
            hot = codes[codes >= self._cold_n]
            for code in hot.tolist():
                self._hot_strings[code - self._cold_n] = f"{ERASED}{code}"
            cold = codes[codes < self._cold_n]
            done: set[int] = set()
            if prepared is not None:
                for k, (before, after) in prepared.chunks.items():
                    if k < len(self._cold_chunks) and self._cold_chunks[k] is before:
                        self._cold_chunks[k] = after
                        done.add(k)
            # (the hash index keeps the old hashes: a hit is checked against the text,
            # which no longer matches, so the old string is simply not found)
            rest = _replaced_chunks(self._cold_chunks, self._cold_starts, self._cold_n, cold,
                                    skip=done)
            for k, (_before, after) in rest.items():
                self._cold_chunks[k] = after
            self._decoded = np.empty(0, dtype=object)

    def compact_file(self) -> None:
        """Rewrite the file from memory (write, fsync, rename, fsync the folder) so strings
        `forget` replaced leave the disk; entries added meanwhile follow in the new file."""
        if self._fd is None or self.path is None:
            return
        with self._write_lock:
            self._sync_pending()
            with self._lock:
                n = len(self) - len(self._unwritten)
                words = self.array(0, n)
            tmp = self.path + ".tmp"
            with open(tmp, "wb") as f:
                f.write(frame(FILE_HEADER))
                step = 1 << 20
                for start in range(0, n, step):
                    f.write(frame(_pack_array(words.slice(start, step))))
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
            fsync_dir(os.path.dirname(self.path) or ".")
            old, self._fd = self._fd, os.open(self.path, os.O_WRONLY | os.O_APPEND)
            os.close(old)
            self._batched = True

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
