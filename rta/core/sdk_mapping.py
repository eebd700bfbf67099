"""Map PostHog and Segment SDK payloads onto rta's raw event dicts.

Teams keep their SDKs and change only the host: these pure functions turn what the SDKs send
into the same raw events `/events/batch` takes, so they go through `EventValidator` and
`Engine.ingest` unchanged. Every event of a payload is mapped and validated before anything
is stored, and all problems are reported at once with paths in the SDK's own field names.

Timestamps follow both vendors' clock-skew rule: when the client says when it sent the
request (`sent_at` / `sentAt`), an event's time is `now + (timestamp - sent_at)`, so a phone
whose clock is an hour off still lands at the right moment. PostHog's `offset` (ms before
sending) gives `now - offset`; the property `$ignore_sent_at: true` turns correction off
(historical imports). A corrected time still further ahead than the validator's
future tolerance is stored at `now` (PostHog does the same) with the client's value kept in
`$original_timestamp`, rather than failing the whole batch over one bad device clock.

Thread rule: pure; any thread.
"""

from __future__ import annotations

import base64
import binascii
import json
import zlib
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from rta.core.errors import PayloadTooLarge, ValidationError
from rta.core.events import EventBatch, EventValidator
from rta.core.ingest import invalid_batch, validate_many
from rta.core.queries.timeparse import int_text, parse_iso

GZIP_MAGIC = b"\x1f\x8b"
FORM_TYPE = "application/x-www-form-urlencoded"
DEFAULT_GROUP_TYPE = "company"  # Segment's group calls (setting `segment_group_type`)
SEGMENT_KINDS = ("track", "page", "screen", "identify", "alias", "group")
# Event types rta stores for the Segment calls that carry no event name of their own.
SEGMENT_TYPES = {"page": "pageview", "screen": "screen", "identify": "$identify",
                 "alias": "$alias", "group": "$group"}
# PostHog events whose `$set` person properties are also copied to top-level properties, so
# segments (which read each user's latest property values from events) can use them, as
# they use Segment identify traits.
POSTHOG_PERSON_EVENTS = ("$identify", "$set")
# rta field -> the SDK field it came from, for error paths the SDK user recognises.
POSTHOG_FIELDS = {"type": "event", "userId": "distinct_id", "sessionId": "properties.$session_id",
                  "id": "uuid"}
SEGMENT_FIELDS = {"id": "messageId"}


@dataclass
class Mapped:
    """Raw rta events from one SDK request, the key it carried, and per-event mapping errors.

    `paths[i]` is where `events[i]` sits in the payload (e.g. 'batch[3]'); `errors` hold
    `{index, field, message}` for events that could not be mapped at all.
    """

    sdk: str
    key: str | None = None
    events: list[dict[str, Any]] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    indexes: list[int] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    total: int = 0


class _Bad(Exception):
    """One field of one SDK event is unusable (collected, then reported together)."""

    def __init__(self, fieldname: str, message: str) -> None:
        super().__init__(message)
        self.field = fieldname
        self.message = message


# -- bodies ----------------------------------------------------------------------------------


def gunzip(raw: bytes, max_bytes: int) -> bytes:
    """Decompress a gzip body without letting it grow past `max_bytes` (zip bombs)."""
    try:
        d = zlib.decompressobj(47)
        out = d.decompress(raw, max_bytes + 1)
    except zlib.error as exc:
        raise ValidationError(f"body is not valid gzip: {exc}", [{"field": "body"}],
                              code="bad_encoding") from None
    if len(out) > max_bytes or d.unconsumed_tail:
        raise PayloadTooLarge(f"decompressed body is over the limit of {max_bytes} bytes",
                              [{"limit": max_bytes}])
    return out


def decode_json(raw: bytes, max_bytes: int) -> Any:
    """JSON from a body that may still be gzipped (sniffed by its magic bytes)."""
    if raw.startswith(GZIP_MAGIC):
        raw = gunzip(raw, max_bytes)
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValidationError(f"body is not valid JSON: {exc}", [{"field": "body",
                              "message": str(exc)}], code="invalid_json") from None


