"""JSON array bodies decoded into records (msgspec) and validated column-wise give the
per-event path's batch over `json`'s parse, or step aside (None) for it to decide."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rta.core import jsonstrict
from rta.core.events import EventValidator, Limits
from rta.core.json_batch import decode_events, fast_json_batch
from tests.core.test_events import NOW, fast_events, flat_events, per_event, same_batch


def check(raw: bytes, limits: Limits | None = None) -> bool:
    """Whether the fast path took `raw`; if it did, its batch is the per-event path's over
    the standard library's parse of the same bytes."""
    fast = fast_json_batch(EventValidator(limits), raw, NOW, 10_000)
    if fast is None:
        return False
    items = jsonstrict.loads(raw)
    slow, rejected = per_event(items, limits, len(raw))
    assert rejected == []
    same_batch(fast, slow, {i for i, e in enumerate(items) if e.get("id") is None})
    return True


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(fast_events, flat_events), max_size=5),
       st.sampled_from([None, 30 * 86_400_000]))
def test_records_equal_the_per_event_path(items: list[dict], horizon: int | None) -> None:
    raw = json.dumps(items, ensure_ascii=False).encode("utf-8", "surrogatepass")
    check(raw, Limits(max_event_bytes=256, past_horizon_ms=horizon))


def test_the_usual_body_takes_the_record_path() -> None:
    items = [{"type": "pageview", "userId": "u1", "sessionId": "s", "timestamp": NOW - 5,
              "id": "78d44105-b207-46ed-b4ef-3676c0c988b6", "extra": {"a": [1, 2]},
              "properties": {"page": "/a", "n": 3, "x": 1.5, "ok": True, "none": None,
                             "tags": ["a", 2], "nested": {"deep": {"v": "z"}}}},
             {"type": "click", "id": 42, "timestamp": "2023-11-09T21:20:00Z",
              "properties": {"n": 2.5, "page": "/b"}},
             {"type": "click", "properties": {"page": "/c", "ok": False}}]
    assert check(json.dumps(items).encode())


@pytest.mark.parametrize("raw", [
    b'[{"type":"a","type":"b","timestamp":1}]',                  # the last of duplicates
    b'[{"typ\\u0065":"esc","properties":{"k":1,"k":"two"}}]',    # escaped member names
    b'[{"type":"a","properties":{"n":123456789012345678901234}}]',  # an integer of any size
    b'[{"type":"a","properties":{"x":-0.0,"y":1.0e2,"z":-0,"s":"\\u0000"}}]',
    b'[]',
])
def test_what_msgspec_reads_it_reads_as_json_does(raw: bytes) -> None:
    check(raw)


@pytest.mark.parametrize("raw", [
    b'[{"type":"a","properties":{"x":1e999}}]',      # beyond a double: json's path refuses
    b'[{"type":"a","properties":{"x":NaN}}]',
    b'[{"type":"\\ud800"}]',                          # an unpaired surrogate escape
    b'\xef\xbb\xbf[{"type":"a"}]',                    # a byte-order mark
    b'[{"type":"a"}, "x"]', b'[null]', b'{"events":[{"type":"a"}]}', b'[{"type":"a"}] x',
    b'[{"type":""}]',                                  # invalid: the per-event path words it
])
def test_everything_else_steps_aside(raw: bytes) -> None:
    assert fast_json_batch(EventValidator(), raw, NOW, 10_000) is None


def test_more_events_than_the_limit_step_aside() -> None:
    raw = json.dumps([{"type": "a"}] * 3).encode()
    assert decode_events(raw) is not None
    assert fast_json_batch(EventValidator(), raw, NOW, 2) is None


pages = st.sampled_from(["/a", "/b?q=1", "https://x.io/c", ""])


@settings(max_examples=40, deadline=None)
@given(st.lists(st.fixed_dictionaries({"type": st.just("pageview")}, optional={
    "properties": st.one_of(*[st.fixed_dictionaries({}, optional={"page": pages,
                                                                  "other": pages})] * 4,
                            st.dictionaries(st.sampled_from(["page", "$pathname", "url"]),
                                            pages, max_size=2))}), min_size=1, max_size=6))
def test_batch_paths_shortcut_equals_the_row_loop(items: list[dict]) -> None:
    """Live top pages: a batch whose only page field is `page` takes its values as they are;
    the same answer as the loop over every alias (run here with one more alias column, of
    no rows, so the shortcut is not taken)."""
    from rta.core.queries import pageviews

    batch, _ = EventValidator().validate_batch(items, now=NOW)
    props = dict(batch.props.items())
    spare = next(k for k in (*pageviews.PATH_KEYS, *pageviews.URL_KEYS)
                 if "s:" + k not in props)
    assert pageviews.batch_paths(props) == \
        pageviews.batch_paths({**props, "s:" + spare: ([], [])})
