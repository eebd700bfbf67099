"""Event model: validate raw JSON events and normalise them into a columnar batch.

Validation and column building happen in one pass so the hot ingest path touches each
value once; the resulting `EventBatch` is what the write-ahead log stores and the head applies.

Batches take a column-wise fast path first (`EventValidator.fast_batch`): each field is pulled
out of every event with C-level `map`s, checked once per distinct value or by min/max, and the
properties of flat-ish events are grouped into columns in one loop. Anything it cannot clear
(an invalid event, a huge number, an oversized event) makes it give up, and the per-event path
decides, so the accepted batch and every error message are exactly the per-event path's.

Thread rule: pure validation; any thread (the key budget it claims from locks itself).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from itertools import repeat
from operator import attrgetter
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from rta.core.errors import ValidationError
from rta.core.event_ids import new_event_id, new_event_ids, new_ids_with_words
from rta.core.key_budget import KeyBudget
from rta.core.queries.timeparse import HOUR, int_text, now_ms, parse_iso

MAX_TYPE_LENGTH = 200
MAX_ID_LENGTH = 200
MAX_KEY_LENGTH = 200
MAX_DEPTH = 8
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
KNOWN_FIELDS = frozenset(
    {"id", "type", "userId", "sessionId", "timestamp", "properties", "receivedAt"})

# Property column kinds: one typed column per (kind, key), so a key whose type varies between
# events keeps each value's type exactly.
INT, FLOAT, STR, BOOL = "i", "f", "s", "b"
KINDS = (INT, FLOAT, STR, BOOL)


@dataclass(frozen=True)
class Limits:
    max_event_bytes: int = 32 * 1024
    max_batch_events: int = 10_000
    max_batch_bytes: int = 10 * 1024 * 1024
    future_tolerance_ms: int = HOUR
    max_event_properties: int = 1000  # property keys in one event, after flattening
    max_batch_property_keys: int = 10_000  # distinct property keys in one batch
    past_horizon_ms: int | None = None  # None: no horizon (retention keeps everything)


@dataclass
class BatchColumns:
    """A validated batch held as columns (an Arrow body cleared column-wise, or a WAL record
    read back): what the store encodes, logs and dedups without a Python object per value.

    `props` maps 'kind:key' to a column of all `n` rows, null where the event has no such
    property: int64 (kind i), float64 (f, never NaN), string (s) or bool (b)."""

    n: int
    ids: pa.Array  # string, no nulls
    ts: np.ndarray  # int64 ms
    types: pa.Array  # string, no nulls
    users: pa.Array  # string, null = none ("" already made null)
    sessions: pa.Array
    props: dict[str, pa.Array]


class ColumnProps(Mapping[str, tuple[list[int], list[Any]]]):
    """`EventBatch.props` of a columnar batch: names without work, each key's (rows, values)
    lists built the first time it is read (so a listener reading one key, or only the names,
    converts nothing else)."""

    def __init__(self, columns: dict[str, pa.Array]) -> None:
        self._columns = columns
        self._lists: dict[str, tuple[list[int], list[Any]]] = {}

    def __getitem__(self, name: str) -> tuple[list[int], list[Any]]:
        got = self._lists.get(name)
        if got is None:
            col = self._columns[name]
            if col.null_count:
                valid = np.asarray(col.is_valid(), dtype=bool)
                got = (np.flatnonzero(valid).tolist(), col.drop_null().to_pylist())
            else:
                got = (list(range(len(col))), col.to_pylist())
            self._lists[name] = got
        return got

    def __iter__(self) -> Iterator[str]:
        return iter(self._columns)

    def __len__(self) -> int:
        return len(self._columns)

    def __contains__(self, name: object) -> bool:
        return name in self._columns


class EventBatch:
    """Normalised events in columnar form; `props` maps 'kind:key' to (row indexes, values).

    A batch is built either as lists (the per-event path, the JSON column-wise path) or from
    `BatchColumns` (`columns`, the Arrow path and WAL records): then the lists are made from
    the columns on first read, while the store (`block_from_batch`, dedup, the WAL record)
    and the accessors below (`type_names`, `type_counts`, `user_names`, `timestamp_array`)
    read the columns themselves.
    """

    def __init__(self, received_at: int, ids: list[str] | None = None,
                 timestamps: list[int] | None = None, types: list[str] | None = None,
                 users: list[str | None] | None = None,
                 sessions: list[str | None] | None = None,
                 props: dict[str, tuple[list[int], list[Any]]] | None = None, *,
                 columns: BatchColumns | None = None) -> None:
        self.received_at = received_at
        self.columns = columns
        lazy = columns is not None
        self._ids: list[str] | None = ids if ids is not None or lazy else []
        self._timestamps: list[int] | None = \
            timestamps if timestamps is not None or lazy else []
        self._types: list[str] | None = types if types is not None or lazy else []
        self._users: list[str | None] | None = users if users is not None or lazy else []
        self._sessions: list[str | None] | None = \
            sessions if sessions is not None or lazy else []
        self._props: Mapping[str, tuple[list[int], list[Any]]] = (
            props if props is not None else
            ColumnProps(columns.props) if columns is not None else {})
        # (id high words, id low words, custom id texts or None): derived once by the store
        # (`block.batch_id_words`), never serialised.
        self.id_words: tuple[np.ndarray, np.ndarray, list[str | None] | None] | None = None
        # Arrow string columns the lists were read from (the older Arrow path, when a body
        # is cleared by `fast_columns`), each with the list it was read into: "id", "type",
        # "userId", "sessionId" (as sent: nulls and "" still in them) and "s:<key>" (the
        # present values, in row order), so the store encodes each distinct string once
        # (`Dictionary.encode_array`). Never serialised; `arrow_column` ignores a column
        # whose list was replaced, and batches derived by `select`/`concat` have none (code
        # that edits the lists in place must set it to None).
        self.arrow: dict[str, tuple[list[Any], Any]] | None = None
        # The WAL record, encoded once by the validator (a batch is not changed after that).
        self.payload: bytes | None = None
        self._payload_rows = -1
        # New type and property names this batch holds in the store's KeyBudget until applied.
        self.budget_claims: tuple[list[str], list[str]] | None = None
        # `type_names` of a list batch, with the list and length it was read from (several
        # checks and listeners ask per batch; a list replaced or grown is read again).
        self._type_set: tuple[list[str], int, frozenset[str]] | None = None

    # -- the lists (made from the columns on first read) --------------------------------

    @property
    def ids(self) -> list[str]:
        if self._ids is None:
            assert self.columns is not None
            self._ids = self.columns.ids.to_pylist()
        return self._ids

    @ids.setter
    def ids(self, value: list[str]) -> None:
        self._own_lists()
        self._ids = value

    @property
    def timestamps(self) -> list[int]:
        if self._timestamps is None:
            assert self.columns is not None
            self._timestamps = self.columns.ts.tolist()
        return self._timestamps

    @timestamps.setter
    def timestamps(self, value: list[int]) -> None:
        self._own_lists()
        self._timestamps = value

    @property
    def types(self) -> list[str]:
        if self._types is None:
            assert self.columns is not None
            self._types = self.columns.types.to_pylist()
        return self._types

    @types.setter
    def types(self, value: list[str]) -> None:
        self._own_lists()
        self._types = value

    @property
    def users(self) -> list[str | None]:
        if self._users is None:
            assert self.columns is not None
            self._users = self.columns.users.to_pylist()
        return self._users

    @users.setter
    def users(self, value: list[str | None]) -> None:
        self._own_lists()
        self._users = value

    @property
    def sessions(self) -> list[str | None]:
        if self._sessions is None:
            assert self.columns is not None
            self._sessions = self.columns.sessions.to_pylist()
        return self._sessions

    @sessions.setter
    def sessions(self, value: list[str | None]) -> None:
        self._own_lists()
        self._sessions = value

    @property
    def props(self) -> Any:
        """'kind:key' -> (row indexes, values); a dict, or `ColumnProps` (read-only) for a
        columnar batch."""
        return self._props

    @props.setter
    def props(self, value: dict[str, tuple[list[int], list[Any]]]) -> None:
        self._own_lists()
        self._props = value

    def _own_lists(self) -> None:
        """Before a list is replaced: make every list from the columns, then drop them (the
        columns would no longer say what the batch holds)."""
        if self.columns is not None:
            for name in ("ids", "timestamps", "types", "users", "sessions"):
                getattr(self, name)
            self._props = dict(self._props.items())
            self.columns = None
            self.payload = None

    # -- accessors that read the columns when there are some ----------------------------

    def type_names(self) -> set[str]:
        """The distinct event types of the batch."""
        if self.columns is not None and self._types is None:
            return set(pc.unique(self.columns.types).to_pylist())
        types = self.types
        held = self._type_set
        if held is None or held[0] is not types or held[1] != len(types):
            held = self._type_set = (types, len(types), frozenset(types))
        return set(held[2])

    def type_counts(self) -> dict[str, int]:
        """Events per type."""
        if self.columns is not None and self._types is None:
            counts = pc.value_counts(self.columns.types)
            return dict(zip(counts.field(0).to_pylist(), counts.field(1).to_pylist(),
                            strict=True))
        return dict(Counter(self.types))

    def user_names(self) -> set[str]:
        """The distinct userIds of the batch (none left out)."""
        if self.columns is not None and self._users is None:
            users = self.columns.users
            return set(pc.unique(users.drop_null() if users.null_count else users).to_pylist())
        names: set[Any] = set(self.users)
        names.discard(None)
        return names

    def timestamp_array(self) -> np.ndarray:
        """Timestamps as int64 ms."""
        if self.columns is not None:
            return self.columns.ts
        return np.array(self.timestamps, dtype=np.int64)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, EventBatch):
            return NotImplemented
        return (self.received_at == other.received_at and self.ids == other.ids
                and self.timestamps == other.timestamps and self.types == other.types
                and self.users == other.users and self.sessions == other.sessions
                and dict(self.props.items()) == dict(other.props.items()))

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"EventBatch(received_at={self.received_at}, n={len(self)})"

    def __len__(self) -> int:
        if self.columns is not None:
            return self.columns.n
        return len(self.ids)

    def arrow_column(self, name: str) -> Any:
        """The Arrow column behind list `name` ("id", "type", "userId", "sessionId" or a
        string property column "s:<key>"), while that list is still the batch's; else None."""
        if self.columns is not None:
            top = {"id": self.columns.ids, "type": self.columns.types,
                   "userId": self.columns.users, "sessionId": self.columns.sessions}
            return top.get(name)
        if self.arrow is None:
            return None
        entry = self.arrow.get(name)
        if entry is None:
            return None
        source, column = entry
        top = {"id": self.ids, "type": self.types, "userId": self.users,
               "sessionId": self.sessions}
        if name in top:
            current: Any = top[name]
        else:
            prop = self.props.get(name)
            current = None if prop is None else prop[1]
        return column if current is source else None

    def to_json(self) -> bytes:
        """The WAL record (UTF-8 JSON); raises ValueError if a string is not valid Unicode."""
        if self.payload is None or self._payload_rows != len(self):
            self.payload = encode_columns(self.columns, self.received_at) \
                if self.columns is not None else encode_record(self)
            self._payload_rows = len(self)
        return self.payload

    @classmethod
    def from_json(cls, raw: bytes) -> EventBatch:
        """A batch from its WAL record (JSON, or the Arrow record of a columnar batch)."""
        if raw[:len(ARROW_RECORD)] == ARROW_RECORD:
            return decode_columns(raw)
        try:
            d = orjson.loads(raw)
        except orjson.JSONDecodeError:  # records written by json.dumps may hold NaN etc.
            d = json.loads(raw)
        return cls(d["r"], d["id"], d["ts"], d["t"], d["u"], d["s"],
                   {k: (v[0], v[1]) for k, v in d["p"].items()})

    @classmethod
    def concat(cls, batches: list[EventBatch]) -> EventBatch:
        """One batch of every row of `batches` in order (property rows re-indexed, columns
        in order of first appearance, cached id words joined). `received_at` is the first
        batch's: callers that keep arrival times per batch set them per row themselves."""
        out = cls(received_at=batches[0].received_at)
        offset = 0
        words = [b.id_words for b in batches]
        for b in batches:
            out.ids += b.ids
            out.timestamps += b.timestamps
            out.types += b.types
            out.users += b.users
            out.sessions += b.sessions
            for col, (rows, values) in b.props.items():
                target = out.props.get(col)
                if target is None:
                    target = out.props[col] = ([], [])
                target[0].extend([r + offset for r in rows] if offset else rows)
                target[1].extend(values)
            offset += len(b)
        if all(w is not None and len(w[0]) == len(b) for w, b in zip(words, batches,
                                                                     strict=True)):
            known = [w for w in words if w is not None]
            custom: list[str | None] | None = None
            if any(w[2] is not None for w in known):
                custom = []
                for w in known:
                    custom += w[2] if w[2] is not None else [None] * len(w[0])
            out.id_words = (np.concatenate([w[0] for w in known]),
                            np.concatenate([w[1] for w in known]), custom)
        return out

    def select(self, rows: list[int]) -> EventBatch:
        """A new batch holding only `rows` (in order), re-indexing the property columns."""
        if self.columns is not None:
            return self._select_columns(rows)
        remap = {old: new for new, old in enumerate(rows)}
        out = EventBatch(self.received_at, [self.ids[i] for i in rows],
                         [self.timestamps[i] for i in rows], [self.types[i] for i in rows],
                         [self.users[i] for i in rows], [self.sessions[i] for i in rows])
        if self.id_words is not None and len(self.id_words[0]) == len(self.ids):
            hi, lo, custom = self.id_words
            take = np.asarray(rows, dtype=np.int64)
            out.id_words = (hi[take], lo[take],
                            None if custom is None else [custom[i] for i in rows])
        for col, (idx, vals) in self.props.items():
            new_idx, new_vals = [], []
            for i, v in zip(idx, vals, strict=True):
                j = remap.get(i)
                if j is not None:
                    new_idx.append(j)
                    new_vals.append(v)
            if new_idx:
                out.props[col] = (new_idx, new_vals)
        return out

    def _select_columns(self, rows: list[int]) -> EventBatch:
        cols = self.columns
        assert cols is not None
        take = pa.array(rows, pa.int64())
        props = {}
        for name, col in cols.props.items():
            kept = col.take(take)
            if kept.null_count < len(kept):
                props[name] = kept
        out = EventBatch(self.received_at, columns=BatchColumns(
            len(rows), cols.ids.take(take), cols.ts[np.asarray(rows, dtype=np.int64)],
            cols.types.take(take), cols.users.take(take), cols.sessions.take(take), props))
        if self.id_words is not None and len(self.id_words[0]) == cols.n:
            hi, lo, custom = self.id_words
            at = np.asarray(rows, dtype=np.int64)
            out.id_words = (hi[at], lo[at], None if custom is None else [custom[i] for i in rows])
        return out

    def event(self, row: int) -> dict[str, Any]:
        """One event as the API shows it (for live tails and error echoes, not bulk reads)."""
        props: dict[str, Any] = {}
        for col, (idx, vals) in self.props.items():
            for i, v in zip(idx, vals, strict=True):
                if i == row:
                    props[col[2:]] = v
        return {"id": self.ids[row], "type": self.types[row], "userId": self.users[row],
                "sessionId": self.sessions[row], "timestamp": self.timestamps[row],
                "properties": props, "receivedAt": self.received_at}


