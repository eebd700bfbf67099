"""Alerts: threshold and anomaly rules evaluated from incrementally maintained counters.

A rule aggregates the events of one type (plus optional filters) over a trailing window
(to the bucket: the current bucket and those before it that make up `timeWindow`, so the
oldest up to one bucket of the window is left out; notifications carry the exact range):
`count`, or `sum|avg|min|max|p95` of a numeric property. Each rule keeps a ring of time
buckets (1 s for windows up to 10 minutes, coarser above so a ring holds at most ~600 buckets
per window) fed by `Engine.on_ingest`: evaluation every `alert_interval_ms` reads a few
hundred buckets, never the stored events. Buckets are keyed by event time, so the live
evaluator and the backtest over stored data (`backtest`) compute the same values. Rings are
primed from the store when a rule is loaded, so a restart does not forget the window.

threshold: fire while `value <op> threshold`.
anomaly:   fire while the robust z-score of the current window against the previous
           `baselineWindows` (default 24) windows, (x - median) / scale, is at least
           `sensitivity` (default 3.0) in the watched `direction` (both|up|down), once at
           least `minBaselinePoints` baseline windows have data. scale is the larger of
           1.4826 * MAD and 1.2533 * the mean absolute deviation from the median (MAD alone
           swings by +-30% on a couple of dozen points, which turns noise into "anomalies"),
           and, for counts, at least sqrt(max(median, 1)) (Poisson noise: one event where
           there were none is not an anomaly, three are). If the scale is 0 (a flat
           baseline of values), any change is an anomaly. Baseline windows before the
           rule's first event in the horizon are no data, not zeros: a metric is anomalous
           against its own history, and a type seen for the first time has none yet.

States: ok -> (pending, while waiting out `for`) -> firing -> resolved -> ... A notification
goes out when a rule fires and when it resolves; `cooldown` suppresses a new firing
notification within `cooldown` ms of the last one and, while a rule stays firing, repeats
the notification every `cooldown` ms (0: once per firing).

Several daemons on one ClickHouse server (the engine's `alert_lease`): only the daemon that
holds the lease evaluates and notifies; the others skip the evaluation round and keep their
counters, ready to take over. Rules may be created, changed or deleted through any daemon,
so with a lease every daemon re-reads the shared rules every RELOAD_MS and as soon as it
becomes the holder. Without a lease (the embedded default) the loop is exactly as before.

Thread rule: the evaluator runs on the event loop (its counters follow ingest there);
backtests run in a query worker over one immutable snapshot.
"""

from __future__ import annotations

import json
import logging
import math
import operator
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlparse

import numpy as np
import trio

from rta.core.embedded.backend import EmbeddedBackend
from rta.core.embedded.store.snapshot import Snapshot
from rta.core.errors import RtaError, ValidationError, field_error
from rta.core.events import EventBatch
from rta.core.live import batch_block
from rta.core.queries.backend import Backend, QueryContext
from rta.core.queries.filters import EventFilter, Group, parse_where
from rta.core.queries.timeparse import DAY, parse_duration, parse_time_range
from rta.core.silences import active_silence
from rta.core.targets import alert_channel_fields

log = logging.getLogger("rta.alerts")

CONDITION_TYPES = ("threshold", "anomaly")
AGGREGATIONS = ("count", "sum", "avg", "min", "max", "p95")
COMPARATORS: dict[str, Callable[[float, float], bool]] = {
    "gt": operator.gt, "gte": operator.ge, "lt": operator.lt, "lte": operator.le,
    "eq": operator.eq, "neq": operator.ne}
OPERATOR_SYMBOLS = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<=", "eq": "==", "neq": "!="}
CHANNELS = ("websocket", "log", "webhook", "email", "slack")
SEVERITIES = ("info", "warning", "error", "critical")
DIRECTIONS = ("both", "up", "down")
MAX_WINDOW_MS = 31 * DAY
MAX_BUCKETS_PER_WINDOW = 600
FUTURE_BUCKETS = 5  # events this many buckets ahead of the clock still count (clock skew)
HISTORY_KIND = "alert"
ALERT_KIND = "alert"
RELOAD_MS = 5_000  # with a lease: how often the shared rules are re-read


class LeaseView(Protocol):
    """What the evaluator reads of the engine's alerts lease (rta.core.clickhouse.lease)."""

    @property
    def held(self) -> bool: ...

    def stats(self) -> dict[str, object]: ...


WebhookSender = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]
# (channel "email" | "slack", the rule, the payload) -> outcomes, one per recipient
ChannelSender = Callable[[str, "Rule", dict[str, Any]], Awaitable[list[dict[str, Any]]]]
Publisher = Callable[[dict[str, Any]], None]


def now_ms() -> int:
    return time.time_ns() // 1_000_000


