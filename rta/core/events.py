"""Event model: validate raw JSON events and normalise them into a columnar batch.

Validation and column building happen in one pass so the hot ingest path touches each
value once; the resulting `EventBatch` is what the write-ahead log stores and the head applies.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

from rta.core.errors import ValidationError
from rta.core.timeparse import HOUR, now_ms, parse_iso

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
    past_horizon_ms: int | None = None  # None: no horizon (retention keeps everything)


@dataclass
class EventBatch:
    """Normalised events in columnar form; `props` maps 'kind:key' to (row indexes, values)."""

    received_at: int
    ids: list[str] = field(default_factory=list)
    timestamps: list[int] = field(default_factory=list)
    types: list[str] = field(default_factory=list)
    users: list[str | None] = field(default_factory=list)
    sessions: list[str | None] = field(default_factory=list)
    props: dict[str, tuple[list[int], list[Any]]] = field(default_factory=dict)
    # (id high, id low, custom) per event: derived, cached by the store, never serialised
    id_keys: list[tuple[int, int, bool]] | None = field(default=None, compare=False, repr=False)

    def __len__(self) -> int:
        return len(self.ids)

    def to_json(self) -> bytes:
        return json.dumps({
            "r": self.received_at, "id": self.ids, "ts": self.timestamps, "t": self.types,
            "u": self.users, "s": self.sessions, "p": self.props,
        }, separators=(",", ":"), ensure_ascii=False).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> EventBatch:
        d = json.loads(raw)
        return cls(d["r"], d["id"], d["ts"], d["t"], d["u"], d["s"],
                   {k: (v[0], v[1]) for k, v in d["p"].items()})

    def select(self, rows: list[int]) -> EventBatch:
        """A new batch holding only `rows` (in order), re-indexing the property columns."""
        remap = {old: new for new, old in enumerate(rows)}
        out = EventBatch(self.received_at, [self.ids[i] for i in rows],
                         [self.timestamps[i] for i in rows], [self.types[i] for i in rows],
                         [self.users[i] for i in rows], [self.sessions[i] for i in rows])
        if self.id_keys is not None:
            out.id_keys = [self.id_keys[i] for i in rows]
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

    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()

    def validate_batch(self, items: list[Any], now: int | None = None, index_offset: int = 0,
                       size_bound: int | None = None) -> tuple[EventBatch, list[dict[str, Any]]]:
        """Returns the batch of valid events and one `{index, error}` per invalid one.

        `size_bound` is an upper bound on any single event's encoded size (e.g. the request
        body's length); when it is within the limit, per-event size accounting is skipped.
        """
        current = now_ms() if now is None else now
        batch = EventBatch(received_at=current)
        rejected: list[dict[str, Any]] = []
        check_size = size_bound is None or size_bound > self.limits.max_event_bytes
        for i, item in enumerate(items):
            try:
                self.append(batch, item, current, check_size)
            except ValidationError as exc:
                rejected.append({"index": i + index_offset, "error": exc.to_dict()["error"]})
        return batch, rejected

    def validate_one(self, item: Any, now: int | None = None) -> EventBatch:
        current = now_ms() if now is None else now
        batch = EventBatch(received_at=current)
        self.append(batch, item, current)
        return batch

    def append(self, batch: EventBatch, raw: Any, now: int, check_size: bool = True) -> None:
        """Validate `raw` fully first, then append it: a rejected event leaves no trace."""
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
        nested = False
        if props is not None:
            if type(props) is not dict:
                raise _invalid("properties", "must be a JSON object",
                               got=type(props).__name__)
            nested = _flatten(props, "", flat, 0)
        if check_size:
            size = 64 + len(etype) + len(user or "") + len(session or "") + len(event_id) + sum(
                len(name) + (len(v) if type(v) is str else 8) for name, v in flat)
            if size > self.limits.max_event_bytes // 2:
                size = len(json.dumps(raw, ensure_ascii=False).encode())
                if size > self.limits.max_event_bytes:
                    raise ValidationError(
                        f"event is {size} bytes, more than the limit of "
                        f"{self.limits.max_event_bytes}",
                        [{"field": "", "message": "event too large", "bytes": size,
                          "limit": self.limits.max_event_bytes}], code="event_too_large")
        row = len(batch.ids)
        batch.ids.append(event_id)
        batch.timestamps.append(ts)
        batch.types.append(etype)
        batch.users.append(user or None)
        batch.sessions.append(session or None)
        columns = batch.props
        seen: set[str] | None = set() if nested else None
        for name, value in flat:
            if seen is not None:
                key = name[2:]
                if key in seen:
                    continue  # 'a.b' given both nested and dotted: the first one wins
                seen.add(key)
            col = columns.get(name)
            if col is None:
                columns[name] = ([row], [value])
            else:
                col[0].append(row)
                col[1].append(value)

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
            ts = int(text) if text.lstrip("-").isdigit() and len(text) < 17 else parse_iso(text)
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


def _optional_str(raw: dict[str, Any], name: str) -> str | None:
    value = raw.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise _invalid(name, "must be a string", got=type(value).__name__)
    if len(value) > MAX_ID_LENGTH:
        raise _invalid(name, f"must be at most {MAX_ID_LENGTH} characters")
    return value or None


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


def new_event_id() -> str:
    """A random (version 4) UUID, formatted without the uuid module's overhead."""
    h = (int.from_bytes(os.urandom(16)) & _V4_MASK | _V4_BITS).to_bytes(16).hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


_INF = float("inf")
_NINF = float("-inf")
_V4_MASK = ~((0xF000 << 64) | (0xC000 << 48)) & ((1 << 128) - 1)
_V4_BITS = (0x4000 << 64) | (0x8000 << 48)


def _invalid(fieldname: str, message: str, code: str | None = None,
             **extra: Any) -> ValidationError:
    label = fieldname or "event"
    return ValidationError(f"{label} {message}",
                           [{"field": fieldname, "message": message, **extra}], code=code)
