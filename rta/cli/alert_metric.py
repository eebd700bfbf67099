"""`rta alerts create --metric KIND ...`: the `condition.metric` of a metric alert from flags.

    rta alerts create -n conv --metric funnel --step visit --step signup --operator lt \
        --threshold 20 --window 1d
    rta alerts create -n ratio --metric formula --series A=purchase --series B=signup \
        --formula 'A / B' --threshold 0.5 --operator lt --window 1d
    rta alerts create -n d1 --metric retention --entry signup --return open --day 1 \
        --window 7d --threshold 30 --operator lt
    rta alerts create -n dau --metric unique_users -t pageview --anomaly --window 1h
    rta alerts create -n sticky --metric stickiness -t open --min-periods 3 --window 7d \
        --threshold 40 --operator lt

Only the shape is built here (a flag of another kind, or a kind's required flag missing, is
a usage error before any request); the daemon validates the rest and its 400 names the
field. Kinds mirror `rta.core.alert_metrics.METRICS` (kept equal by the CLI conventions
test; repeated here so `--help` does not import the core).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ALERT_METRICS = ("funnel", "formula", "retention", "unique_users", "stickiness")
STICKINESS_INTERVALS = ("day", "week")
# which metric flags each kind takes (flag -> kind names), for usage errors
FLAG_KINDS: dict[str, tuple[str, ...]] = {
    "--step": ("funnel",), "--conversion-step": ("funnel",), "--time-limit": ("funnel",),
    "--series": ("formula",), "--formula": ("formula",),
    "--entry": ("retention",), "--return": ("retention",), "--day": ("retention",),
    "--period": ("retention",),
    "--min-periods": ("stickiness",), "--interval": ("stickiness",),
}


@dataclass
class MetricFlags:
    """The metric flags of `rta alerts create` as given (None: not given)."""

    kind: str | None = None
    event_type: str | None = None
    where: list[dict[str, Any]] = field(default_factory=list)
    steps: list[str] = field(default_factory=list)
    conversion_step: str | None = None
    time_limit: str | None = None
    series: list[str] = field(default_factory=list)
    formula: str | None = None
    entry: str | None = None
    returning: str | None = None
    day: int | None = None
    period: str | None = None
    min_periods: int | None = None
    interval: str | None = None

    def given(self) -> list[str]:
        """The kind-specific flags that were given."""
        values = {"--step": self.steps, "--conversion-step": self.conversion_step,
                  "--time-limit": self.time_limit, "--series": self.series,
                  "--formula": self.formula, "--entry": self.entry,
                  "--return": self.returning, "--day": self.day, "--period": self.period,
                  "--min-periods": self.min_periods, "--interval": self.interval}
        return [flag for flag, v in values.items() if v not in (None, [])]


class MetricUsage(ValueError):
    """A usage error in the metric flags (the message names the flag)."""


def _step(value: str) -> str | int:
    return int(value) if value.isdigit() else value


def build_metric(flags: MetricFlags, base: dict[str, Any] | None) -> dict[str, Any] | None:
    """The `condition.metric` the flags describe, over `base` (a metric from --file), or
    None when no metric flag was given."""
    kind = flags.kind or (base or {}).get("kind")
    given = flags.given()
    if kind is None:
        if given:
            raise MetricUsage(f"{given[0]} needs --metric ({', '.join(FLAG_KINDS[given[0]])})")
        return None
    if kind not in ALERT_METRICS:
        raise MetricUsage(f"--metric must be one of {', '.join(ALERT_METRICS)} (got {kind!r})")
    for flag in given:
        if kind not in FLAG_KINDS[flag]:
            raise MetricUsage(f"{flag} is not used by --metric {kind} "
                              f"(it belongs to {', '.join(FLAG_KINDS[flag])})")
    if flags.event_type is not None and kind not in ("unique_users", "stickiness"):
        raise MetricUsage(f"--event-type is not used by --metric {kind} (give "
                          + {"funnel": "--step", "formula": "--series",
                             "retention": "--entry"}[kind] + ")")
    same = base is not None and base.get("kind") == kind
    metric: dict[str, Any] = dict(base) if same and base else {}
    metric["kind"] = kind
    where_key = "where"
    if kind == "funnel":
        if flags.steps:
            metric["steps"] = list(flags.steps)
        if len(metric.get("steps") or []) < 2:
            raise MetricUsage("--metric funnel needs two or more --step")
        if flags.conversion_step is not None:
            metric["step"] = _step(flags.conversion_step)
        if flags.time_limit is not None:
            metric["timeLimit"] = flags.time_limit
    elif kind == "formula":
        from rta.cli.query_formula import parse_series

        if flags.series:
            metric["series"] = parse_series(flags.series)
        if flags.formula is not None:
            metric["formula"] = flags.formula
        if not metric.get("series") or not metric.get("formula"):
            raise MetricUsage("--metric formula needs --series (one or more) and --formula")
        where_key = ""
    elif kind == "retention":
        where_key = "entryFilters"  # (the entry event's filters, as `--entry-where`)
        for key, value in (("entryEvent", flags.entry), ("retentionEvent", flags.returning),
                           ("day", flags.day), ("periodLength", flags.period)):
            if value is not None:
                metric[key] = value
        if not metric.get("entryEvent"):
            raise MetricUsage("--metric retention needs --entry")
    else:  # unique_users, stickiness
        if flags.event_type is not None:
            metric["eventType"] = flags.event_type
        if kind == "stickiness":
            if flags.min_periods is not None:
                metric["minPeriods"] = flags.min_periods
            if flags.interval is not None:
                metric["interval"] = flags.interval
            if not metric.get("eventType"):
                raise MetricUsage("--metric stickiness needs --event-type")
    if flags.where:
        if not where_key:
            raise MetricUsage("--where is not used by --metric formula: filter each series "
                              "(--series 'A=type;key=value')")
        metric[where_key] = flags.where
    return metric