# -- rules ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    id: str
    name: str
    enabled: bool
    kind: str  # threshold | anomaly
    event_type: str | None
    prop: str  # "count" or a property key
    aggregation: str
    operator: str | None
    threshold: float | None
    window_ms: int
    for_ms: int
    cooldown_ms: int
    where: Group | None
    sensitivity: float
    min_baseline: int
    baseline_windows: int
    direction: str
    channels: tuple[str, ...]
    severity: str
    message: str
    webhook_url: str | None
    metric: dict[str, Any] | None = None  # a query's value instead of counters (alert_metrics)
    evaluate_every_ms: int = 60_000  # (metric rules only)
    email_to: tuple[str, ...] = ()
    slack_url: str | None = None
    dashboard_id: str | None = None  # linked from email and Slack notifications

    @property
    def bucket_ms(self) -> int:
        """1 s buckets up to 10 minute windows, then whole seconds giving <= 600 per window."""
        per = -(-self.window_ms // MAX_BUCKETS_PER_WINDOW)
        return max(1000, -(-per // 1000) * 1000)

    @property
    def window_buckets(self) -> int:
        return max(1, -(-self.window_ms // self.bucket_ms))

    @property
    def horizon_buckets(self) -> int:
        """Buckets the ring keeps: the window, plus the baseline windows for anomalies."""
        windows = 1 + (self.baseline_windows if self.kind == "anomaly" else 0)
        return windows * self.window_buckets

    @property
    def counts_events(self) -> bool:
        return self.prop == "count"

    def event_filter(self) -> EventFilter:
        return EventFilter(types=None if self.event_type is None else (self.event_type,),
                           where=self.where)

    def describe(self) -> str:
        if self.metric is not None:
            from rta.core import alert_metrics

            return alert_metrics.describe_rule(self)
        what = "count" if self.counts_events else f"{self.aggregation}({self.prop})"
        scope = self.event_type or "*"
        if self.kind == "threshold":
            sym = OPERATOR_SYMBOLS.get(self.operator or "", self.operator)
            return f"{what} of {scope} over {self.window_ms} ms {sym} {self.threshold:g}"
        return (f"{what} of {scope} over {self.window_ms} ms anomalous "
                f"(z >= {self.sensitivity:g}, {self.direction})")

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Rule:
        c = doc["condition"]
        n = doc["notification"]
        return cls(
            id=doc["id"], name=doc["name"], enabled=doc.get("enabled", True), kind=c["type"],
            event_type=c.get("eventType"), prop=c.get("property", "count"),
            aggregation=c["aggregation"], operator=c.get("operator"),
            threshold=c.get("threshold"), window_ms=c["timeWindow"], for_ms=doc.get("for", 0),
            cooldown_ms=doc.get("cooldown", 0),
            where=parse_where(c.get("filters"), "condition.filters"),
            sensitivity=c.get("sensitivity", 3.0), min_baseline=c.get("minBaselinePoints", 5),
            baseline_windows=c.get("baselineWindows", 24), direction=c.get("direction", "both"),
            channels=tuple(n["channels"]), severity=n["severity"], message=n.get("message", ""),
            webhook_url=n.get("webhookUrl"), metric=c.get("metric"),
            evaluate_every_ms=c.get("evaluateEvery", 60_000),
            email_to=tuple(n.get("emailTo", ())), slack_url=n.get("slackUrl"),
            dashboard_id=n.get("dashboardId"))


def _number(value: Any, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise field_error(path, "must be a finite number", value=value)
    return float(value)


def _choice(value: Any, path: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise field_error(path, f"must be one of {', '.join(allowed)}", value=value,
                          allowed=list(allowed))
    return str(value)


def _ms(value: Any, path: str, allow_zero: bool = True) -> int:
    if allow_zero and (value == 0 or value == "0") and not isinstance(value, bool):
        return 0
    return parse_duration(value, path)


def validate_alert(body: Any) -> dict[str, Any]:
    """The stored form of an alert payload (the seed's `POST /alerts` shape, defaults filled).

    Errors name the offending field (`condition.operator`, `notification.webhookUrl`, ...).
    """
    if not isinstance(body, dict):
        raise ValidationError("an alert must be a JSON object", [{"field": ""}])
    name = body.get("name")
    if not isinstance(name, str) or not name.strip():
        raise field_error("name", "is required and must be a non-empty string")
    enabled = body.get("enabled", True)
    if not isinstance(enabled, bool):
        raise field_error("enabled", "must be true or false")
    cond = body.get("condition")
    if not isinstance(cond, dict):
        raise field_error("condition", "is required and must be an object")
    kind = _choice(cond.get("type", "threshold"), "condition.type", CONDITION_TYPES)
    event_type = cond.get("eventType")
    if event_type is not None and (not isinstance(event_type, str) or not event_type):
        raise field_error("condition.eventType", "must be an event type name")
    if event_type == "*":
        event_type = None
    prop = cond.get("property", "count")
    if not isinstance(prop, str) or not prop:
        raise field_error("condition.property", "must be 'count' or a property name")
    if prop.startswith("properties."):
        prop = prop[len("properties."):]
    default_agg = "count" if prop == "count" else "avg"
    agg = _choice(cond.get("aggregation", cond.get("aggregate", default_agg)),
                  "condition.aggregation", AGGREGATIONS)
    if prop == "count" and agg != "count":
        raise field_error("condition.property", f"name the property to take the {agg} of")
    window = parse_duration(cond.get("timeWindow", 300_000), "condition.timeWindow")
    if not 1000 <= window <= MAX_WINDOW_MS:
        raise field_error("condition.timeWindow", "must be between 1 s and 31 days",
                          value=window)
    out_cond: dict[str, Any] = {"type": kind, "eventType": event_type, "property": prop,
                                "aggregation": agg, "timeWindow": window}
    filters = cond.get("filters", cond.get("where"))
    if filters is not None:
        parse_where(filters, "condition.filters")
        out_cond["filters"] = filters
    if "metric" in cond:  # a funnel, formula, retention... value: rta.core.alert_metrics
        from rta.core import alert_metrics

        out_cond.update(alert_metrics.validate_condition(cond, window))
    if kind == "threshold":
        out_cond["operator"] = _choice(cond.get("operator", "gt"), "condition.operator",
                                       tuple(COMPARATORS))
        if "threshold" not in cond:
            raise field_error("condition.threshold", "is required for a threshold alert")
        out_cond["threshold"] = _number(cond["threshold"], "condition.threshold")
    else:
        sensitivity = _number(cond.get("sensitivity", 3.0), "condition.sensitivity")
        if sensitivity <= 0:
            raise field_error("condition.sensitivity", "must be positive", value=sensitivity)
        minimum = cond.get("minBaselinePoints", 5)
        if isinstance(minimum, bool) or not isinstance(minimum, int) or not 2 <= minimum <= 1000:
            raise field_error("condition.minBaselinePoints", "must be an integer from 2 to 1000")
        windows = cond.get("baselineWindows", max(24, minimum))
        if isinstance(windows, bool) or not isinstance(windows, int) or \
                not minimum <= windows <= 1000:
            raise field_error("condition.baselineWindows",
                              "must be an integer from minBaselinePoints to 1000")
        out_cond.update(sensitivity=sensitivity, minBaselinePoints=minimum,
                        baselineWindows=windows,
                        direction=_choice(cond.get("direction", "both"), "condition.direction",
                                          DIRECTIONS))
    for_ms = _ms(body.get("for", cond.get("for", 0)), "for")
    cooldown = _ms(body.get("cooldown", 60_000), "cooldown")
    note = body.get("notification", {"channels": ["websocket", "log"]})
    if not isinstance(note, dict):
        raise field_error("notification", "must be an object")
    channels = note.get("channels", ["websocket", "log"])
    if not isinstance(channels, list) or not all(isinstance(c, str) for c in channels):
        raise field_error("notification.channels", "must be a list of channel names")
    for i, ch in enumerate(channels):
        _choice(ch, f"notification.channels[{i}]", CHANNELS)
    out_note: dict[str, Any] = {
        "channels": list(dict.fromkeys(channels)),
        "severity": _choice(note.get("severity", "warning"), "notification.severity",
                            SEVERITIES)}
    message = note.get("message", "")
    if not isinstance(message, str):
        raise field_error("notification.message", "must be a string")
    out_note["message"] = message
    url = note.get("webhookUrl")
    if url is not None or "webhook" in channels:
        out_note["webhookUrl"] = check_webhook_url(url)
    out_note.update(alert_channel_fields(note, channels))
    doc: dict[str, Any] = {"name": name.strip(), "enabled": enabled, "condition": out_cond,
                           "notification": out_note, "cooldown": cooldown, "for": for_ms}
    if isinstance(body.get("description"), str):
        doc["description"] = body["description"]
    return doc


def check_webhook_url(url: Any) -> str:
    if not isinstance(url, str) or not url:
        raise field_error("notification.webhookUrl", "is required for the webhook channel")
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise field_error("notification.webhookUrl", "must be an http:// or https:// URL",
                          value=url)
    return url


# -- bucket series ----------------------------------------------------------------------------


@dataclass
class Buckets:
    """Per-bucket aggregates over a contiguous range of bucket indexes [first, first+n)."""

    first: int
    count: np.ndarray
    total: np.ndarray
    low: np.ndarray
    high: np.ndarray
    values: list[np.ndarray] | None = None  # p95 only: the raw values per bucket

    @classmethod
    def build(cls, first: int, n: int, buckets: np.ndarray, values: np.ndarray | None,
              keep_values: bool) -> Buckets:
        """Aggregate event bucket indexes (and values) into n buckets from `first`."""
        idx = buckets - first
        ok = (idx >= 0) & (idx < n)
        idx = idx[ok]
        count = np.bincount(idx, minlength=n).astype(np.float64)
        if values is None:
            z = np.zeros(n)
            return cls(first, count, z, np.full(n, np.inf), np.full(n, -np.inf))
        v = values[ok]
        total = np.bincount(idx, weights=v, minlength=n)
        low = np.full(n, np.inf)
        high = np.full(n, -np.inf)
        np.minimum.at(low, idx, v)
        np.maximum.at(high, idx, v)
        vals = None
        if keep_values:
            order = np.argsort(idx, kind="stable")
            bounds = np.searchsorted(idx[order], np.arange(n + 1))
            sv = v[order]
            vals = [sv[bounds[i]:bounds[i + 1]] for i in range(n)]
        return cls(first, count, total, low, high, vals)


def window_values(rule: Rule, b: Buckets, ends: np.ndarray) -> np.ndarray:
    """The rule's aggregate over the window ending at (and including) each bucket in `ends`
    (offsets into `b`); NaN where the aggregate is undefined (no values)."""
    w = rule.window_buckets
    ends = np.asarray(ends, dtype=np.int64)
    starts = np.maximum(ends - w + 1, 0)
    cs = np.concatenate([[0.0], np.cumsum(b.count)])
    counts = cs[ends + 1] - cs[starts]
    agg = rule.aggregation
    if agg == "count":
        return counts
    ts = np.concatenate([[0.0], np.cumsum(b.total)])
    sums = ts[ends + 1] - ts[starts]
    with np.errstate(invalid="ignore", divide="ignore"):
        if agg == "sum":
            return sums
        if agg == "avg":
            return np.where(counts > 0, sums / np.where(counts > 0, counts, 1), np.nan)
    out = np.full(len(ends), np.nan)
    if agg in ("min", "max"):
        src = b.low if agg == "min" else b.high
        fill = np.inf if agg == "min" else -np.inf
        padded = np.concatenate([np.full(w - 1, fill), src])
        view = np.lib.stride_tricks.sliding_window_view(padded, w)[ends]
        red = view.min(axis=1) if agg == "min" else view.max(axis=1)
        return np.where(np.isfinite(red), red, np.nan)
    assert b.values is not None
    for i, (s, e) in enumerate(zip(starts.tolist(), ends.tolist(), strict=True)):
        parts = b.values[s:e + 1]
        if any(len(p) for p in parts):
            out[i] = float(np.percentile(np.concatenate(parts), 95))
    return out


def robust_z(value: float, baseline: np.ndarray, counts: bool = False
             ) -> tuple[float, float, float]:
    """(z, median, scale) of `value` against the baseline points (NaNs ignored); see the
    module docstring for the scale."""
    base = baseline[~np.isnan(baseline)]
    med = float(np.median(base))
    dev = np.abs(base - med)
    scale = max(1.4826 * float(np.median(dev)), 1.2533 * float(np.mean(dev)))
    if counts:
        scale = max(scale, math.sqrt(max(med, 1.0)))
    if scale == 0:
        return (0.0 if value == med else math.copysign(math.inf, value - med)), med, 0.0
    return (value - med) / scale, med, scale


def evaluate_point(rule: Rule, b: Buckets, end: int,
                   data_since: int | None = None) -> dict[str, Any]:
    """Whether the rule's condition holds for the window ending at bucket offset `end`.

    `data_since` (ms): when the store's data begins; baseline windows starting before it
    are no data, not zeros (a new server is not "anomalous" because yesterday was empty).
    """
    if rule.kind == "threshold":
        value = float(window_values(rule, b, np.array([end]))[0])
        breach = not math.isnan(value) and COMPARATORS[rule.operator or "gt"](
            value, float(rule.threshold or 0.0))
        return {"value": None if math.isnan(value) else value, "breach": breach}
    w = rule.window_buckets
    ends = end - w * np.arange(rule.baseline_windows + 1)
    ends = ends[ends >= w - 1]
    vals = window_values(rule, b, ends)
    if data_since is not None:
        starts_ms = (b.first + ends - w + 1) * rule.bucket_ms
        vals[1:][starts_ms[1:] < data_since - data_since % rule.bucket_ms] = np.nan
    vals[1:][before_first_event(b, ends[1:], int(ends[-1]) - w + 1)] = np.nan
    return _anomaly(rule, float(vals[0]), vals[1:])


def before_first_event(b: Buckets, ends: np.ndarray, horizon_start: np.ndarray | int
                       ) -> np.ndarray:
    """Which windows (ending at the bucket offsets `ends`) lie wholly before the rule's first
    event since `horizon_start`: no data, not zeros (see the module docstring)."""
    cs = np.concatenate([[0.0], np.cumsum(b.count)])
    start = np.maximum(horizon_start, 0)
    return np.asarray((cs[np.maximum(ends, -1) + 1] - cs[start]) == 0)


def _anomaly(rule: Rule, value: float, baseline: np.ndarray) -> dict[str, Any]:
    out: dict[str, Any] = {"value": None if math.isnan(value) else value, "breach": False,
                           "baselinePoints": int(np.sum(~np.isnan(baseline)))}
    if math.isnan(value) or out["baselinePoints"] < rule.min_baseline:
        return out
    z, med, scale = robust_z(value, baseline, rule.aggregation == "count")
    out.update(zScore=z if math.isfinite(z) else (1e9 if z > 0 else -1e9), baseline=med,
               scale=scale)
    if rule.direction == "up":
        out["breach"] = z >= rule.sensitivity
    elif rule.direction == "down":
        out["breach"] = z <= -rule.sensitivity
    else:
        out["breach"] = abs(z) >= rule.sensitivity
    return out


class Ring:
    """Bucket aggregates for the most recent `size` buckets, updated in place per batch."""

    def __init__(self, size: int, keep_values: bool) -> None:
        self.size = size
        self.key = np.full(size, -1, dtype=np.int64)
        self.count = np.zeros(size)
        self.total = np.zeros(size)
        self.low = np.full(size, np.inf)
        self.high = np.full(size, -np.inf)
        self.values: dict[int, list[np.ndarray]] | None = {} if keep_values else None

    def add(self, buckets: np.ndarray, values: np.ndarray | None, newest: int) -> None:
        """Fold events in. Buckets older than the horizon are ignored, and so are those more
        than FUTURE_BUCKETS ahead of `newest` (clock skew is tolerated, not far futures)."""
        if not len(buckets):
            return
        ok = (buckets > newest - self.size + FUTURE_BUCKETS) & (buckets <= newest + FUTURE_BUCKETS)
        if not ok.all():
            buckets = buckets[ok]
            values = None if values is None else values[ok]
            if not len(buckets):
                return
        uniq, inv = np.unique(buckets, return_inverse=True)
        counts = np.bincount(inv, minlength=len(uniq))
        sums = lows = highs = None
        if values is not None:
            sums = np.bincount(inv, weights=values, minlength=len(uniq))
            lows = np.full(len(uniq), np.inf)
            highs = np.full(len(uniq), -np.inf)
            np.minimum.at(lows, inv, values)
            np.maximum.at(highs, inv, values)
        for j, u in enumerate(uniq.tolist()):
            slot = u % self.size
            if self.key[slot] != u:
                if self.key[slot] > u:
                    continue  # the slot already holds a newer bucket
                self._reset(slot, u)
            self.count[slot] += counts[j]
            if sums is not None and lows is not None and highs is not None:
                self.total[slot] += sums[j]
                self.low[slot] = min(self.low[slot], lows[j])
                self.high[slot] = max(self.high[slot], highs[j])
                if self.values is not None and values is not None:
                    self.values.setdefault(u, []).append(values[inv == j])

    def _reset(self, slot: int, bucket: int) -> None:
        old = int(self.key[slot])
        if self.values is not None and old >= 0:
            self.values.pop(old, None)
        self.key[slot] = bucket
        self.count[slot] = 0
        self.total[slot] = 0
        self.low[slot] = np.inf
        self.high[slot] = -np.inf

    def extract(self, first: int, n: int) -> Buckets:
        """Buckets [first, first+n) as contiguous arrays (empty where the ring has none)."""
        want = np.arange(first, first + n, dtype=np.int64)
        slots = want % self.size
        have = self.key[slots] == want
        vals = None
        if self.values is not None:
            empty = np.zeros(0)
            vals = [np.concatenate(self.values[u]) if h and u in self.values else empty
                    for u, h in zip(want.tolist(), have.tolist(), strict=True)]
        return Buckets(first, np.where(have, self.count[slots], 0.0),
                       np.where(have, self.total[slots], 0.0),
                       np.where(have, self.low[slots], np.inf),
                       np.where(have, self.high[slots], -np.inf), vals)


def rule_columns(rule: Rule, ts: np.ndarray, numeric: Callable[[], np.ndarray]
                 ) -> tuple[np.ndarray, np.ndarray | None]:
    """(bucket index per counted event, its value or None) for matching rows."""
    if rule.counts_events:
        return ts // rule.bucket_ms, None
    vals = numeric()
    keep = ~np.isnan(vals)
    if rule.aggregation == "count":
        return ts[keep] // rule.bucket_ms, None
    return ts[keep] // rule.bucket_ms, vals[keep]


def stored_columns(rule: Rule, backend: Backend, start: int | None, end: int | None
                   ) -> tuple[np.ndarray, np.ndarray | None]:
    """The rule's bucket indexes (and values) from stored events in [start, end)."""
    flt = rule.event_filter()
    flt.start, flt.end = start, end
    metric = None if rule.counts_events else rule.prop
    ts, values = backend.timestamps(flt, metric)
    return rule_columns(rule, ts, lambda: values if values is not None
                        else np.full(len(ts), np.nan))


# -- backtest ---------------------------------------------------------------------------------


def backtest(rule: Rule, backend: Backend, start: int, end: int,
             max_points: int = 100_000) -> BacktestResult:
    """When the rule would have fired over stored events in [start, end).

    Evaluates the same windows as the live evaluator at every bucket boundary (or every
    k-th bucket when the range holds more than `max_points`), then replays `for` and
    `cooldown` over the runs of breaching points.
    """
    bms = rule.bucket_ms
    first_eval = start // bms
    last_eval = max(first_eval, (end - 1) // bms)
    lead = rule.horizon_buckets
    first = first_eval - lead
    n = last_eval - first + 1
    buckets, values = stored_columns(rule, backend, first * bms, (last_eval + 1) * bms)
    b = Buckets.build(first, n, buckets, values, rule.aggregation == "p95")
    step = max(1, -(-(last_eval - first_eval + 1) // max_points))
    if rule.aggregation == "p95":
        step = max(step, -(-(last_eval - first_eval + 1) // 2000))
    points = np.arange(first_eval, last_eval + 1, step) - first
    vals = window_values(rule, b, points)
    extra: dict[str, np.ndarray] = {}
    if rule.kind == "threshold":
        cmp = {"gt": np.greater, "gte": np.greater_equal, "lt": np.less,
               "lte": np.less_equal, "eq": np.equal, "neq": np.not_equal}[rule.operator or "gt"]
        with np.errstate(invalid="ignore"):
            breach = cmp(vals, float(rule.threshold or 0.0)) & ~np.isnan(vals)
    else:
        w = rule.window_buckets
        k = np.arange(1, rule.baseline_windows + 1)
        base_ends = points[:, None] - w * k[None, :]
        flat = base_ends.ravel()
        base = window_values(rule, b, np.maximum(flat, 0)).reshape(base_ends.shape)
        base[base_ends < w - 1] = np.nan
        oldest = points - w * rule.baseline_windows - w + 1  # (the live ring's horizon)
        base[before_first_event(b, base_ends, oldest[:, None])] = np.nan
        bounds = backend.time_bounds()
        if bounds is not None:  # windows before the store's first event: no data
            since = bounds[0] - bounds[0] % bms
            base[(base_ends - w + 1 + first) * bms < since] = np.nan
        breach = np.zeros(len(points), dtype=bool)
        zs = np.full(len(points), np.nan)
        for i in np.flatnonzero(~np.isnan(vals)).tolist():
            res = _anomaly(rule, float(vals[i]), base[i])
            breach[i] = res["breach"]
            if "zScore" in res:
                zs[i] = res["zScore"]
        extra["zScore"] = zs
    times = (points + first + 1) * bms  # a window ending at bucket i is complete at its end
    firings = _replay(rule, times, breach, vals, extra)
    return BacktestResult(rule.id, rule.name, rule.describe(), start, end, bms, step * bms,
                          len(points), int(breach.sum()), tuple(firings))


@dataclass(frozen=True)
class Firing:
    """One time the rule would have fired: when, until when, its value then and at the
    peak, whether it notified (cooldown), and the anomaly's z-score (anomaly rules)."""

    fired_at: int
    resolved_at: int | None
    value: float | None
    peak: float | None
    notified: bool
    extra: tuple[tuple[str, float | None], ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"firedAt": self.fired_at, "resolvedAt": self.resolved_at, "value": self.value,
                "peak": self.peak, "notified": self.notified, **dict(self.extra)}


@dataclass(frozen=True)
class BacktestResult:
    """POST /alerts/{id}/test: when the rule would have fired over stored events."""

    alert_id: str
    name: str
    condition: str
    start: int
    end: int
    bucket_ms: int
    step_ms: int
    evaluations: int
    breaching_evaluations: int
    firings: tuple[Firing, ...]

    @property
    def would_have_fired(self) -> bool:
        return any(f.notified for f in self.firings)

    def to_json(self) -> dict[str, Any]:
        return {"alertId": self.alert_id, "name": self.name, "condition": self.condition,
                "range": {"start": self.start, "end": self.end}, "bucketMs": self.bucket_ms,
                "stepMs": self.step_ms, "evaluations": self.evaluations,
                "breachingEvaluations": self.breaching_evaluations,
                "wouldHaveFired": self.would_have_fired,
                "firings": [f.to_json() for f in self.firings]}


def _replay(rule: Rule, times: np.ndarray, breach: np.ndarray, vals: np.ndarray,
            extra: dict[str, np.ndarray]) -> list[Firing]:
    """Runs of breaching points -> firings, honouring `for` and `cooldown`."""
    out: list[Firing] = []
    if not breach.any():
        return out
    edges = np.diff(np.concatenate([[0], breach.astype(np.int8), [0]]))
    run_starts = np.flatnonzero(edges == 1)
    run_ends = np.flatnonzero(edges == -1)  # exclusive
    last_notified: int | None = None
    for s, e in zip(run_starts.tolist(), run_ends.tolist(), strict=True):
        fire_idx = int(np.searchsorted(times[s:e], times[s] + rule.for_ms)) + s
        if fire_idx >= e:
            continue  # did not last `for`
        fired_at = int(times[fire_idx])
        notified = last_notified is None or fired_at - last_notified >= rule.cooldown_ms
        if notified:
            last_notified = fired_at
        seg = vals[fire_idx:e]
        peak_idx = fire_idx + (int(np.nanargmax(seg)) if rule.kind == "threshold" and
                               rule.operator in ("gt", "gte") else
                               int(np.nanargmin(seg)) if rule.kind == "threshold" and
                               rule.operator in ("lt", "lte") else 0)
        out.append(Firing(fired_at, int(times[e]) if e < len(times) else None,
                          _num(vals[fire_idx]), _num(vals[peak_idx]), notified,
                          tuple((k, _num(arr[fire_idx])) for k, arr in extra.items())))
    return out


def _num(v: Any) -> float | None:
    f = float(v)
    return None if math.isnan(f) else f


# -- the live evaluator -----------------------------------------------------------------------


@dataclass
class RuleState:
    rule: Rule
    ring: Ring
    status: str = "ok"  # ok | pending | firing | resolved
    pending_since: int | None = None
    fired_at: int | None = None
    resolved_at: int | None = None
    last_notified: int | None = None
    episode_notified: bool = False
    last_value: float | None = None
    last_detail: dict[str, Any] = field(default_factory=dict)
    last_evaluated: int | None = None
    evaluations: int = 0
    triggered: int = 0

    def info(self) -> dict[str, Any]:
        return {"status": self.status, "value": self.last_value,
                "lastEvaluated": self.last_evaluated, "firedAt": self.fired_at,
                "resolvedAt": self.resolved_at, "lastNotified": self.last_notified,
                "pendingSince": self.pending_since, "triggered": self.triggered,
                **{k: v for k, v in self.last_detail.items() if k not in ("value", "breach")}}


class AlertEvaluator:
    """Holds every rule's counters and state; `run()` evaluates them on an interval.

    Notification delivery is injected: `publish(payload)` for the websocket channel (the
    server hands it to the live hub) and `send_webhook(url, payload) -> outcome` for
    webhooks (the server's httpx notifier); the core imports neither.
    """

    def __init__(self, engine: Any, interval_ms: int = 1000,
                 publish: Publisher | None = None,
                 send_webhook: WebhookSender | None = None) -> None:
        self.engine = engine
        self.interval_ms = max(10, int(interval_ms))
        self.publish = publish
        self.send_webhook = send_webhook
        self.send_channel: ChannelSender | None = None  # email and Slack (the server's)
        self.silenced: Callable[[str, int], dict[str, Any] | None] = (
            lambda alert_id, now: active_silence(engine.metadata, alert_id, now))
        self.states: dict[str, RuleState] = {}
        self.evaluated = 0
        self.triggered = 0
        self.notifications = 0
        self._nursery: trio.Nursery | None = None
        self._pending_webhooks: list[tuple[str, str, dict[str, Any]]] = []
        self._pending_channels: list[tuple[str, Rule, dict[str, Any]]] = []
        self._wake = trio.Event()
        self.lease: LeaseView | None = getattr(engine, "alert_lease", None)
        self._loaded: dict[str, Any] = {}  # rule id -> the updatedAt of the doc loaded
        self._changes = 0  # loads and removals: a reload that raced one is not applied
        self._holding = False
        self._reloaded_at = 0.0
        bounds = engine.snapshot().time_bounds()
        self.data_since: int | None = None if bounds is None else bounds[0]
        for doc in engine.metadata.list(ALERT_KIND):
            try:
                self.load(doc)
            except RtaError as exc:  # a stored rule the current code rejects: skip, say so
                log.warning("alert %s not loaded: %s", doc.get("id"), exc.message)

    # -- rules ----------------------------------------------------------------------------

    def load(self, doc: dict[str, Any]) -> RuleState:
        """(Re)load a stored rule; its ring is primed from the store."""
        self._changes += 1
        return self._load(doc)

    def _load(self, doc: dict[str, Any]) -> RuleState:
        rule = Rule.from_doc(doc)
        self._loaded[rule.id] = doc.get("updatedAt")
        old = self.states.get(rule.id)
        size = 1 if rule.metric is not None else rule.horizon_buckets + 2 * FUTURE_BUCKETS
        ring = Ring(size, rule.aggregation == "p95")  # (metric rules keep no counters)
        state = RuleState(rule, ring)
        if old is not None:
            state.triggered = old.triggered  # (a lifetime count: disabling does not reset it)
        if old is not None and old.rule.enabled and rule.enabled:
            for name in ("status", "pending_since", "fired_at", "resolved_at", "last_notified",
                         "episode_notified"):
                setattr(state, name, getattr(old, name))
        if rule.metric is None:  # (metric rules run their query instead: alert_metrics)
            self._prime(state)
        self.states[rule.id] = state
        return state

    def remove(self, alert_id: str) -> None:
        self._changes += 1
        self.states.pop(alert_id, None)
        self._loaded.pop(alert_id, None)

    async def reload(self) -> None:
        """Follow the shared store: load rules added or changed (a newer `updatedAt`) by any
        daemon, drop those deleted. The read runs in a worker thread; if this daemon loaded or
        removed a rule meanwhile, the answer may predate it and is dropped (the next reload
        takes it)."""
        changes = self._changes
        docs = await trio.to_thread.run_sync(self.engine.metadata.list, ALERT_KIND)
        if changes != self._changes:
            return
        self._reloaded_at = time.monotonic()
        for doc in docs:
            if doc.get("id") in self.states and \
                    self._loaded.get(doc["id"]) == doc.get("updatedAt"):
                continue
            try:
                self._load(doc)
            except RtaError as exc:
                log.warning("alert %s not loaded: %s", doc.get("id"), exc.message)
        for gone in set(self.states) - {doc.get("id") for doc in docs}:
            self.states.pop(gone, None)
            self._loaded.pop(gone, None)

    def _prime(self, state: RuleState) -> None:
        rule = state.rule
        now_b = now_ms() // rule.bucket_ms
        first = now_b - rule.horizon_buckets
        local = EmbeddedBackend(self.engine, self.engine.snapshot())  # (the local store: it
        b, v = stored_columns(rule, local, first * rule.bucket_ms, None)  # covers the horizon)
        state.ring.add(b, v, now_b)

    def on_ingest(self, batch: EventBatch) -> None:
        """Engine listener: fold a durable batch into every enabled rule's ring."""
        if not self.states or not len(batch):
            return
        try:
            self._fold(batch)
        except Exception:  # never let a rule break ingestion
            log.exception("alert counters could not take a batch")

    def _fold(self, batch: EventBatch) -> None:
        dicts = self.engine.store.dicts
        block = batch_block(batch, dicts)
        first = int(block.ts.min())
        if self.data_since is None or first < self.data_since:
            self.data_since = first
        # person-aware, as queries are: `person.<key>` filters read the current properties
        block = self.engine.persons.wrap(Snapshot(blocks=[block], dicts=dicts,
                                                  version=0)).blocks[0]
        snap = Snapshot(blocks=[], dicts=dicts, version=0)
        newest_ms = now_ms()
        types = batch.type_names()
        for state in self.states.values():
            rule = state.rule
            if not rule.enabled or rule.metric is not None or (
                    rule.event_type is not None and rule.event_type not in types):
                continue
            mask = rule.event_filter().mask(block, slice(0, block.n), snap)
            ts = block.ts if mask is None else block.ts[mask]
            if not len(ts):
                continue

            def numeric(rule: Rule = rule, mask: Any = mask) -> np.ndarray:
                v = block.numeric(rule.prop)
                return v if mask is None else v[mask]

            b, v = rule_columns(rule, ts, numeric)
            state.ring.add(b, v, newest_ms // rule.bucket_ms)
        self._wake.set()

    # -- evaluation -----------------------------------------------------------------------

    async def run(self) -> None:
        """Evaluate every `interval_ms`; webhook deliveries run beside, never blocking it."""
        from rta.core.alert_metrics import run_metric_rules

        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            nursery.start_soon(run_metric_rules, self)  # (rules on a query's value)
            try:
                while True:
                    if self.lease is None:
                        self.evaluate_all()
                    else:
                        await self._leased_round()
                    await trio.sleep(self.interval_ms / 1000)
            finally:
                self._nursery = None

    async def _leased_round(self) -> None:
        """One round with a lease: re-read the rules when due (at once on becoming the
        holder), then evaluate only while this daemon holds the lease."""
        assert self.lease is not None
        held = self.lease.held
        due = time.monotonic() - self._reloaded_at >= RELOAD_MS / 1000
        if due or (held and not self._holding):
            try:
                await self.reload()
            except RtaError as exc:  # ClickHouse unreachable: keep the rules we have
                log.warning("alert rules not reloaded: %s", exc.message)
                self._reloaded_at = time.monotonic()
            held = self.lease.held
        self._holding = held
        if held:
            self.evaluate_all()

    def evaluate_all(self, now: int | None = None) -> None:
        now = now_ms() if now is None else now
        for state in list(self.states.values()):
            if not state.rule.enabled or state.rule.metric is not None:
                continue
            try:
                self.evaluate(state, now)
            except Exception:
                log.exception("alert %s could not be evaluated", state.rule.id)

    def evaluate(self, state: RuleState, now: int) -> None:
        rule = state.rule
        now_b = now // rule.bucket_ms
        n = rule.horizon_buckets
        b = state.ring.extract(now_b - n + 1, n)
        result = evaluate_point(rule, b, n - 1, self.data_since)
        self.apply(state, now, result)

    def apply(self, state: RuleState, now: int, result: dict[str, Any]) -> None:
        """Move the rule's state on one evaluation's outcome (value, breach): pending, `for`,
        firing, cooldown repeats, resolution; shared by counter and metric rules."""
        rule = state.rule
        self.evaluated += 1
        state.evaluations += 1
        state.last_evaluated = now
        state.last_value = result["value"]
        state.last_detail = result
        if result["breach"]:
            if state.status in ("ok", "resolved"):
                state.pending_since = now
                state.status = "pending"
            if state.status == "pending" and now - (state.pending_since or now) >= rule.for_ms:
                self._fire(state, now, result)
            elif (state.status == "firing" and rule.cooldown_ms > 0
                  and state.last_notified is not None
                  and now - state.last_notified >= rule.cooldown_ms):
                state.last_notified = now
                state.episode_notified = True
                self._notify(state, "fired", now, result, repeat=True)
        else:
            if state.status == "firing":
                state.status = "resolved"
                state.resolved_at = now
                if state.episode_notified:
                    self._notify(state, "resolved", now, result)
                else:
                    self._history(state, "resolved", now, result, suppressed=True)
            elif state.status == "pending":
                state.status = "ok"
            state.pending_since = None

    def _fire(self, state: RuleState, now: int, result: dict[str, Any]) -> None:
        rule = state.rule
        state.status = "firing"
        state.fired_at = now
        state.triggered += 1
        self.triggered += 1
        if state.last_notified is None or now - state.last_notified >= rule.cooldown_ms:
            state.last_notified = now
            state.episode_notified = True
            self._notify(state, "fired", now, result)
        else:
            state.episode_notified = False
            self._history(state, "fired", now, result, suppressed=True)

    def payload(self, state: RuleState, event: str, now: int,
                result: dict[str, Any]) -> dict[str, Any]:
        rule = state.rule
        out: dict[str, Any] = {
            "alertId": rule.id, "name": rule.name, "event": event, "status": state.status,
            "severity": rule.severity, "message": rule.message or rule.name,
            "condition": rule.describe(), "value": result.get("value"),
            "at": now, "firedAt": state.fired_at,
            # (the buckets evaluated: the current one and the window's worth before it, so
            # the start is the window's, rounded up to a bucket boundary)
            "window": {"start": (now // rule.bucket_ms - rule.window_buckets + 1)
                       * rule.bucket_ms, "end": now}}
        if rule.kind == "threshold":
            out.update(operator=rule.operator, threshold=rule.threshold)
        else:
            for key in ("zScore", "baseline", "scale", "baselinePoints"):
                if key in result:
                    out[key] = result[key]
            out["sensitivity"] = rule.sensitivity
        return out

    def _history(self, state: RuleState, event: str, now: int, result: dict[str, Any],
                 **extra: Any) -> dict[str, Any]:
        body = {**self.payload(state, event, now, result), **extra}
        self.engine.metadata.append_history(HISTORY_KIND, state.rule.id, body)
        return body

    def _notify(self, state: RuleState, event: str, now: int, result: dict[str, Any],
                **extra: Any) -> None:
        rule = state.rule
        silence = self.silenced(rule.id, now)
        if silence is not None:  # evaluated and recorded, not sent
            self._history(state, event, now, result, channels=list(rule.channels),
                          muted=True, silenceId=silence["id"], **extra)
            if event == "fired":  # (nobody was told: no "resolved" for it either)
                state.episode_notified = False
            return
        body = self._history(state, event, now, result, channels=list(rule.channels), **extra)
        self.notifications += 1
        self.deliver(rule, body)

    def deliver(self, rule: Rule, body: dict[str, Any]) -> None:
        """Send one notification through the rule's channels."""
        if "websocket" in rule.channels and self.publish is not None:
            try:
                self.publish(body)
            except Exception:
                log.exception("alert %s: websocket publish failed", rule.id)
        if "log" in rule.channels:
            log.warning("alert %s %s: %s (value %s)", rule.name, body["event"], body["message"],
                        body.get("value"), extra={"fields": {"alert": body}})
        if "webhook" in rule.channels and rule.webhook_url and self.send_webhook is not None:
            if self._nursery is not None:
                self._nursery.start_soon(self._webhook, rule.id, rule.webhook_url, body)
            else:
                self._pending_webhooks.append((rule.id, rule.webhook_url, body))
        for channel in ("email", "slack"):
            if channel in rule.channels and self.send_channel is not None:
                if self._nursery is not None:
                    self._nursery.start_soon(self._channel, channel, rule, body)
                else:
                    self._pending_channels.append((channel, rule, body))

    async def flush_webhooks(self) -> None:
        """Deliver webhooks queued while no evaluator was running (tests, `test` endpoint)."""
        pending, self._pending_webhooks = self._pending_webhooks, []
        for alert_id, url, body in pending:
            await self._webhook(alert_id, url, body)
        channels, self._pending_channels = self._pending_channels, []
        for channel, rule, body in channels:
            await self._channel(channel, rule, body)

    async def _channel(self, channel: str, rule: Rule, body: dict[str, Any]) -> None:
        """Email or Slack delivery; each recipient's outcome goes to the history."""
        assert self.send_channel is not None
        try:
            outcomes = await self.send_channel(channel, rule, body)
        except Exception as exc:  # the sender should not raise; record it if it does
            outcomes = [{"status": "failed", "error": f"{type(exc).__name__}: {exc}"}]
        for outcome in outcomes:
            self.engine.metadata.append_history(HISTORY_KIND, rule.id, {
                "alertId": rule.id, "name": body.get("name"), "event": channel,
                "for": body.get("event"), "at": now_ms(), **outcome})

    async def _webhook(self, alert_id: str, url: str, body: dict[str, Any]) -> None:
        assert self.send_webhook is not None
        try:
            outcome = await self.send_webhook(url, body)
        except Exception as exc:  # the sender should not raise; record it if it does
            outcome = {"status": "failed", "error": f"{type(exc).__name__}: {exc}"}
        self.engine.metadata.append_history(HISTORY_KIND, alert_id, {
            "alertId": alert_id, "name": body.get("name"), "event": "webhook",
            "for": body.get("event"), "at": now_ms(), "url": url, **outcome})

    def test_notification(self, alert_id: str) -> dict[str, Any]:
        """Send a `test` notification through the rule's channels (not a state change)."""
        state = self.states[alert_id]
        now = now_ms()
        body = self._history(state, "test", now, {"value": state.last_value},
                             channels=list(state.rule.channels))
        self.deliver(state.rule, body)
        return body

    # -- introspection --------------------------------------------------------------------

    def state_of(self, alert_id: str) -> dict[str, Any] | None:
        state = self.states.get(alert_id)
        return None if state is None else state.info()

    def stats(self) -> dict[str, Any]:
        """The `alerts` section of /stats."""
        return {"alertsEvaluated": self.evaluated, "alertsTriggered": self.triggered,
                "activeAlerts": sum(1 for s in self.states.values() if s.status == "firing"),
                "rules": len(self.states),
                "enabledRules": sum(1 for s in self.states.values() if s.rule.enabled),
                "notificationsSent": self.notifications,
                "intervalMs": self.interval_ms,
                **({} if self.lease is None else {"lease": self.lease.stats()})}


def backtest_range(spec: Any, now: int | None = None) -> tuple[int, int]:
    """The backtest range from a request body: startTime/endTime/timeRange, default 24 h."""
    spec = spec if isinstance(spec, dict) else {}
    now = now_ms() if now is None else now
    start, end = parse_time_range(spec.get("startTime"), spec.get("endTime"), now,
                                  "startTime", "endTime", spec.get("timeRange"))
    end = now if end is None else end
    start = end - DAY if start is None else start
    if end <= start:
        raise field_error("endTime", "must be after startTime")
    return start, end


@dataclass(frozen=True)
class BacktestQuery:
    """POST /alerts/{id}/test, parsed: the stored rule, the range to replay over stored
    events, and whether to send a test notification too."""

    rule: Rule
    start: int
    end: int  # exclusive
    notify: bool


def parse_backtest(doc: dict[str, Any], body: Any, now: int) -> BacktestQuery:
    """Pure (the clock is `now`, no data read): the request body ({} for an empty one)
    against the stored alert `doc`; errors name the field as they always did."""
    if not isinstance(body, dict):
        raise ValidationError("body must be a JSON object", [{"field": ""}])
    start, end = backtest_range(body, now)
    return BacktestQuery(Rule.from_doc(doc), start, end, bool(body.get("notify")))


def run_backtest(query: BacktestQuery, backend: Backend,
                 ctx: QueryContext | None = None) -> BacktestResult:
    """The backtest's answer over `backend`'s data (see `backtest`): a worker thread.
    Metric rules run their query at each step (`alert_metrics.backtest`, over `ctx`)."""
    if query.rule.metric is not None:
        from rta.core import alert_metrics

        ctx = ctx if ctx is not None else QueryContext(backend, None, query.end)
        return alert_metrics.backtest(query.rule, ctx, query.start, query.end)
    return backtest(query.rule, backend, query.start, query.end)


def describe_doc(doc: dict[str, Any]) -> str:
    """One-line summary of a stored alert (CLI tables)."""
    try:
        return Rule.from_doc(doc).describe()
    except (KeyError, RtaError):
        return json.dumps(doc.get("condition"))
