"""Period numbers (`rta.core.queries.periods`) as ClickHouse expressions of a ms timestamp.

Thread rule: pure functions over their arguments; any thread.
"""

from __future__ import annotations

from rta.core.queries.periods import WEEK_SHIFT
from rta.core.queries.timeparse import DAY, WEEK


def period_sql(interval: str, ts: str = "ts") -> str:
    """Days since 1970-01-01, Monday weeks since 1969-12-29, or months since January 1970
    (UTC), as `periods.number` computes them (`ts` >= 0, as stored events are)."""
    if interval == "day":
        return f"intDiv({ts}, {DAY})"
    if interval == "week":
        return f"intDiv({ts} + {WEEK_SHIFT}, {WEEK})"
    d = f"fromUnixTimestamp64Milli({ts}, 'UTC')"
    return f"((toYear({d}) - 1970) * 12 + toMonth({d}) - 1)"
