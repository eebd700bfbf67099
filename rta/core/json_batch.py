"""JSON array batch bodies decoded straight into event records, not dicts.

`msgspec` decodes `[{...}, ...]` into `EventRecord`s: the five fields validation reads become
attributes, properties stay the plain JSON values they are, and every other member of an
event (ignored by validation) is skipped without making a Python object of it. That halves
the cost of parsing and pulling out the columns (`EventValidator.fast_records`) against
`orjson.loads` into dicts and `dict.get` over them.

msgspec reads what it accepts exactly as the standard library's `json` does (the last of
duplicate keys, escaped member names, integers of any size, floats correctly rounded); what
it refuses (NaN, numbers beyond double range, unpaired surrogate escapes, a byte-order mark,
an event that is not an object, a body that is not an array) makes `fast_json_batch` answer
None, and the caller takes the usual path (orjson, then `json` and the per-event path), which
decides every case and words every error exactly as before.

Thread rule: pure; any thread (the key budget it claims from locks itself).
"""

from __future__ import annotations

from typing import Any

import msgspec

from rta.core.events import EventBatch, EventValidator


class EventRecord(msgspec.Struct, gc=False):
    """The members of a JSON event that validation reads (None when absent or null, as
    `dict.get` gives them). Not tracked by the collector: it holds only JSON values."""

    type: Any = None
    userId: Any = None  # (the JSON members' names)
    sessionId: Any = None
    timestamp: Any = None
    id: Any = None
    properties: Any = None


_DECODER = msgspec.json.Decoder(list[EventRecord])


def decode_events(raw: bytes) -> list[EventRecord] | None:
    """The body's events, or None when it is not a JSON array of objects msgspec reads."""
    try:
        return _DECODER.decode(raw)
    except msgspec.DecodeError:  # (msgspec.ValidationError is one too)
        return None


def fast_json_batch(validator: EventValidator, raw: bytes, now: int,
                    max_events: int) -> EventBatch | None:
    """The validated batch of a JSON array body when the column-wise checks clear every
    event (`EventValidator.fast_records`); None when the usual path must decide (a body
    msgspec does not read, more than `max_events` events, any event needing a closer look).
    The body's length bounds every event's encoded size, as for the usual path."""
    records = decode_events(raw)
    if records is None or len(records) > max_events:
        return None
    return validator.fast_records(records, now, len(raw))
