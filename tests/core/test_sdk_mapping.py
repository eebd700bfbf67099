"""Pure mapping of PostHog and Segment payloads, checked against small reference rules."""

from __future__ import annotations

import base64
import gzip
import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rta.core.errors import PayloadTooLarge, ValidationError
from rta.core.events import EventValidator, Limits
from rta.core.sdk_mapping import (
    _Bad,
    decode_json,
    decode_posthog_body,
    event_time,
    posthog_batch,
    segment_batch,
    validate_mapped,
)

NOW = 1_750_000_000_000
FUTURE = 3_600_000
VALIDATOR = EventValidator(Limits())
MAX = 1 << 20

keys = st.text("abcxyz_$", min_size=1, max_size=6)
scalars = st.one_of(st.integers(-(2**53), 2**53), st.booleans(), st.text(max_size=8),
                    st.floats(allow_nan=False, allow_infinity=False, width=32))
flat_props = st.dictionaries(keys, scalars, max_size=5)
ids = st.text("abcdef0123456789-", min_size=1, max_size=20)
times = st.integers(10**12, NOW + 2 * FUTURE)  # after 2001: skew never goes below 1970


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")


def ms(text: str) -> int:
    return round(datetime.fromisoformat(text).timestamp() * 1000)


def rows(mapped: Any) -> list[dict[str, Any]]:
    batch = validate_mapped(VALIDATOR, mapped, NOW)
    return [batch.event(i) for i in range(len(batch))]


# -- time ------------------------------------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(ts=times, sent=st.one_of(st.none(), times), offset=st.one_of(st.none(),
       st.integers(1, 10**9)), has_ts=st.booleans())
def test_event_time_matches_the_vendor_rule(ts: int, sent: int | None, offset: int | None,
                                            has_ts: bool) -> None:
    got = event_time(iso(ts) if has_ts else None, iso(sent) if sent is not None else None,
                     offset, NOW, FUTURE)
    # Reference: PostHog's handleTimestamp, then its clamp of future times to now.
    if has_ts:
        want = ts if sent is None else NOW + (ts - sent)
    elif offset is not None:
        want = NOW - offset
    else:
        want = NOW
    assert got == ((NOW, want) if want > NOW + FUTURE else (want, None))


def test_event_time_details() -> None:
    assert event_time(None, None, None, NOW, FUTURE) == (NOW, None)
    assert event_time("", iso(NOW), 0, NOW, FUTURE) == (NOW, None)
    assert event_time(1000, "garbage sent_at", None, NOW, FUTURE) == (1000, None)
    assert event_time("2024-01-02T03:04:05Z", iso(NOW - 5000), None, NOW, FUTURE,
                      correct_skew=False) == (1704164645000, None)
    with pytest.raises(_Bad):
        event_time("next tuesday", None, None, NOW, FUTURE)
    with pytest.raises(_Bad):
        event_time(None, None, "5", NOW, FUTURE)


# -- bodies ----------------------------------------------------------------------------------

json_values = st.recursive(scalars | st.none(), lambda c: st.lists(c, max_size=3)
                           | st.dictionaries(keys, c, max_size=3), max_leaves=8)


@settings(max_examples=100, deadline=None)
@given(value=st.one_of(st.dictionaries(keys, json_values, max_size=4),
                       st.lists(json_values, max_size=4)),
       form=st.sampled_from(["json", "gzip", "base64", "form-b64", "form-b64-spaces",
                             "form-json"]))
def test_posthog_body_forms_round_trip(value: Any, form: str) -> None:
    text = json.dumps(value)
    b64 = base64.b64encode(text.encode()).decode()
    content_type = "application/json"
    if form == "json":
        raw = text.encode()
    elif form == "gzip":
        raw, content_type = gzip.compress(text.encode()), "text/plain"
    elif form == "base64":
        raw, content_type = b64.encode(), "text/plain"
    else:
        content_type = "application/x-www-form-urlencoded"
        data = text if form == "form-json" else b64
        raw = urlencode({"data": data, "compression": "base64"}).encode()
        if form == "form-b64-spaces":
            raw = ("data=" + b64.replace("+", " ")).encode()
    assert decode_posthog_body(raw, content_type, None, MAX) == value


def test_body_errors() -> None:
    bomb = gzip.compress(b"[" + b" " * (MAX + 10) + b"]")
    with pytest.raises(PayloadTooLarge):
        decode_posthog_body(bomb, "", "gzip-js", MAX)
    with pytest.raises(PayloadTooLarge):
        decode_json(bomb, MAX)
    for raw, kind in [(b"{x", ""), (b"\x1f\x8bxx", ""), (b"other=1", "application/x-www-"
                      "form-urlencoded"), (b"data=%%%", "application/x-www-form-urlencoded")]:
        with pytest.raises(ValidationError):
            decode_posthog_body(raw, kind, None, MAX)
    with pytest.raises(ValidationError) as info:
        decode_posthog_body(b"data=abc", "application/x-www-form-urlencoded", "lz64", MAX)
    assert info.value.code == "unsupported_compression"


