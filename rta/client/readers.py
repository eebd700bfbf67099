"""Read events from files: NDJSON, JSON array, CSV and Parquet, streamed in batches."""

from __future__ import annotations

import csv
import io
import json
import os
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import IO, Any

from rta.core import jsonstrict

FORMATS = ("ndjson", "json", "csv", "parquet")
TOP_LEVEL = ("id", "type", "userId", "sessionId", "timestamp")


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


def _open_text(path: str) -> IO[str]:
    if path == "-":
        return sys.stdin
    if path.endswith(".gz"):
        import gzip

        return gzip.open(path, "rt", encoding="utf-8")
    return open(path, encoding="utf-8")


def iter_batches(path: str, fmt: str, size: int = 5000) -> Iterator[list[Any]]:
    """Batches of raw event objects (validation is the server's job)."""
    if fmt == "parquet":
        yield from _parquet_batches(path, size)
        return
    with _open_text(path) as f:
        if fmt == "csv":
            yield from _chunk(_csv_events(f), size)
        elif fmt == "json" or (fmt == "ndjson" and path == "-" and _peek_array(f)):
            try:
                data = jsonstrict.loads(f.read())
            except json.JSONDecodeError as exc:
                raise ReadError(f"{path}:{exc.lineno}: not valid JSON: {exc.msg}") from None
            if isinstance(data, dict) and isinstance(data.get("events"), list):
                data = data["events"]
            if not isinstance(data, list):
                raise ReadError(f"{path}: a JSON file must hold an array of events")
            for i in range(0, len(data), size):
                yield data[i:i + size]
        else:
            yield from _chunk(_ndjson_events(f, path), size)


def _peek_array(f: IO[str]) -> bool:
    """On stdin, a leading '[' means a JSON array rather than NDJSON."""
    if not hasattr(f, "buffer"):
        return False
    head = f.buffer.peek(64)[:64].lstrip()  # type: ignore[attr-defined]
    return head.startswith(b"[")


def _chunk(items: Iterator[Any], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _ndjson_events(f: IO[str], path: str) -> Iterator[Any]:
    for lineno, line in enumerate(f, 1):
        if not line.strip():
            continue
        try:
            yield jsonstrict.loads(line)
        except json.JSONDecodeError as exc:
            raise ReadError(f"{path}:{lineno}: not valid JSON: {exc.msg}") from None


def _scalar(text: str) -> Any:
    """A CSV cell typed like a JSON scalar; an empty cell is a missing value."""
    from rta.core.filters import parse_scalar

    if text == "":
        return None
    value = parse_scalar(text)
    return text if isinstance(value, str) else value  # text keeps its own whitespace


def _csv_events(f: IO[str]) -> Iterator[dict[str, Any]]:
    """Columns id,type,userId,sessionId,timestamp; any other (or properties.x) -> property."""
    for row in csv.DictReader(f):
        event: dict[str, Any] = {}
        props: dict[str, Any] = {}
        for key, raw in row.items():
            if key is None:
                continue
            if key in TOP_LEVEL:
                if raw not in ("", None):
                    event[key] = _scalar(raw) if key == "timestamp" else raw
            elif key == "properties" and raw:
                try:
                    props.update(jsonstrict.loads(raw))
                except json.JSONDecodeError:
                    props[key] = raw
            else:
                value = _scalar(raw) if raw is not None else None
                if value is not None:
                    props[key.removeprefix("properties.")] = value
        if props:
            event["properties"] = props
        yield event


def _parquet_batches(path: str, size: int) -> Iterator[list[Any]]:
    import pyarrow.parquet as pq

    source: Any = path
    if path == "-":
        source = io.BytesIO(sys.stdin.buffer.read())
    pf = pq.ParquetFile(source)
    for record_batch in pf.iter_batches(batch_size=size):
        rows = record_batch.to_pylist()
        out = []
        for row in rows:
            event: dict[str, Any] = {}
            props: dict[str, Any] = {}
            for key, value in row.items():
                if isinstance(value, datetime):
                    value = datetime_ms(value)
                if key in TOP_LEVEL:
                    if value is not None:
                        event[key] = value
                elif key == "properties" and isinstance(value, dict | str):
                    props.update(jsonstrict.loads(value) if isinstance(value, str) else value)
                elif key == "receivedAt":
                    continue
                elif value is not None:
                    props[key.removeprefix("properties.")] = value
            if props:
                event["properties"] = props
            out.append(event)
        yield out


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def datetime_ms(value: datetime) -> int:
    """Exact ms since the epoch; a datetime without a zone is UTC (Parquet's convention)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return (value - _EPOCH) // timedelta(milliseconds=1)


def file_size(path: str) -> int | None:
    if path == "-":
        return None
    try:
        return os.path.getsize(path)
    except OSError:
        return None