def property_kind(value: Any) -> tuple[str, Any] | None:
    """The column kind and stored value of a scalar property (None for JSON null)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return BOOL, value
    if isinstance(value, int):
        if INT64_MIN <= value <= INT64_MAX:
            return INT, value
        return FLOAT, float(value)
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            return None
        return FLOAT, value
    if isinstance(value, str):
        return STR, value
    # Arrays are kept as their JSON text: SDKs send them and silently dropping data is worse.
    return STR, json.dumps(value, separators=(",", ":"), ensure_ascii=False)


class EventValidator:
    """Validates raw events against `Limits` and appends the good ones to a batch."""

    def __init__(self, limits: Limits | None = None, budget: KeyBudget | None = None) -> None:
        self.limits = limits or Limits()
        # Store-wide caps on distinct types and property columns (set by the engine; None
        # for validators that feed no store, e.g. the CLI's pre-flight checks).
        self.budget = budget

    def validate_batch(self, items: list[Any], now: int | None = None, index_offset: int = 0,
                       size_bound: int | None = None) -> tuple[EventBatch, list[dict[str, Any]]]:
        """Returns the batch of valid events and one `{index, error}` per invalid one.

        `size_bound` is an upper bound on any single event's encoded size (e.g. the request
        body's length); when it is within the limit, per-event size accounting is skipped.
        """
        current = now_ms() if now is None else now
        batch = self.fast_batch(items, current, size_bound)
        if batch is not None:
            return batch, []
        check_size = size_bound is None or size_bound > self.limits.max_event_bytes
        batch, rejected = self._each(items, current, index_offset, check_size, False)
        try:
            batch.to_json()
        except ValueError:  # an unpaired surrogate (json.loads lets them through): find them
            batch, rejected = self._each(items, current, index_offset, check_size, True)
            batch.to_json()
        return batch, rejected

    def _each(self, items: list[Any], now: int, index_offset: int, check_size: bool,
              strict_text: bool) -> tuple[EventBatch, list[dict[str, Any]]]:
        """The per-event path: every event validated on its own, errors collected by index."""
        batch = EventBatch(received_at=now)
        rejected: list[dict[str, Any]] = []
        for i, item in enumerate(items):
            try:
                self.append(batch, item, now, check_size, strict_text)
            except ValidationError as exc:
                rejected.append({"index": i + index_offset, "error": exc.to_dict()["error"]})
        return batch, rejected

    def validate_one(self, item: Any, now: int | None = None) -> EventBatch:
        current = now_ms() if now is None else now
        batch = EventBatch(received_at=current)
        self.append(batch, item, current)
        try:
            batch.to_json()
        except ValueError:
            batch = EventBatch(received_at=current)
            self.append(batch, item, current, strict_text=True)
            batch.to_json()
        return batch

    def fast_batch(self, items: list[Any], now: int | None = None,
                   size_bound: int | None = None) -> EventBatch | None:
        """The whole batch, column by column, or None when any event needs a closer look.

        None means: an event is invalid, or too large to be sure of without measuring it, or
        holds a number of 2**63 or more in magnitude given as a float (where a JSON parser
        that turns huge integers into floats, as orjson does, could differ from `json`), or
        text that is not valid Unicode. The caller then runs the per-event path (after
        re-parsing with `json`, if it parsed with orjson), which decides exactly.
        Otherwise the result equals the per-event path's, with the WAL record encoded.
        """
        now = now_ms() if now is None else now
        if not items:
            return EventBatch(received_at=now)
        if set(map(type, items)) != _DICT_ONLY:
            return None
        get: Any = dict.get
        props = self._fast_props(list(map(get, items, repeat("properties"))))
        if props is None:
            return None
        return self.fast_columns(
            list(map(get, items, repeat("type"))), list(map(get, items, repeat("userId"))),
            list(map(get, items, repeat("sessionId"))), list(map(get, items, repeat("id"))),
            list(map(get, items, repeat("timestamp"))), props, now, size_bound)

    def fast_records(self, records: list[Any], now: int,
                     size_bound: int | None = None) -> EventBatch | None:
        """`fast_batch` over decoded event records (`json_batch.EventRecord`: the members as
        attributes, None when absent) instead of dicts; None when an event needs the
        per-event path (the caller then parses the body again into dicts)."""
        if not records:
            return EventBatch(received_at=now)
        props = self._fast_props(list(map(_RECORD_PROPS, records)))
        if props is None:
            return None
        return self.fast_columns(
            list(map(_RECORD_TYPE, records)), list(map(_RECORD_USER, records)),
            list(map(_RECORD_SESSION, records)), list(map(_RECORD_ID, records)),
            list(map(_RECORD_TS, records)), props, now, size_bound)

    def fast_columns(self, types: list[Any], users: list[Any], sessions: list[Any],
                     ids: list[Any], stamps: list[Any],
                     props: dict[str, tuple[list[int], list[Any]]], now: int,
                     size_bound: int | None = None) -> EventBatch | None:
        """`fast_batch` from columns already pulled out of the events (raw values as JSON
        would give them, one per event; `props` as grouped by `_fast_props`): the JSON path
        and the Arrow path (`arrow_ingest`) share every check from here on. None when an
        event needs the per-event path."""
        n = len(types)
        batch = EventBatch(received_at=now)
        if not n:
            return batch
        try:
            distinct = frozenset(types)
            for t in distinct:
                if type(t) is not str or not t or len(t) > MAX_TYPE_LENGTH or (
                        (t[0] == " " or t[-1] == " ") and not t.strip()):
                    return None
            checked_users = self._fast_ids(users)
            checked_sessions = self._fast_ids(sessions)
        except TypeError:  # an unhashable value (a list or an object) in a string field
            return None
        if checked_users is None or checked_sessions is None:
            return None
        words = None
        checked_ids: list[str] | None
        if set(map(type, ids)) == _NONE_ONLY:  # none sent: the server's, with their words
            checked_ids, hi, lo = new_ids_with_words(n)
            words = (hi, lo, None)
        else:
            checked_ids = self._fast_event_ids(ids)
        checked_stamps = self._fast_timestamps(stamps, now)
        if checked_ids is None or checked_stamps is None:
            return None
        if (size_bound is None or size_bound > self.limits.max_event_bytes) and not \
                self._fast_sizes(n, types, checked_users, checked_sessions, checked_ids, props):
            return None
        if not self._fast_key_counts(n, props):
            return None
        batch.ids = checked_ids
        batch.timestamps = checked_stamps
        batch.types = types
        batch.users = checked_users
        batch.sessions = checked_sessions
        batch.props = props
        batch.id_words = words
        batch._type_set = (types, n, distinct)
        try:
            batch.to_json()
        except ValueError:
            return None
        if self.budget is not None and not self.budget.claim_batch(batch, distinct, props):
            return None
        return batch

    def _fast_key_counts(self, n: int, props: dict[str, tuple[list[int], list[Any]]]) -> bool:
        """True when no event has more property keys than allowed and the batch's distinct
        keys are within the batch limit (else the per-event path says which events)."""
        limits = self.limits
        if len(props) > limits.max_batch_property_keys:
            return False
        if len(props) <= limits.max_event_properties:
            return True
        counts = np.zeros(n, dtype=np.int64)
        for rows, _values in props.values():
            counts[np.asarray(rows, dtype=np.int64)] += 1
        return bool(counts.max() <= limits.max_event_properties)

    @staticmethod
    def _fast_ids(values: list[Any]) -> list[str | None] | None:
        """userId / sessionId: strings of at most MAX_ID_LENGTH or null ('' means null)."""
        distinct = set(values)
        for v in distinct:
            if v is not None and (type(v) is not str or len(v) > MAX_ID_LENGTH):
                return None
        if "" in distinct:
            return [v or None for v in values]
        return values

    @staticmethod
    def _fast_event_ids(values: list[Any]) -> list[str] | None:
        if set(map(type, values)) == _STR_ONLY:
            lengths = list(map(len, values))
            if min(lengths) < 1 or max(lengths) > MAX_ID_LENGTH:
                return None
            return values
        out: list[str] = []
        missing: list[int] = []
        for i, v in enumerate(values):
            t = type(v)
            if t is str:
                if not v or len(v) > MAX_ID_LENGTH:
                    return None
                out.append(v)
            elif v is None:
                missing.append(i)
                out.append("")
            elif t is int:
                out.append(str(v))  # at most 20 digits: within the length limit
            else:
                return None
        for i, text in zip(missing, new_event_ids(len(missing)), strict=True):
            out[i] = text
        return out

    def _fast_timestamps(self, values: list[Any], now: int) -> list[int] | None:
        limits = self.limits
        latest = now + limits.future_tolerance_ms
        earliest = 0 if limits.past_horizon_ms is None else max(0, now - limits.past_horizon_ms)
        if set(map(type, values)) == _INT_ONLY:
            if min(values) < earliest or max(values) > latest:
                return None
            return values
        out: list[int] = []
        for v in values:
            if type(v) is int:
                if v < earliest or v > latest:
                    return None
                out.append(v)
            elif type(v) is float and not -_TWO63 < v < _TWO63:
                return None  # (refused by the validator anyway, but with the value shown)
            else:
                try:
                    out.append(self._timestamp(v, now))
                except ValidationError:
                    return None
        return out

    @staticmethod
    def _fast_props(values: list[Any]) -> dict[str, tuple[list[int], list[Any]]] | None:
        """Property columns in the per-event path's order; None when a row needs a closer look.

        Values are grouped by key alone (one dict lookup per value), then each key's types
        are read at once (`set(map(type, ...))`, in C): a key of one kind is a column as it
        is, a key of several kinds (an integer here, a float there) is split by kind (nulls
        left out), and then the columns are put in the order the per-event path gives, by
        where each (kind, key) first appears. A nested object or an array anywhere:
        `_fast_props_nested` decides.
        """
        by_key: dict[str, tuple[list[int], list[Any]]] = {}
        for row, obj in enumerate(values):
            if obj is None:
                continue
            if type(obj) is not dict:
                return None
            for key, value in obj.items():
                col = by_key.get(key)
                if col is None:
                    by_key[key] = ([row], [value])
                else:
                    col[0].append(row)
                    col[1].append(value)
        columns: dict[str, tuple[list[int], list[Any]]] = {}
        reorder = False
        for key, (rows, vals) in by_key.items():
            if not key or len(key) > MAX_KEY_LENGTH:
                return None
            kinds = set(map(type, vals))
            if not kinds <= _SCALAR_TYPES:
                return EventValidator._fast_props_nested(values)
            split = len(kinds) > 1 or _NONE_TYPE in kinds  # (a null places no column)
            if split:
                reorder = True
                kinds.discard(_NONE_TYPE)
            for t in kinds:
                if split:
                    at = [i for i, v in enumerate(vals) if type(v) is t]
                    col = ([rows[i] for i in at], [vals[i] for i in at])
                else:
                    col = (rows, vals)
                if t is int:
                    if min(col[1]) < INT64_MIN or max(col[1]) > INT64_MAX:
                        return None  # (stored as floats: the per-event path does that)
                elif t is float and not float(np.abs(np.array(col[1])).max()) < _TWO63:
                    return None  # NaN or infinite (dropped), or maybe a huge integer
                columns[_KIND_OF[t] + key] = col
        if reorder:  # (kind, key) columns in order of first appearance, as per event
            def first(item: tuple[str, tuple[list[int], list[Any]]]) -> tuple[int, int]:
                name, (rows, _vals) = item
                return rows[0], list(values[rows[0]]).index(name[2:])

            columns = dict(sorted(columns.items(), key=first))
        return columns

    @staticmethod
    def _fast_props_nested(values: list[Any]) -> dict[str, tuple[list[int], list[Any]]] | None:
        """`_fast_props` for batches with nested objects or arrays among the values.

        Values are grouped by their Python type and the key object itself (orjson and
        `json` share key strings, so lookups hit cached hashes); numbers are range-checked
        per column afterwards. A nested object is flattened by `_flatten`, after taking back
        what the keys before it added, like the per-event path.
        """
        by_type: dict[type, dict[str, tuple[list[int], list[Any]]]] = {
            str: {}, int: {}, float: {}, bool: {}}
        order: list[tuple[type, str]] = []
        for row, obj in enumerate(values):
            if obj is None:
                continue
            if type(obj) is not dict:
                return None
            for key, value in obj.items():
                t = type(value)
                cols = by_type.get(t)
                if cols is None:
                    if value is None:
                        if not key or len(key) > MAX_KEY_LENGTH:
                            return None
                        continue
                    if t is dict:
                        if not _fast_nested(obj, row, key, by_type, order):
                            return None
                        break
                    value = _json_text(value)  # an array: kept as its JSON text
                    if "e+" in value or "E+" in value:
                        return None  # (maybe a float that was a huge integer)
                    cols = by_type[str]
                col = cols.get(key)
                if col is None:
                    cols[key] = ([row], [value])
                    order.append((t if t in by_type else str, key))
                else:
                    col[0].append(row)
                    col[1].append(value)
        columns: dict[str, tuple[list[int], list[Any]]] = {}
        for t, key in order:
            col = by_type[t][key]
            if not key or len(key) > MAX_KEY_LENGTH:
                return None
            if t is int:
                if min(col[1]) < INT64_MIN or max(col[1]) > INT64_MAX:
                    return None  # (stored as floats: the per-event path does that)
            elif t is float and not float(np.abs(np.array(col[1])).max()) < _TWO63:
                return None  # NaN or infinite (dropped), or maybe a huge integer
            columns[_KIND_OF[t] + key] = col
        return columns

    def _fast_sizes(self, n: int, types: list[str], users: list[str | None],
                    sessions: list[str | None], ids: list[str],
                    props: dict[str, tuple[list[int], list[Any]]]) -> bool:
        """True when no event can reach the size the per-event path would measure exactly:
        first a bound over all events, then (rarely) the per-event estimates themselves."""
        half = self.limits.max_event_bytes // 2
        widest = 0
        for name, (_rows, vals) in props.items():
            widest += len(name) + (max(map(len, vals)) if name[0] == STR else 8)
        if 64 + MAX_TYPE_LENGTH + 3 * MAX_ID_LENGTH + widest <= half:
            return True  # (type, id, userId and sessionId are within their limits)
        fixed = 64 + max(map(len, types)) + max(map(len, ids)) + _longest(users) + \
            _longest(sessions)
        if fixed + widest <= half:
            return True
        sizes = np.full(n, 64, dtype=np.int64)
        for col in (types, ids, users, sessions):
            sizes += np.fromiter((len(v) if v else 0 for v in col), np.int64, count=n)
        for name, (rows, vals) in props.items():
            extra = np.fromiter(map(len, vals), np.int64, count=len(vals)) \
                if name[0] == STR else 8
            np.add.at(sizes, np.asarray(rows, dtype=np.int64), extra + len(name))
        return bool(sizes.max() <= half)

    def append(self, batch: EventBatch, raw: Any, now: int, check_size: bool = True,
               strict_text: bool = False) -> None:
        """Validate `raw` fully first, then append it: a rejected event leaves no trace.

        `strict_text` also refuses strings that cannot be stored as UTF-8 (unpaired
        surrogates, which `json.loads` accepts from escapes): checked only when encoding the
        batch failed, to name the events at fault.
        """
        if type(raw) is not dict:
            raise _invalid("", "an event must be a JSON object", got=type(raw).__name__)
        etype = raw.get("type")
        if type(etype) is not str or not etype or ((etype[0] == " " or etype[-1] == " ") \
                and not etype.strip()):
            raise _invalid("type", "is required and must be a non-empty string")
        if len(etype) > MAX_TYPE_LENGTH:
            raise _invalid("type", f"must be at most {MAX_TYPE_LENGTH} characters")
        user = raw.get("userId")
        if user is not None and (type(user) is not str or len(user) > MAX_ID_LENGTH):
            user = _optional_str(raw, "userId")
        session = raw.get("sessionId")
        if session is not None and (type(session) is not str or len(session) > MAX_ID_LENGTH):
            session = _optional_str(raw, "sessionId")
        raw_id = raw.get("id")
        event_id = new_event_id() if raw_id is None else self._event_id(raw_id)
        ts = raw.get("timestamp")
        if type(ts) is not int or ts > now + self.limits.future_tolerance_ms or ts < 0 or \
                self.limits.past_horizon_ms is not None:
            ts = self._timestamp(ts, now)
        flat: list[tuple[str, Any]] = []
        props = raw.get("properties")
        if props is not None:
            if type(props) is not dict:
                raise _invalid("properties", "must be a JSON object",
                               got=type(props).__name__)
            if _flatten(props, "", flat, 0):
                _check_distinct(flat)
        if strict_text:
            _check_text(etype, "type")
            _check_text(user, "userId")
            _check_text(session, "sessionId")
            _check_text(event_id, "id")
            for name, v in flat:
                _check_text(name, "properties." + name[2:])
                _check_text(v, "properties." + name[2:])
        if check_size:
            size = 64 + len(etype) + len(user or "") + len(session or "") + len(event_id) + sum(
                len(name) + (len(v) if type(v) is str else 8) for name, v in flat)
            if size > self.limits.max_event_bytes // 2:
                size = len(json.dumps(raw, ensure_ascii=False).encode("utf-8", "surrogatepass"))
                if size > self.limits.max_event_bytes:
                    raise ValidationError(
                        f"event is {size} bytes, more than the limit of "
                        f"{self.limits.max_event_bytes}",
                        [{"field": "", "message": "event too large", "bytes": size,
                          "limit": self.limits.max_event_bytes}], code="event_too_large")
        self._check_keys(batch, etype, flat)
        row = len(batch.ids)
        batch.ids.append(event_id)
        batch.timestamps.append(ts)
        batch.types.append(etype)
        batch.users.append(user or None)
        batch.sessions.append(session or None)
        columns = batch.props
        for name, value in flat:
            col = columns.get(name)
            if col is None:
                columns[name] = ([row], [value])
            else:
                col[0].append(row)
                col[1].append(value)

    def _check_keys(self, batch: EventBatch, etype: str, flat: list[tuple[str, Any]]) -> None:
        """Property-key limits: per event, per batch, then the store's budget (claimed last,
        so only accepted events claim names)."""
        limits = self.limits
        if len(flat) > limits.max_event_properties:
            raise _invalid("properties", f"has {len(flat)} keys, more than the limit of "
                           f"{limits.max_event_properties} (setting max_event_properties)",
                           code="too_many_properties", count=len(flat),
                           limit=limits.max_event_properties)
        columns = batch.props
        new = sum(1 for name, _ in flat if name not in columns)
        if new and len(columns) + new > limits.max_batch_property_keys:
            raise _invalid("properties", f"brings {new} new keys to a batch that already "
                           f"holds {len(columns)}; a batch may hold at most "
                           f"{limits.max_batch_property_keys} distinct property keys (setting "
                           "max_batch_property_keys)", code="too_many_property_keys",
                           limit=limits.max_batch_property_keys)
        if self.budget is not None:
            self.budget.claim(batch, etype, [name for name, _ in flat])

    def _event_id(self, value: Any) -> str:
        if value is None:
            return new_event_id()
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise _invalid("id", "must be a string (a UUID is best)")
        text = str(value)
        if not text or len(text) > MAX_ID_LENGTH:
            raise _invalid("id", f"must be 1 to {MAX_ID_LENGTH} characters")
        return text

    def _timestamp(self, value: Any, now: int) -> int:
        if value is None:
            return now
        if isinstance(value, bool):
            raise _invalid("timestamp", "must be ms since epoch or an ISO-8601 string")
        ts: int | None
        if isinstance(value, int):
            ts = value
        elif isinstance(value, float):
            ts = int(value) if value == value and abs(value) < 1e16 else None
        elif isinstance(value, str):
            text = value.strip()
            number = int_text(text) if len(text) < 17 else None
            ts = number if number is not None else parse_iso(text)
        else:
            ts = None
        if ts is None:
            raise _invalid("timestamp", "must be ms since epoch or an ISO-8601 string",
                           value=value if isinstance(value, str | int | float) else None)
        if ts > now + self.limits.future_tolerance_ms:
            raise _invalid("timestamp", "is too far in the future (more than "
                           f"{self.limits.future_tolerance_ms} ms ahead of the server clock)",
                           value=ts, code="timestamp_in_future")
        horizon = self.limits.past_horizon_ms
        if horizon is not None and ts < now - horizon:
            hint = " (it looks like seconds, not milliseconds)" if 0 < ts < 10**11 else ""
            raise _invalid("timestamp", f"is older than the retention horizon{hint}",
                           value=ts, code="timestamp_too_old")
        if ts < 0:
            raise _invalid("timestamp", "must not be before 1970", value=ts)
        return ts


def _check_text(value: Any, fieldname: str) -> None:
    if type(value) is str and not value.isascii():
        try:
            value.encode()
        except UnicodeEncodeError:
            raise _invalid(fieldname, "must be valid Unicode text (it holds an unpaired "
                           "surrogate escape)") from None


def _longest(values: list[str | None]) -> int:
    return max((len(v) for v in set(values) if v), default=0)


def _json_text(value: Any) -> str:
    """How a non-scalar property value (an array) is stored: its compact JSON text."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _fast_nested(obj: dict[str, Any], row: int, stop: str,
                 by_type: dict[type, dict[str, tuple[list[int], list[Any]]]],
                 order: list[tuple[type, str]]) -> bool:
    """Redo row `row` of `EventValidator._fast_props` through `_flatten`, as the per-event
    path does, once its loop met the nested object at key `stop`: take back what the keys
    before `stop` added (each went to a distinct column, as its last entry), then add the
    flattened row. False when the row needs the per-event path (an error, an ambiguous key,
    a huge float)."""
    for key, value in obj.items():
        if key == stop:
            break
        if value is None:
            continue
        t = type(value)
        cols = by_type[t if t in by_type else str]
        rows, vals = cols[key]
        rows.pop()
        vals.pop()
        if not rows:
            del cols[key]
            order.remove((t if t in by_type else str, key))
    flat: list[tuple[str, Any]] = []
    try:
        _flatten(obj, "", flat, 0)
    except ValidationError:
        return False
    seen: set[str] = set()
    for name, value in flat:
        key = name[2:]
        if key in seen:
            return False  # 'a.b' given nested and dotted: the per-event path refuses it
        seen.add(key)
        if type(value) is float and not -_TWO63 < value < _TWO63:
            return False
        if name[0] == STR and type(value) is str and ("e+" in value or "E+" in value):
            return False  # (might be an array's text holding a huge integer)
        t = _TYPE_OF[name[0]]
        cols = by_type[t]
        col = cols.get(key)
        if col is None:
            cols[key] = ([row], [value])
            order.append((t, key))
        else:
            col[0].append(row)
            col[1].append(value)
    return True