# -- PostHog ---------------------------------------------------------------------------------

posthog_events = st.fixed_dictionaries({
    "event": st.one_of(st.sampled_from(["$identify", "$set", "$pageview"]),
                       st.text("abc$_", min_size=1, max_size=6)),
    "distinct_id": st.one_of(ids, st.integers(0, 10**6)),
    "uuid": st.uuids().map(str),
    "timestamp": times.map(iso),
    "properties": flat_props,
}, optional={"session": ids, "set": flat_props, "token": st.just("phc_secret")})


def posthog_reference(ev: dict[str, Any], sent: int | None) -> dict[str, Any]:
    """What one PostHog event should become, written from the issue's rules."""
    props = dict(ev["properties"])
    if "session" in ev:
        props["$session_id"] = ev["session"]
    if "set" in ev:
        props["$set"] = ev["set"]
    ts = ms(ev["timestamp"])
    if sent is not None:
        ts = NOW + ts - sent
    flat: dict[str, Any] = {}
    for k, v in props.items():
        if isinstance(v, dict):
            flat.update({f"{k}.{k2}": v2 for k2, v2 in v.items()})
        else:
            flat[k] = v
    if ev["event"] in ("$identify", "$set") and "set" in ev:
        flat.update({k: v for k, v in ev["set"].items() if k not in props})
    if ts > NOW + FUTURE:
        flat["$original_timestamp"], ts = ts, NOW
    return {"id": ev["uuid"], "type": ev["event"], "userId": str(ev["distinct_id"]),
            "sessionId": ev.get("session"), "timestamp": ts, "properties": flat}


def posthog_wire(ev: dict[str, Any]) -> dict[str, Any]:
    wire = {k: ev[k] for k in ("event", "distinct_id", "uuid", "timestamp")}
    wire["properties"] = dict(ev["properties"])
    if "session" in ev:
        wire["properties"]["$session_id"] = ev["session"]
    if "set" in ev:
        wire["$set"] = ev["set"]  # posthog-python's set() sends it at the top level
    if "token" in ev:
        wire["properties"]["token"] = ev["token"]
    return wire


@settings(max_examples=80, deadline=None)
@given(events=st.lists(posthog_events, min_size=1, max_size=6),
       sent=st.one_of(st.none(), times), shape=st.sampled_from(["batch", "array"]))
def test_posthog_batches_match_reference(events: list[dict[str, Any]], sent: int | None,
                                         shape: str) -> None:
    wire = [posthog_wire(e) for e in events]
    if shape == "batch":
        body: Any = {"api_key": "phc_k", "batch": wire}
        if sent is not None:
            body["sent_at"] = iso(sent)
    else:
        body = wire
        for w in wire:
            if sent is not None:
                w["sent_at"] = iso(sent)
    mapped = posthog_batch(body, NOW, FUTURE)
    got = rows(mapped)
    for row in got:
        del row["receivedAt"]
        row["properties"] = {k: v for k, v in row["properties"].items()
                             if not isinstance(v, float) or v == v}
    want = [posthog_reference(e, sent) for e in events]
    for w in want:  # JSON null values are not stored
        w["properties"] = {k: v for k, v in w["properties"].items() if v is not None}
    assert got == want
    assert mapped.key == ("phc_k" if shape == "batch" else
                          ("phc_secret" if any("token" in e for e in events) else None))


def test_posthog_single_event_and_fallbacks() -> None:
    mapped = posthog_batch({"event": "x", "properties": {"distinct_id": 42, "token": "t"}},
                           NOW, FUTURE)
    (row,) = rows(mapped)
    assert (row["userId"], row["timestamp"], row["properties"]) == ("42", NOW, {
        "distinct_id": 42})
    assert mapped.key == "t"
    (row,) = rows(posthog_batch({"event": "x", "distinct_id": 1.0, "offset": 500}, NOW,
                                FUTURE))
    assert (row["userId"], row["timestamp"]) == ("1", NOW - 500)


def test_posthog_errors_name_every_bad_event_in_sdk_terms() -> None:
    good = {"event": "e", "distinct_id": "d"}
    body = {"batch": [good, {"distinct_id": "d"}, good, {"event": "e", "distinct_id": "x" * 300},
                      {"event": "e", "distinct_id": "d", "properties": {"": 1}},
                      {"event": "e", "distinct_id": "d", "uuid": "u" * 300}, [1]]}
    with pytest.raises(ValidationError) as info:
        rows(posthog_batch(body, NOW, FUTURE))
    details = info.value.details
    assert [(d["index"], d["field"]) for d in details] == [
        (1, "batch[1].event"), (3, "batch[3].distinct_id"), (4, "batch[4].properties."),
        (5, "batch[5].uuid"), (6, "batch[6]")]
    assert info.value.code == "invalid_batch"
    assert "5 of 7 events" in info.value.message
    bad: Any
    for bad in ({"batch": 1}, {"batch": []}, 5, None):
        with pytest.raises(ValidationError):
            posthog_batch(bad, NOW, FUTURE)


