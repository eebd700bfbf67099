"""Alerts on any metric: a funnel's conversion rate, a formula, day-N retention, unique users,
stickiness share.

An alert's condition may carry a `metric` object instead of `eventType`/`property`:

    "condition": {"type": "threshold", "operator": "lt", "threshold": 20, "timeWindow": "1d",
                  "metric": {"kind": "funnel", "steps": ["visit", "signup"], "step": "overall"},
                  "evaluateEvery": "60s"}

These metrics cannot be kept as per-bucket counters (a conversion rate or a distinct count of
a window is not the sum of its buckets), so they are evaluated by running the typed query
(`queries/behaviour.py`, `formula_query.py`, `analytics.py`) over the trailing window
[now - timeWindow, now) every `evaluateEvery` (default 60 s), in a worker thread, one metric
at a time: never on the ingest path. Count-based rules keep their incremental rings
(`alerts.py`). The value feeds the same threshold and anomaly conditions, `for`, cooldown,
history and notifications (`AlertEvaluator.apply`).

Anomaly baselines are the `baselineWindows` windows before the current one, aligned to
multiples of timeWindow (window k ends at floor((now - W) / W) * W - (k - 1) * W), so each is
computed once, when it first appears, and remembered; windows that start before the store's
first event are no data. Backtests (`POST /alerts/{id}/test`) evaluate the same windows at
every `evaluateEvery` step of the range (at most MAX_BACKTEST_POINTS points).

Metric kinds are registered in `METRICS` (`register`): a kind validates its JSON, computes
its value for a window and says whether it is a count (anomaly scales then get the Poisson
floor). A new query adds a kind with one `register(...)` call.

Thread rule: `validate_metric` anywhere (pure); `MetricKind.value`, `window_value` and
`backtest` in a worker thread; `run_metric_rules` on the event loop, in the evaluator's
nursery.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import trio

from rta.core.errors import RtaError, ValidationError, field_error
from rta.core.queries import analytics, behaviour
from rta.core.queries import formula_query as fq
from rta.core.queries.analytics_results import UniqueUsersResult
from rta.core.queries.backend import QueryContext
from rta.core.queries.behaviour_results import CohortResult, FunnelResult
from rta.core.queries.behaviour_specs import CohortQuery, FunnelQuery, parse_cohort, parse_funnel
from rta.core.queries.filters import Group, Predicate
from rta.core.queries.stickiness_results import StickinessResult
from rta.core.queries.stickiness_specs import StickinessQuery, parse_stickiness
from rta.core.queries.timeparse import DAY, SECOND, parse_duration

if TYPE_CHECKING:
    from rta.core.alerts import AlertEvaluator, BacktestResult, Rule

log = logging.getLogger("rta.alerts")

DEFAULT_EVERY_MS = 60 * SECOND
MIN_EVERY_MS = SECOND
MAX_EVERY_MS = DAY
MAX_BACKTEST_POINTS = 200
TICK_S = 0.25  # how often the runner looks for metric rules that are due
RANGE_KEYS = ("startTime", "endTime", "timeRange")


class MetricKind(Protocol):
    """One kind of alert metric (see the module docstring)."""

    name: str
    counts: bool  # a count of things (users): anomaly scales get the Poisson floor

    def validate(self, body: dict[str, Any], path: str, window_ms: int) -> dict[str, Any]:
        """The stored form of the metric (without `kind`); 400s name fields under `path`."""

    def value(self, body: dict[str, Any], ctx: QueryContext, start: int, end: int
              ) -> float | None:
        """The metric over events in [start, end) (None: undefined, e.g. nobody entered)."""

    def describe(self, body: dict[str, Any]) -> str:
        """A short human description for summaries and notifications."""


METRICS: dict[str, MetricKind] = {}


def register(kind: MetricKind) -> None:
    """Make a metric kind available to alerts (`condition.metric.kind`)."""
    METRICS[kind.name] = kind


class prefixed:
    """Re-root the field paths of validation errors raised inside under `path.`."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: object, exc: BaseException | None, tb: object) -> None:
        if not isinstance(exc, ValidationError):
            return
        first = exc.details[0].get("field") if exc.details else None
        for d in exc.details:
            if isinstance(d, dict) and isinstance(d.get("field"), str):
                f = d["field"]
                d["field"] = f"{self.path}.{f}" if f and f != "body" else self.path
        if isinstance(first, str) and exc.message.startswith(f"{first}:"):
            exc.message = f"{self.path}.{exc.message}"
            exc.args = (exc.message,)


