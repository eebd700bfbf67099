"""Cron schedules in a time zone: both DST transitions of Europe/Berlin, checked against
explicit expectations and against an independent minute-by-minute scan of the UTC timeline."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rta.core.errors import ValidationError
from rta.core.schedule import check_cron, next_run, upcoming, zone

BERLIN = ZoneInfo("Europe/Berlin")


def ms(*parts: int, tz: ZoneInfo = BERLIN, fold: int = 0) -> int:
    return int(datetime(*parts, tzinfo=tz, fold=fold).timestamp() * 1000)  # type: ignore[misc]


def local(t: int, tz: ZoneInfo = BERLIN) -> str:
    return datetime.fromtimestamp(t / 1000, tz).isoformat()


def test_weekly_report_keeps_local_time_across_both_changes() -> None:
    spring = upcoming("0 9 * * 1", "Europe/Berlin", ms(2026, 3, 20), 3)
    assert [local(t) for t in spring] == ["2026-03-23T09:00:00+01:00",
                                          "2026-03-30T09:00:00+02:00",
                                          "2026-04-06T09:00:00+02:00"]
    # a week across the change is 167 hours of real time, not 168
    assert spring[1] - spring[0] == (7 * 24 - 1) * 3_600_000
    autumn = upcoming("0 9 * * 1", "Europe/Berlin", ms(2026, 10, 20), 2)
    assert [local(t) for t in autumn] == ["2026-10-26T09:00:00+01:00",
                                          "2026-11-02T09:00:00+01:00"]
    before = next_run("0 9 * * 1", "Europe/Berlin", ms(2026, 10, 13))
    assert autumn[0] - before == (7 * 24 + 1) * 3_600_000


def test_time_skipped_in_spring_runs_once_when_the_gap_ends() -> None:
    runs = upcoming("30 2 * * *", "Europe/Berlin", ms(2026, 3, 28, 12), 3)
    assert [local(t) for t in runs] == ["2026-03-29T03:00:00+02:00",
                                        "2026-03-30T02:30:00+02:00",
                                        "2026-03-31T02:30:00+02:00"]
    assert runs[0] == int(datetime(2026, 3, 29, 1, tzinfo=UTC).timestamp() * 1000)


def test_time_repeated_in_autumn_runs_once_for_a_fixed_hour() -> None:
    runs = upcoming("30 2 * * *", "Europe/Berlin", ms(2026, 10, 24, 12), 3)
    assert [local(t) for t in runs] == ["2026-10-25T02:30:00+02:00",
                                        "2026-10-26T02:30:00+01:00",
                                        "2026-10-27T02:30:00+01:00"]


def test_hourly_schedules_run_in_both_passes_of_the_repeated_hour() -> None:
    runs = upcoming("*/30 * * * *", "Europe/Berlin", ms(2026, 10, 25, 1, 10), 6)
    assert [datetime.fromtimestamp(t / 1000, UTC).strftime("%H:%M") for t in runs] == \
        ["23:30", "00:00", "00:30", "01:00", "01:30", "02:00"]  # every 30 real minutes
    assert all(b - a == 1_800_000 for a, b in itertools.pairwise(runs))


# -- an independent reference: scan every UTC minute, read its local wall time ----------------


def _field(spec: str, lo: int, hi: int) -> set[int]:
    out: set[int] = set()
    for part in spec.split(","):
        base, _, step = part.partition("/")
        if base == "*":
            a, b = lo, hi
        elif "-" in base:
            a, b = (int(x) for x in base.split("-"))
        else:
            a = b = int(base)
            if step:
                b = hi
        out.update(range(a, b + 1, int(step or 1)))
    return out


def reference_runs(expr: str, tz: ZoneInfo, start: datetime, minutes: int) -> list[int]:
    """Every UTC minute whose local wall time matches the cron fields, under the rule of
    rta.core.schedule: a fixed-hour time in a repeated hour runs at its first pass, a time
    in a skipped hour at the end of the gap."""
    m, h, dom, mon, dow = expr.split()
    mins, hours = _field(m, 0, 59), _field(h, 0, 23)
    doms, mons = _field(dom, 1, 31), _field(mon, 1, 12)
    dows = {d % 7 for d in _field(dow, 0, 7)}
    hourly = "*" in h

    def matches(wall: datetime) -> bool:
        day_ok = wall.day in doms
        dow_ok = (wall.isoweekday() % 7) in dows
        # (cron: with both day fields restricted, either may match)
        date_ok = (day_ok or dow_ok) if dom != "*" and dow != "*" else (day_ok and dow_ok)
        return wall.minute in mins and wall.hour in hours and wall.month in mons and date_ok

    out = []
    for i in range(minutes):
        instant = start + timedelta(minutes=i)
        wall = instant.astimezone(tz)
        naive = wall.replace(tzinfo=None)
        if matches(naive) and (hourly or wall.fold == 0 or
                               naive.replace(tzinfo=tz, fold=0).utcoffset() ==
                               naive.replace(tzinfo=tz, fold=1).utcoffset()):
            out.append(int(instant.timestamp() * 1000))
        previous = (instant - timedelta(minutes=1)).astimezone(tz).replace(tzinfo=None)
        if naive - previous > timedelta(minutes=1):  # the clock jumped: the skipped times
            skipped = [previous + timedelta(minutes=k) for k in
                       range(1, int((naive - previous).total_seconds() // 60))]
            if any(matches(s) for s in skipped) and not matches(naive):
                out.append(int(instant.timestamp() * 1000))
    return out


EXPRESSIONS = ["30 2 * * *", "0 9 * * 1", "*/20 * * * *", "15 1-3 * * *", "0 */2 * * 0",
               "45 2 25-31 3,10 *", "0 0 1 * *", "5,35 2 * * 6,0"]


@settings(max_examples=25, deadline=None)
@given(expr=st.sampled_from(EXPRESSIONS),
       tz=st.sampled_from(["Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "UTC"]),
       edge=st.sampled_from([(2026, 3, 27), (2026, 10, 23), (2026, 3, 6), (2026, 10, 2),
                             (2026, 11, 30)]))
def test_runs_match_a_minute_by_minute_scan(expr: str, tz: str,
                                            edge: tuple[int, int, int]) -> None:
    start = datetime(*edge, tzinfo=UTC)
    minutes = 3 * 24 * 60
    expected = reference_runs(expr, ZoneInfo(tz), start, minutes)
    end = int((start + timedelta(minutes=minutes)).timestamp() * 1000)
    got: list[int] = []
    t = int(start.timestamp() * 1000) - 1
    while True:
        t = next_run(expr, tz, t)
        if t >= end:
            break
        got.append(t)
    assert got == expected


@pytest.mark.parametrize(("expr", "message"), [
    ("0 9 * *", "five fields"), ("61 * * * *", "not a valid"), ("a b c d e", "not a valid"),
    ("0 0 30 2 *", "never matches"), ("", "cron expression"), ("0 9 * * 1 2", "five fields")])
def test_invalid_cron_names_the_field(expr: str, message: str) -> None:
    with pytest.raises(ValidationError) as err:
        check_cron(expr)
    assert err.value.details[0]["field"] == "schedule"
    assert message in err.value.message


@pytest.mark.parametrize("name", ["Mars/Olympus", "", "../etc/passwd", 42, "Europe/"])
def test_unknown_time_zone_names_the_field(name: object) -> None:
    with pytest.raises(ValidationError) as err:
        zone(name)
    assert err.value.details[0]["field"] == "tz"