def encode_record(batch: EventBatch) -> bytes:
    """The WAL record of a batch: compact UTF-8 JSON of its columns (`EventBatch.from_json`).

    Raises ValueError when a string holds an unpaired surrogate (not encodable as UTF-8).
    """
    try:
        return orjson.dumps({
            "r": batch.received_at, "id": batch.ids, "ts": batch.timestamps, "t": batch.types,
            "u": batch.users, "s": batch.sessions, "p": batch.props})
    except orjson.JSONEncodeError as exc:
        if "surrogates" in str(exc) or "UTF-8" in str(exc):
            raise ValueError(str(exc)) from None
        # Anything else orjson refuses (an int beyond 64 bits from a caller that skipped
        # validation): the standard library writes it.
        return json.dumps({
            "r": batch.received_at, "id": batch.ids, "ts": batch.timestamps, "t": batch.types,
            "u": batch.users, "s": batch.sessions, "p": batch.props,
        }, separators=(",", ":"), ensure_ascii=False).encode()


# A WAL record of a columnar batch: this prefix, then an Arrow IPC stream of its columns
# (id, ts, t, u, s, then "p:<kind>:<key>" with null = absent), received_at in the schema's
# metadata. JSON records start with "{", so both kinds are told apart by their first byte.
ARROW_RECORD = b"RTA-ARROW1\n"
_RECORD_OPTIONS = pa.ipc.IpcWriteOptions(compression=None)  # (lz4 costs more CPU than
# the bytes it saves cost to write and fsync)