# -- Segment -------------------------------------------------------------------------------

segment_messages = st.fixed_dictionaries({
    "type": st.sampled_from(["track", "page", "screen", "identify", "alias", "group"]),
    "messageId": ids,
    "timestamp": times.map(iso),
    "event": st.text("abc", min_size=1, max_size=4),
    "name": st.text("abc", min_size=1, max_size=4),
    "properties": flat_props,
    "traits": flat_props,
    "previousId": ids,
    "groupId": ids,
}, optional={"userId": ids, "anonymousId": ids})


def segment_reference(m: dict[str, Any], sent: int | None) -> dict[str, Any]:
    kind = m["type"]
    props: dict[str, Any]
    if kind == "track":
        etype, props = m["event"], dict(m["properties"])
    elif kind in ("page", "screen"):
        etype, props = ("pageview" if kind == "page" else "screen"), dict(m["properties"])
        props.setdefault("name", m["name"])
    elif kind == "identify":
        etype, props = "$identify", dict(m["traits"])
    elif kind == "alias":
        etype, props = "$alias", {"previousId": m["previousId"]}
    else:
        etype = "$group"
        props = {"groupId": m["groupId"], **{f"traits.{k}": v for k, v in m["traits"].items()},
                 "$group_type": "company", "$groups.company": m["groupId"]}
    if "userId" in m and "anonymousId" in m:
        props.setdefault("anonymousId", m["anonymousId"])
    ts = ms(m["timestamp"])
    if sent is not None:
        ts = NOW + ts - sent
    if ts > NOW + FUTURE:
        props.setdefault("$original_timestamp", ts)
        ts = NOW
    return {"id": m["messageId"], "type": etype,
            "userId": m.get("userId", m.get("anonymousId")), "sessionId": None,
            "timestamp": ts, "properties": {k: v for k, v in props.items() if v is not None}}


@settings(max_examples=80, deadline=None)
@given(messages=st.lists(segment_messages, min_size=1, max_size=6),
       sent=st.one_of(st.none(), times))
def test_segment_batches_match_reference(messages: list[dict[str, Any]],
                                         sent: int | None) -> None:
    valid = [m for m in messages if "userId" in m or "anonymousId" in m]
    body: dict[str, Any] = {"batch": valid, "writeKey": "wk"}
    if sent is not None:
        body["sentAt"] = iso(sent)
    mapped = segment_batch(body, None, NOW, FUTURE, key=None)
    assert mapped.key == "wk"
    got = rows(mapped)
    for row in got:
        del row["receivedAt"]
        row["properties"] = {k: v for k, v in row["properties"].items()
                             if not isinstance(v, float) or v == v}
    assert got == [segment_reference(m, sent) for m in valid]
    if len(valid) < len(messages):  # messages with neither id: all named, nothing kept
        with pytest.raises(ValidationError) as info:
            rows(segment_batch({"batch": messages}, None, NOW, FUTURE))
        bad = [i for i, m in enumerate(messages) if "userId" not in m and "anonymousId" not in m]
        assert [d["index"] for d in info.value.details] == bad


def test_segment_missing_identity_is_reported_per_index() -> None:
    with pytest.raises(ValidationError) as info:
        rows(segment_batch({"batch": [{"type": "track", "event": "e", "userId": "u"},
                                      {"type": "track", "event": "e"}]}, None, NOW, FUTURE))
    assert [(d["index"], d["field"]) for d in info.value.details] == [(1, "batch[1].userId")]


def test_segment_single_call_uses_the_route_and_auth_key() -> None:
    mapped = segment_batch({"type": "track", "userId": "u", "name": "Home",
                            "context": {"page": {"path": "/"}}}, "page", NOW, FUTURE,
                           key="from-basic-auth")
    assert mapped.key == "from-basic-auth"
    (row,) = rows(mapped)
    assert (row["type"], row["properties"]) == ("pageview", {"name": "Home",
                                                             "context.page.path": "/"})


def test_posthog_top_level_set_that_is_not_an_object_is_refused() -> None:
    """A top-level `$set` / `$set_once` (older SDKs) that is not an object is malformed
    person data: refused naming the field, not silently dropped."""
    for top in ("$set", "$set_once"):
        body = {"batch": [{"event": "e", "distinct_id": "d"},
                          {"event": "e", "distinct_id": "d", top: "pro"}]}
        with pytest.raises(ValidationError) as info:
            rows(posthog_batch(body, NOW, FUTURE))
        assert [(d["index"], d["field"]) for d in info.value.details] == [
            (1, f"batch[1].{top}")]
    rows(posthog_batch({"batch": [{"event": "e", "distinct_id": "d", "$set": None}]},
                       NOW, FUTURE))
