"""Read events from files: NDJSON, JSON array, CSV and Parquet, streamed in batches."""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import stat
import sys
import zlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import IO, Any

from rta.core import jsonstrict
from rta.core.queries.timeparse import datetime_ms

FORMATS = ("ndjson", "json", "csv", "parquet")
TOP_LEVEL = ("id", "type", "userId", "sessionId", "timestamp")


GZIP_MAGIC = b"\x1f\x8b"
PARQUET_MAGIC = b"PAR1"
_SNIFF_LIMIT = 1 << 20  # leading whitespace read at most while looking for the first byte


class ReadError(Exception):
    """A file could not be read as events; says which file and where."""


def detect_format(path: str, explicit: str | None = None) -> str:
    if explicit:
        if explicit not in FORMATS:
            raise ReadError(f"unknown format {explicit!r}; use one of {', '.join(FORMATS)}")
        return explicit
    name = path.lower().removesuffix(".gz")
    if name.endswith((".ndjson", ".jsonl")):
        return "ndjson"
    if name.endswith(".json"):
        return "json"
    if name.endswith(".csv"):
        return "csv"
    if name.endswith((".parquet", ".pq")):
        return "parquet"
    return "ndjson"


def _has_suffix(path: str) -> bool:
    """Whether the file's name says its format (else its first bytes are sniffed)."""
    return path.lower().removesuffix(".gz").endswith(
        (".ndjson", ".jsonl", ".json", ".csv", ".parquet", ".pq"))


@dataclass
class Batch:
    """Raw event objects and, for NDJSON and CSV, the 1-based line each one starts on.

    From `Source.arrow_batches`, a batch may instead hold `table`, the events as Arrow
    columns in the schema `POST /events/batch` takes (then `events` is built on demand,
    for a sink that needs objects)."""

    events: list[Any]
    lines: list[int] | None = None
    table: Any = None  # pyarrow.Table | None

    def __len__(self) -> int:
        return self.table.num_rows if self.table is not None else len(self.events)

    def objects(self) -> list[Any]:
        """The events as objects (from the table when there is one)."""
        if self.table is not None and not self.events:
            from rta.core.arrow_ingest import table_events

            self.events = table_events(self.table)
        return self.events