def _no_range(body: dict[str, Any], path: str) -> None:
    for key in RANGE_KEYS:
        if key in body:
            raise field_error(f"{path}.{key}", "is set by the alert: the metric is evaluated "
                              "over condition.timeWindow, ending now")


def _only_keys(body: dict[str, Any], path: str, keys: tuple[str, ...]) -> None:
    """The kinds whose query parser takes more keys than an alert allows name the first
    key outside `keys`."""
    for key in body:
        if key not in keys:
            raise field_error(f"{path}.{key}", "unknown parameter", allowed=list(keys))


# -- the kinds --------------------------------------------------------------------------------

def _step_index(value: Any, names: list[str], path: str) -> int | None:
    """None for the overall rate, else the step's index (1 .. n-1)."""
    if value is None or value == "overall":
        return None
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value < len(names):
        return value
    if isinstance(value, str) and value in names and names.index(value) >= 1:
        return names.index(value)
    raise field_error(path, f"must be 'overall', a step index 1..{len(names) - 1} or the name "
                      "of a step after the first (" + ", ".join(map(repr, names)) + ")",
                      value=value, allowed=["overall", *names[1:]])


class FunnelConversion:
    """`{"kind": "funnel", <a /queries/funnel body without its range>, "step": "overall" |
    k | name}`: the overall conversion rate (percent), or step k's rate from step k-1, over
    entries in the window; undefined when nobody entered."""

    name = "funnel"
    counts = False

    def validate(self, body: dict[str, Any], path: str, window_ms: int) -> dict[str, Any]:
        _no_range(body, path)
        spec = {k: v for k, v in body.items() if k != "step"}
        with prefixed(path):
            q = parse_funnel(spec, 0)
        names = [s.name for s in q.steps]
        if len(set(names)) != len(names) and isinstance(body.get("step"), str):
            raise field_error(f"{path}.step", "names a step twice: use its index")
        _step_index(body.get("step"), names, f"{path}.step")
        if q.breakdown is not None:
            raise field_error(f"{path}.breakdown", "is not used by an alert: alert on one "
                              "funnel (filter it with where)")
        return dict(body)

    def query(self, body: dict[str, Any], start: int, end: int) -> FunnelQuery:
        """Entries in [start, end), and only events before `end` (a funnel otherwise
        follows its entries past its range, which would let a backtest see the future)."""
        q = parse_funnel({k: v for k, v in body.items() if k != "step"}, end)
        before: Group = Group("and", (Predicate("timestamp", "lt", end),))
        where = before if q.where is None else Group("and", (q.where, before))
        return dataclasses.replace(q, start=start, end=end, where=where)

    def value(self, body: dict[str, Any], ctx: QueryContext, start: int, end: int
              ) -> float | None:
        q = self.query(body, start, end)
        result = behaviour.execute(q, ctx)
        assert isinstance(result, FunnelResult)
        summary = result.summary
        step = _step_index(body.get("step"), [s.name for s in q.steps], "step")
        if step is None:
            return None if summary.total_entered == 0 else summary.overall_conversion_rate
        if summary.steps[step - 1].count == 0:
            return None
        return summary.steps[step].conversion_rate

    def describe(self, body: dict[str, Any]) -> str:
        steps = [s if isinstance(s, str) else s.get("name", s.get("eventType", "?"))
                 for s in body.get("steps", []) if isinstance(s, str | dict)]
        step = body.get("step", "overall")
        what = "conversion" if step in (None, "overall") else f"conversion to {step}"
        return f"funnel {' > '.join(map(str, steps))} {what} (%)"