def decode_posthog_body(raw: bytes, content_type: str, compression: str | None,
                        max_bytes: int) -> Any:
    """A PostHog capture body in any form its SDKs send, as JSON.

    Plain or gzipped JSON (`Content-Encoding: gzip` is undone by the server; posthog-js's
    `?compression=gzip-js` body is gzip sent as text/plain and is recognised by its magic
    bytes whatever the label), and the form-encoded `data=<base64 JSON>` of older posthog-js,
    decoded the way PostHog does (spaces read back as '+').
    """
    comp = (compression or "").strip().lower()
    data = raw
    stripped = raw.lstrip()
    if not raw.startswith(GZIP_MAGIC) and not stripped.startswith((b"{", b"[")) and (
            content_type == FORM_TYPE or stripped.startswith(b"data=")):
        form = parse_qs(raw.decode("utf-8", "replace"), keep_blank_values=True)
        if "data" not in form:
            raise ValidationError("form body has no 'data' field", [{"field": "data"}],
                                  code="invalid_payload")
        data = form["data"][0].encode()
        comp = comp or form.get("compression", [""])[0].lower()
    if comp == "lz64":
        raise ValidationError("compression 'lz64' is not supported; configure the SDK for "
                              "gzip-js or no compression",
                              [{"field": "compression", "got": comp,
                                "allowed": ["gzip", "gzip-js", "base64"]}],
                              code="unsupported_compression")
    if data.startswith(GZIP_MAGIC):
        data = gunzip(data, max_bytes)
    try:
        return json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        first = exc
    try:  # older posthog-js and other libraries send base64 JSON
        text = data.decode("ascii").strip().replace(" ", "+")
        decoded = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
        if decoded.startswith(GZIP_MAGIC):
            decoded = gunzip(decoded, max_bytes)
        return json.loads(decoded)
    except (UnicodeDecodeError, binascii.Error, json.JSONDecodeError, ValueError):
        raise ValidationError(f"body is not valid JSON: {first}",
                              [{"field": "body", "message": str(first)}],
                              code="invalid_json") from None


# -- time ------------------------------------------------------------------------------------


def _time_value(value: Any, fieldname: str) -> int:
    """ms since epoch from an ISO-8601 string or a number of ms."""
    if isinstance(value, bool):
        raise _Bad(fieldname, "must be an ISO-8601 time")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value == value and abs(value) < 1e16:
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        number = int_text(text) if len(text) < 17 else None
        if number is not None:
            return number
        ts = parse_iso(text)
        if ts is not None:
            return ts
    raise _Bad(fieldname, "must be an ISO-8601 time")


def _optional_time(value: Any) -> int | None:
    """A `sent_at`: ignored when missing or unreadable, as PostHog does."""
    if value in (None, ""):
        return None
    try:
        return _time_value(value, "sent_at")
    except _Bad:
        return None


def event_time(timestamp: Any, sent_at: Any, offset: Any, now: int, future_ms: int,
               correct_skew: bool = True,
               ts_field: str = "timestamp") -> tuple[int, int | None]:
    """(stored time, the client's time if it had to be clamped to `now`).

    See the module docstring for the rule; `sent_at` and `offset` are the vendors' fields.
    """
    if timestamp not in (None, ""):
        ts = _time_value(timestamp, ts_field)
        sent = _optional_time(sent_at) if correct_skew else None
        if sent is not None:
            ts = now + (ts - sent)
    elif offset not in (None, 0):
        if isinstance(offset, bool) or not isinstance(offset, int | float) or offset != offset:
            raise _Bad("offset", "must be a number of milliseconds")
        ts = now - int(offset)
    else:
        return now, None
    if ts > now + future_ms:
        return now, ts
    return ts, None


# -- PostHog -------------------------------------------------------------------------------


def _id_text(value: Any, fieldname: str, required: bool) -> str | None:
    """An identifier as text: SDKs send strings, sometimes numbers."""
    if value is None or value == "":
        if required:
            raise _Bad(fieldname, "is required")
        return None
    if isinstance(value, bool):
        raise _Bad(fieldname, "must be a string")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and value == value:
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, str):
        return value
    raise _Bad(fieldname, "must be a string")