class _Counting(io.RawIOBase):
    """Counts the bytes read from an input as stored (compressed or not): the progress."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        read1 = getattr(self.raw, "read1", None)  # a pipe: what is there, without waiting
        data = read1(len(b)) if read1 is not None else self.raw.read(len(b))
        n = len(data)
        b[:n] = data
        self.count += n
        return n


class _Pushback(io.RawIOBase):
    """A byte stream whose first bytes can be looked at (sniffed) and then read again."""

    def __init__(self, stream: io.RawIOBase | io.BufferedIOBase) -> None:
        self.stream = stream
        self.held = b""

    def readable(self) -> bool:
        return True

    def head(self, n: int) -> bytes:
        """The first `n` bytes (fewer at the end of the input), still unread."""
        while len(self.held) < n:
            read1 = getattr(self.stream, "read1", None)
            more = read1(n - len(self.held)) if read1 is not None else \
                self.stream.read(n - len(self.held))
            if not more:
                break
            self.held += more
        return self.held[:n]

    def first_byte(self) -> bytes:
        """The first byte that is not whitespace or a UTF-8 byte order mark (b"": none)."""
        n = 64
        while True:
            head = self.head(n)
            text = head.removeprefix(b"\xef\xbb\xbf").lstrip()
            if text or len(head) < n or n >= _SNIFF_LIMIT:
                return text[:1]
            n *= 4

    def readinto(self, b: Any) -> int:
        if self.held:
            n = min(len(b), len(self.held))
            b[:n] = self.held[:n]
            self.held = self.held[n:]
            return n
        data = self.stream.read(len(b)) or b""
        b[:len(data)] = data
        return len(data)


class Source:
    """One input of `rta ingest`: a file or stdin ("-"), opened, its format settled, and
    read in batches.

    gzip is recognised by its magic bytes; a `.gz` name that is not gzip is an error. Stdin
    (and a file whose name says nothing) is sniffed: Parquet by `PAR1`, a JSON array by `[`,
    NDJSON by `{`; anything else needs --format. `total` is the size in bytes when known (a
    regular file; rows for Parquet) and `done` how much of it has been read, for progress.
    """

    def __init__(self, path: str, fmt: str | None = None,
                 stream: IO[bytes] | None = None) -> None:
        self.path = path
        self.name = "stdin" if path == "-" else path
        explicit = detect_format(path, fmt) if fmt else None
        raw = stream if stream is not None else sys.stdin.buffer if path == "-" \
            else self._open(path)
        self._raw = raw
        self._owned = stream is None and path != "-"  # closed here (stdin is not)
        self.total: int | None = None
        try:
            st = os.fstat(raw.fileno())
            if stat.S_ISREG(st.st_mode):
                self.total = st.st_size - (raw.tell() if raw.seekable() else 0)
        except (OSError, ValueError, io.UnsupportedOperation):
            pass
        self._counter = _Counting(raw)
        sniffer = _Pushback(self._counter)
        self.compressed = sniffer.head(2) == GZIP_MAGIC
        if path.lower().endswith(".gz") and not self.compressed:
            self.close()
            raise ReadError(f"{path}: not a gzip file, though its name ends in .gz")
        if self.compressed:
            sniffer = _Pushback(gzip.GzipFile(fileobj=io.BufferedReader(sniffer), mode="rb"))
        self._data = sniffer
        self._rows_done = 0
        try:
            self.fmt = explicit or self._sniff(sniffer)
            # On stdin a leading '[' means a JSON array even when NDJSON was asked for.
            if self.fmt == "ndjson" and path == "-" and sniffer.first_byte() == b"[":
                self.fmt = "json"
        except (OSError, EOFError, zlib.error) as exc:
            self.close()
            raise self._damaged(exc) from None
        except BaseException:
            self.close()
            raise

    @staticmethod
    def _open(path: str) -> IO[bytes]:
        try:
            return open(path, "rb")  # closed by Source.close
        except FileNotFoundError:
            raise ReadError(f"no such file: {path}") from None
        except IsADirectoryError:
            raise ReadError(f"{path}: is a directory, not a file of events") from None
        except OSError as exc:
            raise ReadError(f"cannot read {path}: {exc.strerror or exc}") from None

    def _sniff(self, data: _Pushback) -> str:
        if self.path != "-" and _has_suffix(self.path):
            return detect_format(self.path)
        if data.head(4) == PARQUET_MAGIC:
            return "parquet"
        first = data.first_byte()
        if first in (b"{", b"[", b""):
            return "ndjson"  # ('[' on stdin becomes json; an empty input holds no events)
        if self.path != "-":
            return "ndjson"  # a name without a known suffix: NDJSON, as always
        raise ReadError(f"{self.name} is not JSON, gzip or Parquet (it starts with "
                        f"{data.head(12)!r}); give --format (e.g. --format csv)")

    def _damaged(self, exc: BaseException) -> ReadError:
        if self.compressed:
            return ReadError(f"{self.name}: damaged gzip data: {exc}")
        return ReadError(f"cannot read {self.name}: {getattr(exc, 'strerror', None) or exc}")

    @property
    def done(self) -> int:
        """Bytes of the input read so far (rows, for Parquet)."""
        return self._rows_done if self.fmt == "parquet" else self._counter.count

    def close(self) -> None:
        if self._owned:
            self._raw.close()

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def batches(self, size: int = 5000) -> Iterator[Batch]:
        """Batches of raw event objects (validation is the server's job); bad input raises
        ReadError naming the file and, where it can, the line."""
        with self._read_errors():
            if self.fmt == "parquet":
                yield from self._parquet(size, lambda rb: Batch(_parquet_events(rb.to_pylist())))
                return
            text = io.TextIOWrapper(io.BufferedReader(self._data, 1 << 16),
                                    encoding="utf-8-sig",
                                    newline="" if self.fmt == "csv" else None)
            if self.fmt == "csv":
                yield from _csv_batches(text, self.name, size)
            elif self.fmt == "json":
                yield from _json_batches(text, self.name, size)
            else:
                yield from _ndjson_batches(text, self.name, size)

    @contextmanager
    def _read_errors(self) -> Iterator[None]:
        """Undecodable text and damaged or truncated (compressed) input as ReadError."""
        try:
            yield
        except UnicodeDecodeError as exc:
            raise ReadError(f"{self.name}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x}: "
                            f"{exc.reason})") from None
        except (OSError, EOFError, zlib.error) as exc:
            raise self._damaged(exc) from None

    def _parquet(self, size: int, convert: Callable[[Any], Batch]) -> Iterator[Batch]:
        """The Parquet file's record batches, each as `convert` makes it a Batch; an
        unreadable file as ReadError."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        source: Any = self.path
        if self.path == "-" or self.compressed:
            source = io.BytesIO(self._data.read())
        try:
            pf = pq.ParquetFile(source)
            self.total = pf.metadata.num_rows
            for record_batch in pf.iter_batches(batch_size=size):
                batch = convert(record_batch)
                self._rows_done += record_batch.num_rows
                yield batch
        except pa.ArrowException as exc:
            raise ReadError(f"{self.name}: not a readable Parquet file: {exc}") from None


    def arrow_batches(self, size: int = 5000) -> Iterator[Batch]:
        """Batches for a daemon: NDJSON and Parquet read by pyarrow into Arrow tables (a
        chunk pyarrow cannot type as the server's schema takes it, e.g. ISO timestamps or
        a key holding both text and numbers, is read as objects instead, so nothing is
        lost or changed); JSON arrays and CSV as objects (`batches`)."""
        with self._read_errors():
            if self.fmt == "ndjson":
                yield from self._ndjson_arrow(size)
            elif self.fmt == "parquet":
                yield from self._parquet(size, _parquet_table_batch)
            else:
                yield from self.batches(size)

    def _ndjson_arrow(self, size: int) -> Iterator[Batch]:
        import pyarrow as pa
        import pyarrow.json as pajson

        options = pajson.ReadOptions(use_threads=True, block_size=1 << 20)
        line = 1
        tail = b""
        first = True
        while True:
            block = self._data.read(NDJSON_CHUNK_BYTES)
            if first and block:
                block = block.removeprefix(b"\xef\xbb\xbf")
                first = False
            data = tail + block if tail else block
            if block:
                cut = data.rfind(b"\n") + 1
                if cut == 0:
                    tail = data
                    continue
                data, tail = data[:cut], data[cut:]
            else:
                tail = b""
            if data:
                starts, ends, numbers, newlines = _line_spans(data, line)
                table = None
                try:
                    table = pajson.read_json(pa.BufferReader(data), read_options=options)
                except (pa.ArrowException, ValueError):
                    pass
                if table is not None and table.num_rows == len(starts) and \
                        _sendable(table):
                    for lo in range(0, table.num_rows, size):
                        yield Batch([], numbers[lo:lo + size].tolist(),
                                    table.slice(lo, size))
                else:
                    yield from self._ndjson_objects(data, starts, ends, numbers, size)
                line += newlines
            if not block:
                return

    def _ndjson_objects(self, data: bytes, starts: Any, ends: Any, numbers: Any,
                        size: int) -> Iterator[Batch]:
        """A chunk pyarrow could not take, parsed line by line as `batches` does."""
        yield from _json_lines(((lineno, data[lo:hi].decode("utf-8")) for lo, hi, lineno
                                in zip(starts.tolist(), ends.tolist(), numbers.tolist(),
                                       strict=True)), self.name, size)



def _parquet_table_batch(record_batch: Any) -> Batch:
    """A Parquet record batch as an Arrow table a daemon takes as it is, or as objects
    where it does not fit the server's schema."""
    import pyarrow as pa

    table = _as_event_columns(pa.Table.from_batches([record_batch]))
    if _sendable(table, timestamps=True):
        return Batch([], None, table)
    return Batch(_parquet_events(table.to_pylist()))


def _as_event_columns(table: Any) -> Any:
    """A Parquet table in the Arrow batch schema: columns other than the event's fields
    and `properties` are properties (as `batches` reads them); `EXPORT_ONLY` are dropped."""
    names = []
    for name in table.column_names:
        if name in TOP_LEVEL or name == "properties" or name.startswith("properties."):
            names.append(name)
        elif name not in EXPORT_ONLY:
            names.append("properties." + name)
        else:
            names.append("")
    table = table.rename_columns(names)
    return table.drop_columns([""]) if "" in names else table


# Columns an rta export adds that the daemon derives again (arrival time, the person of the
# distinct id): dropped when an export is ingested, so a round trip is the identity.
EXPORT_ONLY = frozenset({"receivedAt", "personId"})
NDJSON_CHUNK_BYTES = 4 << 20  # bytes of NDJSON parsed by pyarrow at once


def _line_spans(data: bytes, first_line: int) -> tuple[Any, Any, Any, int]:
    """(starts, ends, 1-based line numbers) of the non-blank lines of `data`, and how many
    lines it holds."""
    import numpy as np

    buf = np.frombuffer(data, dtype=np.uint8)
    nl = np.flatnonzero(buf == 10)
    starts = np.r_[0, nl + 1]
    ends = np.r_[nl, len(buf)]
    if len(starts) and starts[-1] == len(buf):
        starts, ends = starts[:-1], ends[:-1]
    keep = ends > starts
    blank = np.zeros(256, dtype=bool)
    blank[[9, 10, 11, 12, 13, 32]] = True
    keep[keep] = ~blank[buf[starts[keep]]]
    for i in np.flatnonzero((ends > starts) & ~keep).tolist():
        keep[i] = bool(data[starts[i]:ends[i]].strip())
    numbers = np.arange(first_line, first_line + len(starts))
    newlines = len(nl) + (0 if data.endswith(b"\n") else 1)
    return starts[keep], ends[keep], numbers[keep], newlines


def _sendable(table: Any, timestamps: bool = False) -> bool:
    """Whether the server's Arrow schema takes the table as is. Timestamps pyarrow found in
    NDJSON text are not trusted (rta parses ISO text itself); Parquet's are real ones."""
    import pyarrow as pa

    from rta.core.arrow_ingest import check_schema
    from rta.core.errors import ValidationError

    if not timestamps and any(_has_time(f.type) for f in table.schema):
        return False
    if any(pa.types.is_timestamp(f.type) for f in table.schema if f.name != "timestamp"):
        return False
    try:
        check_schema(table.schema)
    except ValidationError:
        return False
    return True


def _has_time(t: Any) -> bool:
    import pyarrow as pa

    if pa.types.is_struct(t):
        return any(_has_time(f.type) for f in t)
    return bool(pa.types.is_timestamp(t) or pa.types.is_date(t) or pa.types.is_time(t))


def iter_batches(path: str, fmt: str, size: int = 5000) -> Iterator[list[Any]]:
    """Batches of raw event objects (validation is the server's job)."""
    with Source(path, fmt) as source:
        for batch in source.batches(size):
            yield batch.events


def _json_batches(f: IO[str], name: str, size: int) -> Iterator[Batch]:
    try:
        data = jsonstrict.loads(f.read())
    except json.JSONDecodeError as exc:
        raise ReadError(f"{name}:{exc.lineno}: not valid JSON: {exc.msg}") from None
    if isinstance(data, dict) and isinstance(data.get("events"), list):
        data = data["events"]
    if not isinstance(data, list):
        raise ReadError(f"{name}: a JSON file must hold an array of events")
    for i in range(0, len(data), size):
        yield Batch(data[i:i + size])


def _ndjson_batches(f: IO[str], name: str, size: int) -> Iterator[Batch]:
    yield from _json_lines(((lineno, line) for lineno, line in enumerate(f, 1)
                            if line.strip()), name, size)


def _json_lines(numbered: Iterable[tuple[int, str]], name: str, size: int
                ) -> Iterator[Batch]:
    """(line number, JSON text) pairs as batches of `size` objects that remember their
    lines; the first line that is not JSON is a ReadError naming it."""
    events: list[Any] = []
    lines: list[int] = []
    for lineno, text in numbered:
        try:
            events.append(jsonstrict.loads(text))
        except json.JSONDecodeError as exc:
            raise ReadError(f"{name}:{lineno}: not valid JSON: {exc.msg}") from None
        lines.append(lineno)
        if len(events) >= size:
            yield Batch(events, lines)
            events, lines = [], []
    if events:
        yield Batch(events, lines)


def _csv_batches(f: IO[str], name: str, size: int) -> Iterator[Batch]:
    reader = csv.DictReader(f)
    events: list[Any] = []
    lines: list[int] = []
    try:
        for row in reader:
            # The record ends on reader.line_num; a quoted cell may have spanned lines.
            inner = sum(v.count("\n") for v in row.values() if isinstance(v, str))
            events.append(_csv_event(row))
            lines.append(reader.line_num - inner)
            if len(events) >= size:
                yield Batch(events, lines)
                events, lines = [], []
    except csv.Error as exc:
        raise ReadError(f"{name}:{reader.line_num}: not valid CSV: {exc}") from None
    if events:
        yield Batch(events, lines)


def _scalar(text: str) -> Any:
    """A CSV cell typed like a JSON scalar; an empty cell is a missing value."""
    from rta.core.queries.filters import parse_scalar

    if text == "":
        return None
    value = parse_scalar(text)
    return text if isinstance(value, str) else value  # text keeps its own whitespace


def _csv_event(row: dict[str | Any, Any]) -> dict[str, Any]:
    """Columns id,type,userId,sessionId,timestamp; any other (or properties.x) -> property."""
    event: dict[str, Any] = {}
    props: dict[str, Any] = {}
    for key, raw in row.items():
        if key is None:
            continue
        if key in TOP_LEVEL:
            if raw not in ("", None):
                event[key] = _scalar(raw) if key == "timestamp" else raw
        elif key == "properties" and raw:
            _merge_properties(props, raw)
        else:
            value = _scalar(raw) if raw is not None else None
            if value is not None:
                props[key.removeprefix("properties.")] = value
    if props:
        event["properties"] = props
    return event


def _parquet_events(rows: list[dict[str, Any]]) -> list[Any]:
    """Parquet rows as events: top-level columns, `properties.x` or other columns as
    properties, a `properties` struct or JSON text merged in, timestamps as epoch ms."""
    out = []
    for row in rows:
        event: dict[str, Any] = {}
        props: dict[str, Any] = {}
        for key, value in row.items():
            if not isinstance(value, str | int | float | None):
                value = _plain(value)
            if key in TOP_LEVEL:
                if value is not None:
                    event[key] = value
            elif key == "properties" and isinstance(value, dict | str):
                _merge_properties(props, value)
            elif key in EXPORT_ONLY:
                continue
            elif value is not None:
                props[key.removeprefix("properties.")] = value
        if props:
            event["properties"] = props
        out.append(event)
    return out


def _merge_properties(props: dict[str, Any], value: dict[str, Any] | str) -> None:
    """A `properties` column: an object (or JSON text of one) merged in, else kept as is."""
    parsed: Any = value
    if isinstance(value, str):
        try:
            parsed = jsonstrict.loads(value)
        except json.JSONDecodeError:
            parsed = None
    if isinstance(parsed, dict):
        props.update(parsed)
    else:
        props["properties"] = value


def _plain(value: Any) -> Any:
    """A Parquet value as JSON can carry it (decimals, dates, binary and the like would
    otherwise fail to serialise): times as epoch ms or ISO text, decimals as numbers."""
    if isinstance(value, datetime):
        return datetime_ms(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, timedelta):
        return value // timedelta(milliseconds=1)
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", "replace")
    return value