def encode_columns(cols: BatchColumns, received_at: int) -> bytes:
    """The WAL record of a columnar batch (`decode_columns` reads it back)."""
    names = ["id", "ts", "t", "u", "s", *("p:" + name for name in cols.props)]
    arrays = [cols.ids, pa.array(cols.ts, pa.int64()), cols.types, cols.users, cols.sessions,
              *cols.props.values()]
    batch = pa.RecordBatch.from_arrays(arrays, names=names)
    batch = batch.replace_schema_metadata({"r": str(received_at)})
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema, options=_RECORD_OPTIONS) as writer:
        writer.write_batch(batch)
    return ARROW_RECORD + sink.getvalue().to_pybytes()


def decode_columns(raw: bytes) -> EventBatch:
    reader = pa.ipc.open_stream(pa.py_buffer(raw)[len(ARROW_RECORD):])
    table = reader.read_all()
    meta = table.schema.metadata or {}
    cols = [c.combine_chunks() for c in table.columns]
    names = table.schema.names
    return EventBatch(int(meta[b"r"]), columns=BatchColumns(
        table.num_rows, cols[0], np.array(cols[1].to_numpy(), dtype=np.int64), cols[2],
        cols[3], cols[4], {name[2:]: col for name, col in zip(names[5:], cols[5:],
                                                                strict=True)}))