def _object(value: Any, fieldname: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _Bad(fieldname, "must be a JSON object")
    return value


def _key_text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def posthog_event(item: Any, sent_at: Any, now: int, future_ms: int) -> dict[str, Any]:
    """One PostHog event (`event`, `distinct_id`, `properties`, `timestamp`, `uuid`)."""
    if not isinstance(item, dict):
        raise _Bad("", "an event must be a JSON object")
    props = dict(_object(item.get("properties"), "properties"))
    name = item.get("event")
    if not isinstance(name, str) or not name.strip():
        raise _Bad("event", "is required and must be a non-empty string")
    distinct = item.get("distinct_id")
    if distinct is None or distinct == "":
        distinct = props.get("distinct_id", props.get("$distinct_id"))
    user = _id_text(distinct, "distinct_id", required=True)
    props.pop("token", None)  # the project key is a credential, not data
    for top in ("$set", "$set_once"):
        if item.get(top) is not None and not isinstance(item[top], dict):
            raise _Bad(top, "must be an object of person properties")
        if isinstance(item.get(top), dict) and top not in props:
            props[top] = item[top]
    if name in POSTHOG_PERSON_EVENTS and isinstance(props.get("$set"), dict):
        for key, value in props["$set"].items():
            props.setdefault(key, value)
    session = props.get("$session_id")
    ignore_sent_at = props.get("$ignore_sent_at") is True
    ts, clamped = event_time(item.get("timestamp"), item.get("sent_at") or sent_at,
                             item.get("offset"), now, future_ms,
                             correct_skew=not ignore_sent_at)
    if clamped is not None:
        props["$original_timestamp"] = clamped
    return {"id": _id_text(item.get("uuid"), "uuid", required=False), "type": name,
            "userId": user, "sessionId": session if isinstance(session, str) else None,
            "timestamp": ts, "properties": props}


def _posthog_item_key(item: Any) -> str | None:
    if not isinstance(item, dict):
        return None
    props = item.get("properties")
    return (_key_text(item.get("api_key")) or _key_text(item.get("token"))
            or (_key_text(props.get("token")) if isinstance(props, dict) else None))


def posthog_batch(body: Any, now: int, future_ms: int, key: str | None = None) -> Mapped:
    """Every PostHog body shape: `{"batch": [...]}`, a bare array, or a single event.

    `key` is one sent outside the body (header or query); the body's `api_key`/`token`, or
    an event's, is used when it is absent.
    """
    out = Mapped("posthog", key=key)
    sent_at: Any = None
    prefix = ""
    if isinstance(body, list):
        items: list[Any] = body
        prefix = "[{}]"
    elif isinstance(body, dict):
        out.key = out.key or _key_text(body.get("api_key")) or _key_text(body.get("token"))
        if "batch" in body:
            if not isinstance(body["batch"], list):
                raise ValidationError("batch must be a JSON array of events",
                                      [{"field": "batch", "message": "must be an array"}],
                                      code="invalid_payload")
            items = body["batch"]
            sent_at = body.get("sent_at")
            prefix = "batch[{}]"
        else:
            items = [body]
    else:
        raise ValidationError("body must be a JSON object or an array of events",
                              [{"field": "body", "got": type(body).__name__}],
                              code="invalid_payload")
    if not items:
        raise ValidationError("the batch holds no events", [{"field": prefix[:-4] or "batch"}],
                              code="empty_batch")
    out.total = len(items)
    for i, item in enumerate(items):
        path = prefix.format(i)
        out.key = out.key or _posthog_item_key(item)
        try:
            event = posthog_event(item, sent_at, now, future_ms)
        except _Bad as bad:
            out.errors.append(_error(i, path, bad.field, bad.message))
            continue
        out.events.append(event)
        out.paths.append(path)
        out.indexes.append(i)
    return out


# -- Segment -------------------------------------------------------------------------------


def segment_event(msg: Any, kind: str | None, sent_at: Any, context: dict[str, Any],
                  now: int, future_ms: int,
                  group_type: str = DEFAULT_GROUP_TYPE) -> dict[str, Any]:
    """One Segment message; `kind` is the call the route names (None: the message's `type`).

    Groups: a `group` call is the group identify of `group_type` (`$group_type`; its
    `groupId` and `traits` are the key and the properties, `group_wire`), and the event of
    any call whose context names a `groupId` belongs to that group (`$groups`)."""
    if not isinstance(msg, dict):
        raise _Bad("", "a message must be a JSON object")
    if kind is None:
        kind = msg.get("type")
        if kind not in SEGMENT_KINDS:
            raise _Bad("type", "must be one of " + ", ".join(SEGMENT_KINDS))
    user = _id_text(msg.get("userId"), "userId", required=False)
    anonymous = _id_text(msg.get("anonymousId"), "anonymousId", required=False)
    if user is None and anonymous is None:
        raise _Bad("userId", "userId or anonymousId is required")
    props: dict[str, Any]
    if kind == "track":
        name = msg.get("event")
        if not isinstance(name, str) or not name.strip():
            raise _Bad("event", "is required and must be a non-empty string")
        etype = name
        props = dict(_object(msg.get("properties"), "properties"))
    elif kind in ("page", "screen"):
        etype = SEGMENT_TYPES[kind]
        props = dict(_object(msg.get("properties"), "properties"))
        for extra in ("name", "category"):
            value = msg.get(extra)
            if value is not None:
                props.setdefault(extra, value)
    elif kind == "identify":
        etype = SEGMENT_TYPES[kind]
        props = dict(_object(msg.get("traits"), "traits"))
    elif kind == "alias":
        etype = SEGMENT_TYPES[kind]
        props = {"previousId": _id_text(msg.get("previousId"), "previousId", required=True)}
    else:  # group: the traits describe the group, so they stay apart from the user's own
        etype = SEGMENT_TYPES[kind]
        props = {"groupId": _id_text(msg.get("groupId"), "groupId", required=True),
                 "traits": _object(msg.get("traits"), "traits")}
        props["$group_type"] = group_type
    if user is not None and anonymous is not None:
        props.setdefault("anonymousId", anonymous)
    ctx = {**context, **_object(msg.get("context"), "context")}
    if ctx:
        props.setdefault("context", ctx)
    group_key = props.get("groupId") if kind == "group" else ctx.get("groupId")
    if group_key not in (None, "") and "$groups" not in props:
        props["$groups"] = {group_type: group_key}
    ts_field = "timestamp" if msg.get("timestamp") not in (None, "") else "originalTimestamp"
    ts, clamped = event_time(msg.get(ts_field), msg.get("sentAt") or sent_at, None, now,
                             future_ms, ts_field=ts_field)
    if clamped is not None:
        props.setdefault("$original_timestamp", clamped)
    return {"id": _id_text(msg.get("messageId"), "messageId", required=False), "type": etype,
            "userId": user if user is not None else anonymous, "sessionId": None,
            "timestamp": ts, "properties": props}


def segment_batch(body: Any, kind: str | None, now: int, future_ms: int,
                  key: str | None = None, group_type: str = "company") -> Mapped:
    """`/v1/batch` (`kind` None: `{"batch": [...]}`) or one `/v1/<kind>` message."""
    out = Mapped("segment", key=key)
    if not isinstance(body, dict):
        raise ValidationError("body must be a JSON object",
                              [{"field": "body", "got": type(body).__name__}],
                              code="invalid_payload")
    out.key = out.key or _key_text(body.get("writeKey"))
    if kind is None:
        items = body.get("batch")
        if not isinstance(items, list):
            raise ValidationError("batch must be a JSON array of messages",
                                  [{"field": "batch", "message": "must be an array"}],
                                  code="invalid_payload")
        context = body.get("context")
        if context is not None and not isinstance(context, dict):
            raise ValidationError("context must be a JSON object",
                                  [{"field": "context", "message": "must be an object"}],
                                  code="invalid_payload")
        prefix = "batch[{}]"
        sent_at = body.get("sentAt")
    else:
        items, context, prefix, sent_at = [body], None, "", None
    out.total = len(items)
    for i, msg in enumerate(items):
        path = prefix.format(i)
        try:
            event = segment_event(msg, kind, sent_at, context or {}, now, future_ms,
                                  group_type)
        except _Bad as bad:
            out.errors.append(_error(i, path, bad.field, bad.message))
            continue
        out.events.append(event)
        out.paths.append(path)
        out.indexes.append(i)
    return out


# -- validation ------------------------------------------------------------------------------


def _error(index: int, path: str, fieldname: str, message: str) -> dict[str, Any]:
    full = ".".join(p for p in (path, fieldname) if p)
    return {"index": index, "field": full, "message": message}


def _sdk_field(sdk: str, rta_field: str) -> str:
    names = POSTHOG_FIELDS if sdk == "posthog" else SEGMENT_FIELDS
    return names.get(rta_field, rta_field)


def validate_mapped(validator: EventValidator, mapped: Mapped, now: int) -> EventBatch:
    """The whole request as one batch, or a ValidationError naming every bad event.

    Nothing is partial: one bad event rejects the request, so an SDK never sees a success
    for a batch that was only half stored.
    """
    batch, rejected = validate_many(validator, mapped.events, now, None)
    errors = list(mapped.errors)
    for r in rejected:
        i = r["index"]
        for detail in r["error"].get("details") or [{"message": r["error"]["message"]}]:
            errors.append({**detail, **_error(mapped.indexes[i], mapped.paths[i],
                                              _sdk_field(mapped.sdk, detail.get("field", "")),
                                              detail.get("message", r["error"]["message"]))})
    if errors:
        errors.sort(key=lambda e: e["index"])
        first = errors[0]
        where = f"(first: {first['field'] or 'event'} {first['message']})"
        raise invalid_batch(len({e["index"] for e in errors}), mapped.total, errors, where)
    return batch
