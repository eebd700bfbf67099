"""Arrow IPC stream batches: read the body, check its schema, validate it column by column.

`POST /events/batch` with `Content-Type: application/vnd.apache.arrow.stream` carries events
as Arrow columns (schema in docs/api.md):

- `type` string; `userId`, `sessionId` string (null or "" = none); `id` string or integer
  (null = the server generates one); `timestamp` integer ms since the epoch, an Arrow
  timestamp (any unit; no time zone = UTC) or ISO-8601 text (null = the server's clock);
- properties as typed columns `properties.<key>` (bool, integer, floating point, string,
  dictionary of strings, or a list of those, kept as its JSON text like a JSON array), or one
  `properties` struct column (nested structs give dotted keys), or one `properties` string
  column of JSON object text. Null means the property is absent. Other columns are ignored,
  as unknown fields of a JSON event are.

`columnar_batch` first checks the columns themselves (the JSON path's rules over distinct
values, min/max and length bounds) and keeps the batch as Arrow columns end to end
(`BatchColumns`: validated, deduplicated, logged and encoded into the store without a
Python object per value). Whatever it cannot settle at once, every column becomes the list
of raw values JSON would have given, and the JSON path's column-wise checks
(`EventValidator.fast_columns`) decide. When they cannot clear the batch, the rows become
the very event objects a JSON client would have sent and go through
`EventValidator.validate_batch`, so what is stored and every per-event error (field,
message, index = row) is the JSON path's. Problems only Arrow can have (a body that is not an Arrow
stream, a truncated or undecompressible record batch, a column of an unsupported type or
malformed length) are one 400 naming the column (and row, where there is one).

Thread rule: pure; any thread (the key budget it claims from locks itself).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from rta.core import jsonstrict
from rta.core.errors import PayloadTooLarge, ValidationError
from rta.core.event_ids import new_id_array
from rta.core.events import (
    INT64_MAX,
    MAX_DEPTH,
    MAX_ID_LENGTH,
    MAX_KEY_LENGTH,
    MAX_TYPE_LENGTH,
    BatchColumns,
    EventBatch,
    EventValidator,
    Limits,
)

ARROW_STREAM = "application/vnd.apache.arrow.stream"
TOP_LEVEL = ("id", "type", "userId", "sessionId", "timestamp")
PROPS = "properties."
_TWO63 = 2.0**63
_INDEX = re.compile(r"\b(?:index|row|position) (\d+)", re.IGNORECASE)


@dataclass
class ArrowEvents:
    """A checked Arrow body: top-level columns, property columns by key, and the row count.

    `json_props` is the `properties` column of JSON text, when the body used that form."""

    rows: int
    top: dict[str, pa.ChunkedArray]
    props: dict[str, pa.ChunkedArray]
    json_props: pa.ChunkedArray | None = None

    def events(self) -> list[dict[str, Any]]:
        """The rows as the event objects a JSON client would send (absent values omitted):
        what the per-event validator judges when the column checks cannot clear a batch."""
        out: list[dict[str, Any]] = [{} for _ in range(self.rows)]
        for name, col in self.top.items():
            for event, value in zip(out, col.to_pylist(), strict=True):
                if value is not None:
                    event[name] = value
        if self.json_props is not None:
            for event, text in zip(out, self.json_props.to_pylist(), strict=True):
                if text is not None:
                    event["properties"] = _json_object(text)
        for key, col in self.props.items():
            values = col.to_pylist()
            for row in np.flatnonzero(_valid(col)).tolist():
                event = out[row]
                props = event.get("properties")
                if props is None:
                    props = event["properties"] = {}
                props[key] = values[row]
        return out


# -- reading -------------------------------------------------------------------------------


def read_stream(raw: bytes, max_rows: int, max_bytes: int | None = None) -> ArrowEvents:
    """The body's record batches as one checked `ArrowEvents`.

    Raises ValidationError (`invalid_arrow`, `invalid_arrow_schema`) naming the column and
    row where there is one, and PayloadTooLarge: `batch_too_large` past `max_rows` rows,
    or when the decompressed batches hold more than `max_bytes` (a compression bomb; the
    bound is generous, as dense Arrow columns of sparse keys are mostly nulls).
    """
    try:
        reader = pa.ipc.open_stream(pa.BufferReader(raw))
        schema = reader.schema
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise _bad_stream(f"the body is not an Arrow IPC stream ({_short(exc)})") from None
    fields = check_schema(schema)
    batches: list[pa.RecordBatch] = []
    rows = held = 0
    number = 0
    while True:
        try:
            batch = reader.read_next_batch()
        except StopIteration:
            break
        except (pa.ArrowException, OSError, ValueError) as exc:
            raise _bad_stream(
                f"record batch {number} (from row {rows}) of the Arrow stream cannot be read: "
                "it is truncated, damaged or does not decompress "
                f"({_short(exc)})", batch=number, row=rows) from None
        if rows + batch.num_rows <= max_rows:  # (past the limit, only counted)
            _check_batch(batch, number, rows)
            batches.append(batch)
            held += batch.nbytes
            if max_bytes is not None and held > max_bytes:
                raise PayloadTooLarge(
                    f"the Arrow stream decompresses to more than {max_bytes} bytes",
                    [{"field": "", "batch": number, "limit": max_bytes}],
                    code="batch_too_large")
        rows += batch.num_rows
        number += 1
    if rows > max_rows:
        raise PayloadTooLarge(f"batch has {rows} events; the limit is {max_rows}",
                              [{"field": "", "count": rows, "limit": max_rows}],
                              code="batch_too_large")
    table = pa.Table.from_batches(batches, schema)
    return _columns(table, fields)


def table_events(table: pa.Table) -> list[dict[str, Any]]:
    """The rows of a table in this schema as the event objects a JSON client would send
    (for a client whose server takes no Arrow bodies)."""
    return _columns(table, check_schema(table.schema)).events()


def _check_batch(batch: pa.RecordBatch, number: int, offset: int) -> None:
    """A record batch whose columns hold what they claim: lengths, offsets, valid UTF-8."""
    for i, name in enumerate(batch.schema.names):
        col = batch.column(i)
        if len(col) != batch.num_rows:
            raise _bad_column(name, f"has {len(col)} values in a record batch of "
                              f"{batch.num_rows} rows (record batch {number})", batch=number)
        try:
            col.validate(full=True)
        except (pa.ArrowException, ValueError) as exc:
            text = _short(exc)
            found = _INDEX.search(text)
            extra: dict[str, Any] = {"batch": number}
            if found:
                extra["row"] = offset + int(found.group(1))
            raise _bad_column(name, f"is malformed in record batch {number}: {text}",
                              **extra) from None


# -- the schema ----------------------------------------------------------------------------


def check_schema(schema: pa.Schema) -> list[str]:
    """The names of the columns read (unknown ones are ignored); raises ValidationError
    (`invalid_arrow_schema`) for a column whose type cannot carry what its name says.
    Clients call it too, to send JSON instead of a body the server would refuse."""
    seen: set[str] = set()
    used = []
    for f in schema:
        name = f.name
        if name in seen and (name in TOP_LEVEL or name == "properties"
                             or name.startswith(PROPS)):
            raise _bad_schema(name, "is given twice")
        seen.add(name)
        if name in TOP_LEVEL:
            if not _scalar(f.type, timestamps=name == "timestamp"):
                raise _bad_schema(name, f"has Arrow type {f.type}; use "
                                  + _TOP_TYPES.get(name, "a string"))
            used.append(name)
        elif name == "properties":
            if pa.types.is_struct(f.type):
                _check_struct(f.type, "properties", 1)
            elif not (_is_str(f.type) or pa.types.is_null(f.type)):
                raise _bad_schema(name, f"has Arrow type {f.type}; use a struct of property "
                                  "columns, or strings of JSON object text")
            used.append(name)
        elif name.startswith(PROPS):
            _check_key(name)
            if pa.types.is_struct(f.type):
                _check_struct(f.type, name, name.count("."))
            elif not _property_type(f.type):
                raise _bad_schema(name, f"has Arrow type {f.type}; a property column holds "
                                  "booleans, integers, floats, strings or lists of those")
            used.append(name)
    if "properties" in seen and any(n.startswith(PROPS) for n in used) and \
            _is_str(schema.field("properties").type):
        raise _bad_schema("properties", "is JSON text while properties.<key> columns are "
                          "given too; send one form")
    return used


def _check_struct(t: pa.StructType, path: str, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise _bad_schema(path, f"nests deeper than {MAX_DEPTH}")
    for child in t:
        name = f"{path}.{child.name}"
        _check_key(name)
        if pa.types.is_struct(child.type):
            _check_struct(child.type, name, depth + 1)
        elif not _property_type(child.type):
            raise _bad_schema(name, f"has Arrow type {child.type}; a property column holds "
                              "booleans, integers, floats, strings or lists of those")


def _check_key(name: str) -> None:
    key = name[len(PROPS):]
    if not key or len(key) > MAX_KEY_LENGTH or any(not part for part in key.split(".")):
        raise _bad_schema(name, f"property names must be 1 to {MAX_KEY_LENGTH} characters "
                          "(and no empty part between dots)")


_TOP_TYPES = {"timestamp": "integer ms since the epoch, an Arrow timestamp or ISO-8601 text",
              "id": "a string or an integer"}


def _is_str(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t) or (
        pa.types.is_dictionary(t) and (pa.types.is_string(t.value_type)
                                       or pa.types.is_large_string(t.value_type)))


def _plain_str(t: pa.DataType) -> bool:
    """A string column whose dictionary encoding lists values in order of first appearance
    (an Arrow dictionary column's own dictionary need not)."""
    return pa.types.is_string(t) or pa.types.is_large_string(t)


def _scalar(t: pa.DataType, timestamps: bool = False) -> bool:
    return (pa.types.is_null(t) or pa.types.is_boolean(t) or pa.types.is_integer(t)
            or pa.types.is_float32(t) or pa.types.is_float64(t) or _is_str(t)
            or (timestamps and pa.types.is_timestamp(t)))


def _property_type(t: pa.DataType) -> bool:
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return _scalar(t.value_type)
    return _scalar(t)


# -- columns -------------------------------------------------------------------------------


def _columns(table: pa.Table, used: list[str]) -> ArrowEvents:
    top: dict[str, pa.ChunkedArray] = {}
    props: dict[str, pa.ChunkedArray] = {}
    json_props = None
    for name in used:
        col = table.column(name)
        if name in TOP_LEVEL:
            if pa.types.is_timestamp(col.type):
                unit = pa.timestamp("ms", col.type.tz)
                col = pc.cast(col, unit, safe=False).cast(pa.int64())
            if not pa.types.is_null(col.type):
                top[name] = col
        elif name == "properties" and not pa.types.is_struct(col.type):
            if _is_str(col.type):
                json_props = col
        else:
            for key, child in _flatten(name.removeprefix("properties").lstrip("."), col):
                if key in props:
                    raise _bad_schema(PROPS + key, "is given twice (as a column and inside "
                                      "a struct)")
                if not pa.types.is_null(child.type):
                    props[key] = child
    return ArrowEvents(table.num_rows, top, props, json_props)


def _flatten(key: str, col: pa.ChunkedArray) -> list[tuple[str, pa.ChunkedArray]]:
    """(dotted key, column) of a property column, struct children flattened; a null struct
    makes its children null (the object was absent)."""
    if not pa.types.is_struct(col.type):
        return [(key, col)]
    out = []
    children = [chunk.flatten() for chunk in col.chunks]  # (parent nulls carried down)
    for i, child in enumerate(col.type):
        inner = pa.chunked_array([c[i] for c in children], child.type)
        out += _flatten(f"{key}.{child.name}" if key else child.name, inner)
    return out


def _valid(col: pa.ChunkedArray) -> np.ndarray:
    if col.null_count == 0:
        return np.ones(len(col), dtype=bool)
    return np.asarray(col.is_valid().to_numpy(zero_copy_only=False), dtype=bool)


def _json_object(text: str) -> Any:
    """A row of the `properties` JSON column: its object, or the text itself (which the
    validator then refuses: "properties must be a JSON object")."""
    try:
        return jsonstrict.loads(text)
    except ValueError:
        return text


# -- validation ----------------------------------------------------------------------------


def fast_arrow(validator: EventValidator, events: ArrowEvents, now: int) -> EventBatch | None:
    """The batch when the column checks clear every row (the JSON path's, over the same raw
    values), else None."""
    columnar = columnar_batch(validator, events, now)
    if columnar is not None:
        return columnar
    if events.json_props is not None:
        return validator.fast_batch(events.events(), now)
    strings: dict[str, Any] = {}
    props = _prop_columns(events, strings)
    if props is None:
        return None
    n = events.rows
    none: list[Any] = [None] * n

    def column(name: str) -> list[Any]:
        col = events.top.get(name)
        if col is None:
            return none
        if _plain_str(col.type):
            strings[name] = col
        return col.to_pylist()

    batch = validator.fast_columns(column("type"), column("userId"), column("sessionId"),
                                   column("id"), column("timestamp"), props, now)
    if batch is not None:
        lists: dict[str, list[Any]] = {"id": batch.ids, "type": batch.types,
                                       "userId": batch.users, "sessionId": batch.sessions}
        batch.arrow = {name: (lists[name] if name in lists else batch.props[name][1], col)
                       for name, col in strings.items()
                       if name in lists or name in batch.props}
    return batch


def columnar_batch(validator: EventValidator, events: ArrowEvents, now: int
                   ) -> EventBatch | None:
    """The batch as Arrow columns end to end (`BatchColumns`), when the Arrow checks below
    clear every row without a Python value per event; else None (and `fast_arrow` takes the
    list path, which decides every case exactly).

    The checks are `EventValidator.fast_columns`' over the same values, on the columns: the
    distinct types, userIds and sessionIds one by one, id lengths and timestamp bounds by
    min/max, property values by kind, event size by a bound. Whatever they cannot settle at
    once (integer ids, nulls among ids or timestamps, text timestamps, list properties, a
    size near the limit, a batch over a key limit) returns None."""
    n = events.rows
    if not n or events.json_props is not None:
        return None
    limits = validator.limits
    types = _string_column(events.top.get("type"))
    if types is None or types.null_count:
        return None
    for t in pc.unique(types).to_pylist():
        if not t or len(t) > MAX_TYPE_LENGTH or ((t[0] == " " or t[-1] == " ")
                                                 and not t.strip()):
            return None
    users = _user_column(events.top.get("userId"), n)
    sessions = _user_column(events.top.get("sessionId"), n)
    if users is None or sessions is None:
        return None
    stamps = _timestamps(events.top.get("timestamp"), now, limits)
    if stamps is None:
        return None
    props = _typed_props(events)
    if props is None:
        return None
    if len(props) > min(limits.max_batch_property_keys, limits.max_event_properties):
        return None
    raw_ids = events.top.get("id")
    words = None
    if raw_ids is None or raw_ids.null_count == n:  # none sent: the server's ids
        ids, hi, lo = new_id_array(n)
        words = (hi, lo, None)
    else:
        ids = _string_column(raw_ids)
        if ids is None or ids.null_count:
            return None
        sizes = _byte_lengths(ids)
        if not (sizes.min() >= 1 and _within(ids, sizes, MAX_ID_LENGTH)):
            return None
    if not _sizes_fit(limits.max_event_bytes // 2, props, types, ids, users, sessions):
        return None
    batch = EventBatch(now, columns=BatchColumns(n, ids, stamps, types, users, sessions,
                                                 props))
    batch.id_words = words
    if validator.budget is not None and not validator.budget.claim_batch(
            batch, batch.type_names(), list(props)):
        return None
    return batch


def _string_column(col: pa.ChunkedArray | None) -> pa.Array | None:
    """A string column as one plain `string` array (dictionaries decoded), or None when
    absent or not strings."""
    if col is None or not _is_str(col.type):
        return None
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    if not pa.types.is_string(arr.type):
        arr = arr.cast(pa.string())
    return arr


def _user_column(col: pa.ChunkedArray | None, n: int) -> pa.Array | None:
    """userId / sessionId: strings of at most MAX_ID_LENGTH or null, "" made null (as the
    validator stores it); None when a value needs the list path."""
    if col is None:
        return pa.nulls(n, pa.string())
    arr = _string_column(col)
    if arr is None:
        return None
    if arr.null_count == n:
        return arr
    sizes = _byte_lengths(arr)
    if not _within(arr, sizes, MAX_ID_LENGTH):
        return None
    empty = sizes == 0
    if arr.null_count:
        empty &= _valid_mask(arr)
    if empty.any():
        arr = pc.if_else(pa.array(empty), pa.scalar(None, pa.string()), arr)
    return arr


def _byte_lengths(arr: pa.Array) -> np.ndarray:
    """Each value's length in UTF-8 bytes (an upper bound of its length in characters),
    read from the offsets of a `string` array (a null's may be anything)."""
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int32)[arr.offset:arr.offset + len(arr)
                                                              + 1]
    return np.diff(offsets)


def _within(arr: pa.Array, sizes: np.ndarray, limit: int) -> bool:
    """Whether every value has at most `limit` characters (counted only when some value has
    more bytes than that)."""
    if not len(sizes) or int(sizes.max()) <= limit:
        return True
    return bool(pc.max(pc.utf8_length(arr)).as_py() <= limit)


def _valid_mask(arr: pa.Array) -> np.ndarray:
    return np.asarray(arr.is_valid(), dtype=bool)


def _timestamps(col: pa.ChunkedArray | None, now: int, limits: Limits) -> np.ndarray | None:
    """Integer ms within the future tolerance and the past horizon, no nulls; else None."""
    if col is None or not pa.types.is_integer(col.type) or col.null_count:
        return None
    latest = now + limits.future_tolerance_ms
    earliest = 0 if limits.past_horizon_ms is None else max(0, now - limits.past_horizon_ms)
    if pc.min(col).as_py() < earliest or pc.max(col).as_py() > latest:
        return None
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    return np.array(arr.cast(pa.int64()).to_numpy(zero_copy_only=False), dtype=np.int64)


def _typed_props(events: ArrowEvents) -> dict[str, pa.Array] | None:
    """'kind:key' -> one column of every row (int64, float64, string or bool; null =
    absent), in the order `_prop_columns` gives; None where a value needs the list path."""
    out: dict[str, pa.Array] = {}
    for key, chunked in events.props.items():
        n = len(chunked)
        if chunked.null_count == n:
            continue
        col = chunked.combine_chunks()
        t = col.type
        if pa.types.is_boolean(t):
            out["b:" + key] = col
        elif pa.types.is_integer(t):
            if pa.types.is_uint64(t) and pc.max(col).as_py() > INT64_MAX:
                return None
            out["i:" + key] = col.cast(pa.int64())
        elif pa.types.is_floating(t):
            col = col.cast(pa.float64())
            values = np.frombuffer(col.buffers()[1], dtype=np.float64)[
                col.offset:col.offset + n]
            if col.null_count:
                values = values[_valid_mask(col)]
            if not float(np.abs(values).max()) < _TWO63:
                return None  # NaN (dropped) or infinite or huge: the list path decides
            out["f:" + key] = col
        elif _is_str(t):
            text = _string_column(col)
            if text is None:
                return None
            out["s:" + key] = text
        else:
            return None  # lists: kept as JSON text, by the list path
    return out


def _sizes_fit(half: int, props: dict[str, pa.Array], types: pa.Array, ids: pa.Array,
               users: pa.Array, sessions: pa.Array) -> bool:
    """`EventValidator._fast_sizes`' two bounds: no event can reach the size the per-event
    path would measure exactly (else the list path measures)."""
    widest = 0
    for name, col in props.items():
        widest += len(name) + (_longest(col) if name[0] == "s" else 8)
    if 64 + MAX_TYPE_LENGTH + 3 * MAX_ID_LENGTH + widest <= half:
        return True
    fixed = 64 + _longest(types) + _longest(ids) + _longest(users) + _longest(sessions)
    return fixed + widest <= half


def _longest(col: pa.Array) -> int:
    """An upper bound of the longest value's length in characters (its UTF-8 bytes): the
    size bound only needs to hold, and `fast_columns` measures exactly when it does not."""
    if col.null_count == len(col):
        return 0
    return int(_byte_lengths(col).max())


def validate_arrow(validator: EventValidator, events: ArrowEvents, now: int
                   ) -> tuple[EventBatch, list[dict[str, Any]]]:
    """(valid events, one `{index, error}` per invalid row), exactly as the JSON path gives
    them for the same events."""
    batch = fast_arrow(validator, events, now)
    if batch is not None:
        return batch, []
    result: tuple[EventBatch, list[dict[str, Any]]] = validator.validate_batch(
        events.events(), now)
    return result


def _prop_columns(events: ArrowEvents, strings: dict[str, Any]
                  ) -> dict[str, tuple[list[int], list[Any]]] | None:
    """Property columns as `_fast_props` groups them ('kind:key' -> (rows, values)), or None
    when a value needs the per-event path (a huge or non-finite number, a huge unsigned).
    Plain string columns' present values go to `strings` too ('s:key' -> Arrow column)."""
    out: dict[str, tuple[list[int], list[Any]]] = {}
    for key, col in events.props.items():
        if col.null_count == len(col):
            continue
        t = col.type
        present = col.drop_null() if col.null_count else col
        if pa.types.is_boolean(t):
            kind = "b:"
        elif pa.types.is_integer(t):
            kind = "i:"
            if pa.types.is_uint64(t) and pc.max(present).as_py() > INT64_MAX:
                return None
        elif pa.types.is_floating(t):
            kind = "f:"
            magnitude = pc.max(pc.abs(present)).as_py()
            if not (magnitude < _TWO63) or pc.any(pc.is_nan(present)).as_py():
                return None  # NaN (dropped) or infinite or huge: the per-event path decides
        elif _is_str(t):
            kind = "s:"
            if _plain_str(t):
                strings[kind + key] = present
        else:
            return None  # lists: kept as JSON text, by the per-event path
        rows = np.flatnonzero(_valid(col)).tolist() if col.null_count else \
            list(range(len(col)))
        out[kind + key] = (rows, present.to_pylist())
    return out


# -- errors --------------------------------------------------------------------------------


def _short(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__


def _bad_stream(message: str, **extra: Any) -> ValidationError:
    return ValidationError(message, [{"field": "", "message": message, **extra}],
                           code="invalid_arrow")


def _bad_column(name: str, message: str, **extra: Any) -> ValidationError:
    return ValidationError(f"column {name} {message}",
                           [{"field": name, "message": message, **extra}], code="invalid_arrow")


def _bad_schema(name: str, message: str) -> ValidationError:
    return ValidationError(f"column {name} {message}", [{"field": name, "message": message}],
                           code="invalid_arrow_schema")
