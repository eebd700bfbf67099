"""CLI tables as a person reads them (#23, finding 7), rendered into a fixed-width console:
events with SDK properties, funnel shares that add up, cohort periods still in progress,
alert ids and windows."""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest
from rich.console import Console

from rta.cli import output
from rta.cli.alerts import _render_list
from rta.cli.inspect import properties_text, render_events
from rta.cli.output import duration_text
from rta.cli.query_behaviour import _align_cohort_start, render_cohort, render_funnel

DAY = 86_400_000
T0 = 1_700_006_400_000  # a UTC midnight


@pytest.fixture
def screen() -> Iterator[io.StringIO]:
    buf = io.StringIO()
    saved = dict(output._consoles)
    output._consoles[False] = Console(file=buf, width=100, color_system=None,
                                      highlight=False)
    yield buf
    output._consoles.clear()
    output._consoles.update(saved)


def posthog_event() -> dict[str, object]:
    props = {f"$prop_{i:02d}": "x" * 20 for i in range(40)}
    props.update({"plan": "pro", "$browser": "Firefox", "amount": 3})
    return {"timestamp": T0, "type": "purchase", "userId": "u1", "sessionId": "s1",
            "properties": props}


def test_events_show_the_users_properties_first_and_count_sdk_ones(
        screen: io.StringIO) -> None:
    ev = posthog_event()
    assert properties_text(ev["properties"]) == "plan=pro, amount=3 (+41 $ properties)"  # type: ignore[arg-type]
    full = properties_text(ev["properties"], all_properties=True)  # type: ignore[arg-type]
    assert full.startswith("plan=pro, amount=3, $prop_00=") and "$browser=Firefox" in full
    render_events({"count": 1, "events": [ev], "nextCursor": None})
    lines = [line for line in screen.getvalue().splitlines() if line.strip()]
    assert len(lines) <= 6, screen.getvalue()  # title, borders, header, one row


def test_funnel_from_prev_and_drop_off_add_up_to_100(screen: io.StringIO) -> None:
    steps = [{"name": "view", "count": 3000, "overallConversionRate": 100.0,
              "conversionRate": 100.0, "dropoffRate": 0.0, "medianTimeToConvert": None},
             {"name": "buy", "count": 2000, "overallConversionRate": 66.65,
              "conversionRate": 66.65, "dropoffRate": 33.35, "medianTimeToConvert": 1000}]
    render_funnel({"order": "ordered", "countBy": "users", "totalEntered": 3000,
                   "totalCompleted": 2000, "overallConversionRate": 66.65, "steps": steps})
    row = next(line for line in screen.getvalue().splitlines() if "buy" in line)
    assert "66.7%" in row and "33.3%" in row and "33.4%" not in row


def cohort_answer(start: int, end: int, now: int) -> dict[str, object]:
    rows = []
    for i in range(3):
        begin = start + i * DAY
        pct = [100.0 if begin + n * DAY <= now else None for n in range(3)]
        rows.append({"cohort": i, "startTime": begin, "date": "2023-11-15T00:00:00.000Z",
                     "size": 10, "counts": [0, 0, 0], "percentages": [
                         p if n == 0 or p is None else 0.0 for n, p in enumerate(pct)]})
    return {"entryEvent": "signup", "retentionEvent": "login", "retentionType": "first_time",
            "criterion": "on", "periods": 2, "periodLength": DAY, "startTime": start,
            "endTime": end, "cohorts": rows,
            "average": {"size": 30, "percentages": [100.0, 0.0, 0.0]}}


def test_cohort_periods_in_progress_are_marked_not_zero(screen: io.StringIO) -> None:
    now = T0 + 2 * DAY + 3_600_000  # an hour into the third day
    render_cohort(cohort_answer(T0, now, now), now=now)
    text = screen.getvalue()
    rows = [line for line in text.splitlines() if "2023-11-15" in line]
    assert "…" not in rows[0].split("100.0%")[1].split("0.0%")[0]  # (complete period 1)
    assert rows[1].count("…") == 1 and rows[2].count("…") == 1
    assert "still in progress" in text


def test_cohort_range_starts_at_a_period_boundary() -> None:
    body = {"periodLength": "1d", "startTime": str(T0 + 5 * 3_600_000)}
    _align_cohort_start(body)
    assert body["startTime"] == T0
    body = {"periodLength": "1h", "timeRange": "last_24h"}
    _align_cohort_start(body)
    assert body["startTime"] % 3_600_000 == 0 and "timeRange" not in body
    body = {"periodLength": "1d"}
    _align_cohort_start(body)
    assert body == {"periodLength": "1d"}  # (the default grid is aligned by the daemon)


def test_alerts_list_keeps_ids_whole_and_windows_as_durations(screen: io.StringIO) -> None:
    alert_id = "al_" + "0123456789abcdef" * 2
    render = {"count": 1, "alerts": [{
        "id": alert_id, "name": "Error spike in checkout and payment services",
        "summary": "count of error over 300000 ms > 50",
        "condition": {"timeWindow": 300000}, "state": {"status": "ok", "value": 3.0},
        "notification": {"channels": ["console", "webhook"], "severity": "critical"}}]}
    _render_list(render)
    text = screen.getvalue()
    assert alert_id in text and "over 5m >" in text and "300000" not in text
    assert [duration_text(v) for v in (300_000, 3_600_000, 90_000, 1500, 86_400_000)] == [
        "5m", "1h", "90s", "1500 ms", "1d"]


def test_range_line_says_intervals_in_their_unit() -> None:
    """'every 1d', not 'every 1440m' (#23, found walking the README's tour)."""
    from rta.cli.query_analytics import _range_line

    line = _range_line({"startTime": 0, "endTime": 86_400_000, "interval": 86_400_000})
    assert "every 1d" in line and "1440m" not in line
    assert "every 5m" in _range_line({"interval": 300_000})


def test_backtest_header_says_durations(capsys: pytest.CaptureFixture[str]) -> None:
    """'over 5m' and 'every 7s', not 'over 300000 ms' and 'every 7000 ms' (#23, the walk)."""
    from rta.cli.alerts import _render_backtest

    _render_backtest({"name": "burst", "condition": "count of error over 300000 ms > 1",
                      "range": {"start": 0, "end": 86_400_000}, "evaluations": 10,
                      "stepMs": 7000, "breachingEvaluations": 0, "firings": []})
    out = capsys.readouterr().out
    assert "over 5m > 1" in out and "every 7s" in out and " ms" not in out
