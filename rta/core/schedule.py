"""Cron schedules in a time zone (croniter for the cron fields, zoneinfo for the clock).

A schedule is read in the wall-clock time of its zone, so "0 9 * * 1" is 09:00 in Berlin on
both sides of a DST change. croniter iterates naive local times; each is then placed on the
UTC timeline here, where the two DST edges need a rule (the one Vixie cron follows):

- a local time the spring change skips (02:30 on the last Sunday of March in Berlin) runs
  at the moment the gap ends (03:00 local), once;
- a local time the autumn change repeats (02:30 twice) runs once, at its first occurrence,
  unless the hour field is a wildcard or step ("*/30 * * * *", "15 * * * *"), which means
  "every hour as it passes" and so runs in both.

Pure: no clock read here; callers pass `after` (ms since epoch).

Thread rule: any thread (pure).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from rta.core.errors import field_error

MAX_SCAN = 5000  # local times examined before a schedule is declared never due (Feb 30)


def zone(name: object, field: str = "tz") -> ZoneInfo:
    """The IANA zone `name`, or a 400 naming `field`."""
    if not isinstance(name, str) or not name.strip():
        raise field_error(field, "must be an IANA time zone name such as Europe/Berlin or UTC",
                          value=name)
    try:
        return ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise field_error(field, f"unknown time zone {name!r}; use an IANA name such as "
                          "Europe/Berlin or UTC", value=name) from None


def check_cron(expr: object, field: str = "schedule") -> str:
    """A five-field cron expression, normalised to single spaces, or a 400 naming `field`."""
    if not isinstance(expr, str) or not expr.strip():
        raise field_error(field, "must be a cron expression such as '0 9 * * 1'", value=expr)
    text = " ".join(expr.split())
    if len(text.split(" ")) != 5:
        raise field_error(field, "must have five fields: minute hour day-of-month month "
                          "day-of-week", value=expr)
    if not croniter.is_valid(text):
        raise field_error(field, "is not a valid cron expression", value=expr)
    try:  # (valid syntax that never matches, such as "0 0 30 2 *", is refused too)
        next_run(text, "UTC", 0)
    except ValueError:
        raise field_error(field, "never matches a date", value=expr) from None
    return text


def _repeats_hourly(expr: str) -> bool:
    hour = expr.split(" ")[1]
    return "*" in hour


def _place(local: datetime, tz: ZoneInfo, hourly: bool) -> list[datetime]:
    """The UTC instants a naive local time stands for under the rule above."""
    first = local.replace(tzinfo=tz, fold=0)
    second = local.replace(tzinfo=tz, fold=1)
    a, b = first.astimezone(UTC), second.astimezone(UTC)
    if a == b:
        return [a]
    if a < b:  # ambiguous: the clock passed this local time twice (autumn)
        return [a, b] if hourly else [a]
    # a gap (spring): fold=0 reads it with the old offset, fold=1 with the new; the gap ends
    # at the transition, which lies between the two readings
    lo, hi = b, a
    while hi - lo > timedelta(seconds=1):
        mid = lo + (hi - lo) / 2
        if mid.astimezone(tz).utcoffset() == lo.astimezone(tz).utcoffset():
            lo = mid
        else:
            hi = mid
    return [hi.replace(microsecond=0)]


def next_run(expr: str, tz: str | ZoneInfo, after: int) -> int:
    """The first run strictly after `after` (ms since epoch), in ms since epoch.

    ValueError if the expression matches no date within MAX_SCAN candidates."""
    zone_info = tz if isinstance(tz, ZoneInfo) else ZoneInfo(tz)
    after_dt = datetime.fromtimestamp(after / 1000, UTC)
    # start a little before `after` in local time: an ambiguous local hour may place a
    # candidate before the naive start's own reading
    start = after_dt.astimezone(zone_info).replace(tzinfo=None) - timedelta(hours=3)
    hourly = _repeats_hourly(expr)
    it = croniter(expr, start)
    best: datetime | None = None
    horizon: datetime | None = None
    for _ in range(MAX_SCAN):
        local = it.get_next(datetime)
        if horizon is not None and local > horizon:
            break
        for instant in _place(local, zone_info, hourly):
            # (naive local order is not UTC order inside a repeated hour: keep the least)
            if instant > after_dt and (best is None or instant < best):
                best = instant
                horizon = best.astimezone(zone_info).replace(tzinfo=None) + timedelta(hours=3)
    if best is not None:
        return int(best.timestamp() * 1000)
    raise ValueError(f"{expr!r} matches no date")


def upcoming(expr: str, tz: str, after: int, n: int) -> list[int]:
    """The next `n` runs after `after` (ms)."""
    out: list[int] = []
    t = after
    for _ in range(n):
        t = next_run(expr, tz, t)
        out.append(t)
    return out