def _optional_str(raw: dict[str, Any], name: str) -> str | None:
    value = raw.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise _invalid(name, "must be a string", got=type(value).__name__)
    if len(value) > MAX_ID_LENGTH:
        raise _invalid(name, f"must be at most {MAX_ID_LENGTH} characters")
    return value or None


def _check_distinct(flat: list[tuple[str, Any]]) -> None:
    """Refuse a key given both nested and dotted ({"a": {"b": 1}, "a.b": 2}): keeping either
    value would silently drop the other."""
    seen: set[str] = set()
    for name, _ in flat:
        key = name[2:]
        if key in seen:
            raise _invalid("properties." + key,
                           "is given twice, as a nested object and as a dotted key")
        seen.add(key)


def _flatten(obj: dict[str, Any], prefix: str, out: list[tuple[str, Any]],
             depth: int) -> bool:
    """Flatten nested objects to dotted 'kind:key' columns; True if anything was nested."""
    if depth > MAX_DEPTH:
        raise _invalid("properties." + prefix.rstrip("."), f"nests deeper than {MAX_DEPTH}")
    nested = False
    for key, value in obj.items():
        if not key or len(key) > MAX_KEY_LENGTH:
            raise _invalid("properties." + prefix + key,
                           f"property names must be 1 to {MAX_KEY_LENGTH} characters")
        t = type(value)
        if t is str:
            out.append(("s:" + prefix + key, value))
        elif t is int:
            if INT64_MIN <= value <= INT64_MAX:
                out.append(("i:" + prefix + key, value))
            else:
                out.append(("f:" + prefix + key, float(value)))
        elif t is float:
            if value == value and value not in (_INF, _NINF):
                out.append(("f:" + prefix + key, value))
        elif t is bool:
            out.append(("b:" + prefix + key, value))
        elif t is dict:
            _flatten(value, prefix + key + ".", out, depth + 1)
            nested = True
        elif value is not None:
            kv = property_kind(value)
            if kv is not None:
                out.append((kv[0] + ":" + prefix + key, kv[1]))
    return nested


_INF = float("inf")
_NINF = float("-inf")
_TWO63 = 2.0**63
_DICT_ONLY = {dict}
_RECORD_TYPE = attrgetter("type")
_RECORD_USER = attrgetter("userId")
_RECORD_SESSION = attrgetter("sessionId")
_RECORD_TS = attrgetter("timestamp")
_RECORD_ID = attrgetter("id")
_RECORD_PROPS = attrgetter("properties")
_NONE_TYPE = type(None)
_SCALAR_TYPES = {str, int, float, bool, _NONE_TYPE}
_STR_ONLY = {str}
_NONE_ONLY = {type(None)}
_INT_ONLY = {int}
_KIND_OF: dict[type, str] = {str: "s:", int: "i:", float: "f:", bool: "b:"}
_TYPE_OF: dict[str, type] = {STR: str, INT: int, FLOAT: float, BOOL: bool}


def _invalid(fieldname: str, message: str, code: str | None = None,
             **extra: Any) -> ValidationError:
    label = fieldname or "event"
    return ValidationError(f"{label} {message}",
                           [{"field": fieldname, "message": message, **extra}], code=code)
