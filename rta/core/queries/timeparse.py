"""Time values accepted everywhere: ms epoch, ISO-8601, relative names and durations.

Thread rule: pure functions over their arguments; any thread.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta

from rta.core.errors import field_error

MS = 1
SECOND = 1000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE
DAY = 24 * HOUR
WEEK = 7 * DAY

_UNITS = {"ms": MS, "s": SECOND, "m": MINUTE, "h": HOUR, "d": DAY, "w": WEEK}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)\s*$")
_RELATIVE = re.compile(r"^last_(\d+)(ms|s|m|h|d|w)$")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_FIRST_MS = -62_135_596_800_000  # 0001-01-01T00:00:00Z
# Query times and durations are bounded so that every date derived from them (bucket edges,
# cohort grids, ISO labels) stays within what datetime and int64 arithmetic can represent.
MAX_TIME_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z
MAX_DURATION_MS = 100 * 365 * DAY


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def int_text(text: str) -> int | None:
    """The integer an ASCII decimal string spells (one optional leading '-'), else None.

    `str.isdigit()` is also true for '²', '¹' and other digits `int()` refuses, so every
    "is this text a number" check goes through here."""
    body = text[1:] if text.startswith("-") else text
    return int(text) if body.isascii() and body.isdigit() else None


def parse_duration(value: object, field: str = "interval") -> int:
    """A duration in ms: an integer, or '500ms', '30s', '5m', '1h', '1d', '2w'."""
    if isinstance(value, bool):
        raise field_error(field, "must be a duration such as 300000, '5m', '1h' or '1d'")
    if isinstance(value, int | float):
        if value <= 0 or value != value:
            raise field_error(field, "must be a positive duration", value=value)
        return _bounded_duration(value, field)
    if isinstance(value, str):
        text = value.strip()
        number = int_text(text)
        if number is not None:
            return parse_duration(number, field)
        m = _DURATION.match(text)
        if m:
            ms = float(m.group(1)) * _UNITS[m.group(2)]
            if ms >= 1:
                return _bounded_duration(ms, field, value)
    raise field_error(field, "must be a duration such as 300000, '5m', '1h' or '1d'",
                      value=value)


def _bounded_duration(ms: float, field: str, given: object = None) -> int:
    if ms > MAX_DURATION_MS:
        raise field_error(field, f"must be at most 100 years ({MAX_DURATION_MS} ms)",
                          value=ms if given is None else given)
    return int(ms)


def _bounded_time(ms: int, field: str, given: object) -> int:
    if not 0 <= ms <= MAX_TIME_MS:
        raise field_error(field, f"must be between 0 (1970-01-01) and {MAX_TIME_MS} "
                          "(9999-12-31) ms since epoch", value=given)
    return ms


def _ago(now: int, amount: str, unit: str) -> int:
    """`amount` `unit`s before `now`, no earlier than 1970 (no event is older, and a start
    like 'last_99999999999999d' must not leave the int64 range of the query kernels)."""
    ms = float(amount) * _UNITS[unit]  # (inf for absurdly long digit strings)
    return 0 if ms >= now else now - int(ms)


def parse_iso(text: str) -> int | None:
    """ISO-8601 to ms epoch; naive times are UTC. None when the text is not ISO-8601."""
    t = text.strip()
    if t.endswith(("Z", "z")):
        t = t[:-1] + "+00:00"
    try:
        dt = datetime.fromisoformat(t)
    except ValueError:
        return None
    return datetime_ms(dt)


def datetime_ms(dt: datetime) -> int:
    """Exact ms since the epoch (no float rounding); a datetime without a zone is UTC."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return (dt - _EPOCH) // timedelta(milliseconds=1)


def start_of_day(ms: int) -> int:
    return ms - ms % DAY


def parse_time(value: object, field: str, now: int | None = None) -> int:
    """A point in time in ms epoch from ms, ISO-8601, or a relative name (its start).

    Relative names ('last_24h', 'today', '24h', '7d') mean the start of that range ending now.
    """
    current = now_ms() if now is None else now
    if isinstance(value, bool) or value is None:
        raise field_error(field, "must be a time: ms since epoch, ISO-8601 or relative "
                          "such as 'last_24h'", value=value)
    if isinstance(value, int | float):
        if value != value or value in (float("inf"), float("-inf")):
            raise field_error(field, "must be a finite number", value=str(value))
        return _bounded_time(int(value), field, value)
    if isinstance(value, str):
        text = value.strip()
        if re.fullmatch(r"-?\d+", text):
            return _bounded_time(int(text), field, value)
        if text == "now":
            return current
        rng = parse_relative_range(text, current)
        if rng is not None:
            return rng[0]
        m = _DURATION.match(text)
        if m:
            return _ago(current, m.group(1), m.group(2))
        iso = parse_iso(text)
        if iso is not None:
            return _bounded_time(iso, field, value)
    raise field_error(field, "must be a time: ms since epoch, ISO-8601 or relative such as "
                      "'last_24h', 'today', '7d'", value=value)


def parse_relative_range(text: str, now: int | None = None) -> tuple[int, int] | None:
    """'last_15m', 'today', 'yesterday' ... as [start, end) in ms; None if not relative."""
    current = now_ms() if now is None else now
    if text == "today":
        return start_of_day(current), current + 1
    if text == "yesterday":
        today = start_of_day(current)
        return today - DAY, today
    m = _RELATIVE.match(text)
    if m:
        return _ago(current, m.group(1), m.group(2)), current + 1
    return None


def parse_time_range(start: object, end: object, now: int | None = None,
                     start_field: str = "startTime", end_field: str = "endTime",
                     time_range: object = None, range_field: str = "timeRange"
                     ) -> tuple[int | None, int | None]:
    """Resolve a [start, end) pair; `time_range` ('last_7d') fills in whichever is missing.

    endTime is inclusive in the seed's examples; we treat it as inclusive by adding 1 ms.
    """
    current = now_ms() if now is None else now
    lo: int | None = None
    hi: int | None = None
    if time_range is not None:
        if not isinstance(time_range, str):
            raise field_error(range_field, "must be a string such as 'last_24h' or 'today'")
        rng = parse_relative_range(time_range.strip(), current)
        if rng is None:
            m = _DURATION.match(time_range)
            if not m:
                raise field_error(range_field, "must be relative: last_15m, last_1h, last_24h, "
                                  "last_7d, last_30d, today, yesterday", value=time_range)
            rng = (_ago(current, m.group(1), m.group(2)), current + 1)
        lo, hi = rng
    if start is not None:
        lo = parse_time(start, start_field, current)
    if end is not None:
        if isinstance(end, str) and parse_relative_range(end.strip(), current):
            hi = current + 1
        else:
            hi = parse_time(end, end_field, current) + 1
    if lo is not None and hi is not None and lo >= hi:
        raise field_error(start_field, f"must not be after {end_field}", startTime=lo,
                          endTime=hi - 1)
    return lo, hi


def iso(ms: int) -> str:
    """ISO-8601 UTC text of a ms time (clamped to years 1-9999, datetime's range)."""
    ms = min(max(ms, _FIRST_MS), MAX_TIME_MS)
    return (_EPOCH + timedelta(milliseconds=ms)).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")