class FormulaMetric:
    """`{"kind": "formula", "series": [...], "formula": "A / B * 100"}`: the formula over the
    series' totals for the window (a formula's `total`)."""

    name = "formula"
    counts = False

    def validate(self, body: dict[str, Any], path: str, window_ms: int) -> dict[str, Any]:
        _no_range(body, path)
        for key in ("interval", "tzOffset"):
            if key in body:
                raise field_error(f"{path}.{key}", "is not used by an alert (it watches the "
                                  "formula's total over the window)")
        if not isinstance(body.get("formula"), str):
            raise field_error(f"{path}.formula", "is required: an expression over the series")
        with prefixed(path):
            fq.parse_formula_query(body, 0)
        return dict(body)

    def value(self, body: dict[str, Any], ctx: QueryContext, start: int, end: int
              ) -> float | None:
        q = fq.parse_formula_query(body, end)
        span = end - start
        return fq.execute(fq.shifted(q, start, end, span), ctx).total

    def describe(self, body: dict[str, Any]) -> str:
        return f"formula {body.get('formula')}"


class RetentionMetric:
    """`{"kind": "retention", "entryEvent", "retentionEvent", "day": N, "periodLength":
    "1d", ...}`: percent of the users who entered in the window (cohorts of periodLength)
    and came back in period N, over the cohorts whose period N has ended (the weighted
    average of completed cohorts); undefined when none has."""

    name = "retention"
    counts = False

    def validate(self, body: dict[str, Any], path: str, window_ms: int) -> dict[str, Any]:
        _no_range(body, path)
        day = body.get("day", 1)
        if isinstance(day, bool) or not isinstance(day, int) or not 1 <= day <= 365:
            raise field_error(f"{path}.day", "must be an integer from 1 to 365", value=day)
        if "periods" in body:
            raise field_error(f"{path}.periods", "is set by day (the periods up to day N)")
        with prefixed(path):
            q = self.query(body, 0, window_ms)
        if window_ms <= (day + 1) * q.length:
            raise field_error("condition.timeWindow", f"must be longer than (day + 1) x "
                              f"periodLength ({(day + 1) * q.length} ms), so that some cohort "
                              "in the window has completed its day N", value=window_ms)
        return dict(body)

    def query(self, body: dict[str, Any], start: int, end: int) -> CohortQuery:
        spec = {k: v for k, v in body.items() if k != "day"}
        spec.update(periods=body.get("day", 1) + 1, startTime=start, endTime=end - 1)
        return parse_cohort(spec, end)

    def value(self, body: dict[str, Any], ctx: QueryContext, start: int, end: int
              ) -> float | None:
        q = self.query(body, start, end)
        result = behaviour.execute(q, ctx)
        assert isinstance(result, CohortResult)
        n = body.get("day", 1)
        size = kept = 0
        for row in result.cohorts:
            if row.start_time + (n + 1) * q.length <= end and row.counts[n] is not None:
                size += row.size
                kept += int(row.counts[n] or 0)
        return None if size == 0 else 100.0 * kept / size

    def describe(self, body: dict[str, Any]) -> str:
        return (f"day-{body.get('day', 1)} retention of {body.get('entryEvent')} -> "
                f"{body.get('retentionEvent', body.get('entryEvent'))} (%)")


class UniqueUsersMetric:
    """`{"kind": "unique_users", "eventType", "where"}`: distinct users in the window
    (exact)."""

    name = "unique_users"
    counts = True
    keys = ("eventType", "type", "where", "filters", "userId", "segment", "operator")

    def validate(self, body: dict[str, Any], path: str, window_ms: int) -> dict[str, Any]:
        _no_range(body, path)
        _only_keys(body, path, self.keys)
        with prefixed(path):
            analytics.parse("unique-users", body, 0)
        return dict(body)

    def value(self, body: dict[str, Any], ctx: QueryContext, start: int, end: int
              ) -> float | None:
        q = analytics.parse("unique-users", {**body, "startTime": start, "endTime": end - 1},
                            end)
        result = analytics.execute(q, ctx)
        assert isinstance(result, UniqueUsersResult)
        return float(result.unique_users)

    def describe(self, body: dict[str, Any]) -> str:
        return f"unique users of {body.get('eventType', body.get('type')) or '*'}"


class StickinessShare:
    """`{"kind": "stickiness", "eventType", "where", "interval": "day" | "week",
    "minPeriods": k, "segment"}`: percent of the users who did the event in the window that
    did it in at least k distinct calendar periods (UTC days or Monday weeks) of the window
    (a stickiness answer's cumulativePercentage at k, counting only events inside the window,
    so the partial periods at its edges count for what they hold); undefined when nobody
    did it."""

    name = "stickiness"
    counts = False
    keys = ("eventType", "event", "where", "filters", "interval", "minPeriods", "segment",
            "name")

    def validate(self, body: dict[str, Any], path: str, window_ms: int) -> dict[str, Any]:
        _no_range(body, path)
        _only_keys(body, path, self.keys)
        with prefixed(path):
            q = self.query(body, 0, window_ms)
        k = body.get("minPeriods", 2)
        most = self.max_periods(q.grid.interval, window_ms)
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= most:
            raise field_error(f"{path}.minPeriods", f"must be an integer from 1 to {most} (the "
                              f"{q.grid.interval}s a {window_ms} ms window can touch)",
                              value=k)
        return dict(body)

    @staticmethod
    def max_periods(interval: str, window_ms: int) -> int:
        """Periods a window of this length can overlap (one more than it spans when it
        does not start on a period boundary)."""
        length = DAY if interval == "day" else 7 * DAY
        return -(-window_ms // length) + 1

    def query(self, body: dict[str, Any], start: int, end: int) -> StickinessQuery:
        spec = {k: v for k, v in body.items() if k != "minPeriods"}
        q = parse_stickiness({**spec, "startTime": start, "endTime": end - 1}, end)
        inside: Group = Group("and", (Predicate("timestamp", "gte", start),
                                      Predicate("timestamp", "lt", end)))
        where = inside if q.flt.where is None else Group("and", (q.flt.where, inside))
        return dataclasses.replace(q, flt=dataclasses.replace(q.flt, where=where))

    def value(self, body: dict[str, Any], ctx: QueryContext, start: int, end: int
              ) -> float | None:
        result = behaviour.execute(self.query(body, start, end), ctx)
        assert isinstance(result, StickinessResult)
        if result.total_users == 0:
            return None
        k = body.get("minPeriods", 2)
        rows = [r for r in result.rows if r.periods == k]
        return rows[0].cumulative_percentage if rows else 0.0

    def describe(self, body: dict[str, Any]) -> str:
        return (f"share of {body.get('eventType', body.get('event'))} users active on "
                f">= {body.get('minPeriods', 2)} {body.get('interval', 'day')}s (%)")


for _kind in (FunnelConversion(), FormulaMetric(), RetentionMetric(), UniqueUsersMetric(),
              StickinessShare()):
    register(_kind)


# -- validation -------------------------------------------------------------------------------

def validate_metric(metric: Any, window_ms: int, path: str = "condition.metric"
                    ) -> dict[str, Any]:
    """The stored form of `condition.metric`; 400 naming the field otherwise."""
    if not isinstance(metric, dict):
        raise field_error(path, "must be an object with a kind: " + ", ".join(METRICS))
    kind = metric.get("kind")
    if kind not in METRICS:
        raise field_error(f"{path}.kind", "must be one of " + ", ".join(METRICS), value=kind,
                          allowed=list(METRICS))
    body = {k: v for k, v in metric.items() if k != "kind"}
    return {"kind": kind, **METRICS[kind].validate(body, path, window_ms)}


def evaluate_every(cond: dict[str, Any]) -> int:
    """`condition.evaluateEvery` in ms (default 60 s, 1 s to 1 day)."""
    raw = cond.get("evaluateEvery", DEFAULT_EVERY_MS)
    every = parse_duration(raw, "condition.evaluateEvery")
    if not MIN_EVERY_MS <= every <= MAX_EVERY_MS:
        raise field_error("condition.evaluateEvery", "must be between 1 s and 1 day",
                          value=every)
    return every


# counter fields and the values they are stored with when a metric replaces them (a stored
# rule read back and PUT or PATCHed carries them)
COUNTER_DEFAULTS: dict[str, tuple[Any, ...]] = {
    "eventType": (None, "*"), "property": (None, "count"), "aggregation": (None, "count"),
    "aggregate": (None, "count"), "filters": (None,), "where": (None,)}


def validate_condition(cond: dict[str, Any], window_ms: int) -> dict[str, Any]:
    """What `condition.metric` adds to a stored condition: the metric and `evaluateEvery`.
    A metric replaces the counter fields, so giving both is refused (naming the field)."""
    for key, defaults in COUNTER_DEFAULTS.items():
        if key in cond and cond[key] not in defaults:
            raise field_error(f"condition.{key}", "is not used with condition.metric: put "
                              "the metric's event types and filters inside it")
    return {"metric": validate_metric(cond["metric"], window_ms),
            "evaluateEvery": evaluate_every(cond)}


def describe_rule(rule: Rule) -> str:
    """A metric rule's one-line summary (as `Rule.describe` gives for counter rules)."""
    from rta.core.alerts import OPERATOR_SYMBOLS

    assert rule.metric is not None
    what = describe(rule.metric)
    if rule.kind == "threshold":
        sym = OPERATOR_SYMBOLS.get(rule.operator or "", rule.operator)
        return f"{what} over {rule.window_ms} ms {sym} {rule.threshold:g}"
    return (f"{what} over {rule.window_ms} ms anomalous (z >= {rule.sensitivity:g}, "
            f"{rule.direction})")


def describe(metric: dict[str, Any]) -> str:
    kind = METRICS.get(metric.get("kind", ""))
    body = {k: v for k, v in metric.items() if k != "kind"}
    return kind.describe(body) if kind is not None else str(metric.get("kind"))


# -- evaluation -------------------------------------------------------------------------------

def window_value(rule: Rule, ctx: QueryContext, end: int) -> float:
    """The rule's metric over [end - timeWindow, end); NaN when undefined."""
    assert rule.metric is not None
    kind = METRICS[rule.metric["kind"]]
    body = {k: v for k, v in rule.metric.items() if k != "kind"}
    value = kind.value(body, ctx, end - rule.window_ms, end)
    return math.nan if value is None or not math.isfinite(value) else float(value)


def baseline_ends(rule: Rule, now: int) -> np.ndarray:
    """Ends of the baseline windows: aligned to multiples of the window, all before the
    current window starts, most recent first."""
    w = rule.window_ms
    last = (now - w) // w * w
    return last - w * np.arange(rule.baseline_windows, dtype=np.int64)


@dataclass
class Baselines:
    """Values of aligned baseline windows, computed once each (window end -> value)."""

    values: dict[int, float] = dataclasses.field(default_factory=dict)

    def get(self, rule: Rule, ctx: QueryContext, ends: np.ndarray, since: int | None
            ) -> np.ndarray:
        out = np.full(len(ends), np.nan)
        for i, end in enumerate(ends.tolist()):
            if since is not None and end - rule.window_ms < since:
                continue  # before the store's first event: no data, not zero
            if end not in self.values:
                self.values[end] = window_value(rule, ctx, end)
            out[i] = self.values[end]
        keep = set(ends.tolist())
        for end in [e for e in self.values if e not in keep]:
            del self.values[end]
        return out


def _since(ctx: QueryContext) -> int | None:
    bounds = ctx.backend.time_bounds()
    return None if bounds is None else bounds[0]


def evaluate(rule: Rule, ctx: QueryContext, now: int, baselines: Baselines
             ) -> dict[str, Any]:
    """The condition for the window ending `now` (the same dict `alerts.evaluate_point`
    returns: value, breach, and the anomaly's zScore, baseline, scale, baselinePoints)."""
    from rta.core.alerts import COMPARATORS, _anomaly

    value = window_value(rule, ctx, now)
    if rule.kind == "threshold":
        breach = not math.isnan(value) and COMPARATORS[rule.operator or "gt"](
            value, float(rule.threshold or 0.0))
        return {"value": None if math.isnan(value) else value, "breach": breach}
    base = baselines.get(rule, ctx, baseline_ends(rule, now), _since(ctx))
    return _anomaly(_as_counted(rule), value, base)


def _as_counted(rule: Rule) -> Rule:
    """The rule as `alerts._anomaly` reads it: a count when the metric counts things."""
    assert rule.metric is not None
    counts = METRICS[rule.metric["kind"]].counts
    return dataclasses.replace(rule, aggregation="count" if counts else "avg")


def backtest(rule: Rule, ctx: QueryContext, start: int, end: int) -> BacktestResult:
    """When the rule would have fired in [start, end): the live evaluation at every
    `evaluateEvery` step (coarser when that gives more than MAX_BACKTEST_POINTS points),
    then `for` and cooldown replayed over the runs of breaching points."""
    from rta.core.alerts import BacktestResult, _replay

    every = rule.evaluate_every_ms
    step = max(every, -(-(end - start) // MAX_BACKTEST_POINTS // every) * every)
    times = np.arange(start - start % step + step, end + 1, step, dtype=np.int64)
    if not len(times):
        times = np.array([end], dtype=np.int64)
    baselines = Baselines()
    vals = np.full(len(times), np.nan)
    breach = np.zeros(len(times), dtype=bool)
    zs = np.full(len(times), np.nan)
    for i, t in enumerate(times.tolist()):
        res = evaluate(rule, ctx, t, baselines)
        vals[i] = np.nan if res["value"] is None else res["value"]
        breach[i] = bool(res["breach"])
        if "zScore" in res:
            zs[i] = res["zScore"]
    extra = {} if rule.kind == "threshold" else {"zScore": zs}
    firings = _replay(rule, times, breach, vals, extra)
    return BacktestResult(rule.id, rule.name, rule.describe(), start, end, every, step,
                          len(times), int(breach.sum()), tuple(firings))


# -- the runner -------------------------------------------------------------------------------



async def run_metric_rules(evaluator: AlertEvaluator,
                           context: Callable[[int], QueryContext] | None = None) -> None:
    """Evaluate every enabled metric rule when it is due (its `evaluateEvery` since the last
    run), one at a time in a worker thread, and apply the outcome on the event loop. Only
    the lease holder evaluates (as for counter rules)."""
    from rta.core import query_services
    from rta.core.alerts import now_ms

    make = context or (lambda now: query_services.context(evaluator.engine, now))
    last: dict[str, int] = {}
    baselines: dict[str, tuple[Any, Baselines]] = {}  # rule id -> (its state, baselines)
    limiter = trio.CapacityLimiter(1)
    while True:
        await trio.sleep(TICK_S)
        if evaluator.lease is not None and not evaluator.lease.held:
            continue
        for rule_id, state in list(evaluator.states.items()):
            rule = state.rule
            if rule.metric is None or not rule.enabled:
                continue
            now = now_ms()
            if now - last.get(rule_id, -rule.evaluate_every_ms) < rule.evaluate_every_ms:
                continue
            last[rule_id] = now
            kept = baselines.get(rule_id)
            if kept is None or kept[0] is not state:  # (a changed rule: new baselines)
                kept = baselines[rule_id] = (state, Baselines())
            base = kept[1]
            started = time.monotonic()
            try:
                ctx = make(now)
                result = await trio.to_thread.run_sync(evaluate, rule, ctx, now, base,
                                                       limiter=limiter)
            except RtaError as exc:
                log.warning("alert %s metric not evaluated: %s", rule_id, exc.message)
                continue
            except Exception:
                log.exception("alert %s metric could not be evaluated", rule_id)
                continue
            if evaluator.states.get(rule_id) is state:  # (not replaced meanwhile)
                evaluator.apply(state, now, result)
                state.last_detail = {**state.last_detail,
                                     "evaluationMs": round((time.monotonic() - started) * 1000,
                                                           1)}
        for gone in set(last) - set(evaluator.states):
            last.pop(gone, None)
            baselines.pop(gone, None)
