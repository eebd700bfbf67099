"""Typed behavioural results; `to_json()` gives the API's response body, field for field.

Thread rule: pure functions over their arguments; any thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class FunnelStep:
    name: str
    event_type: str
    count: int
    conversion_rate: float
    dropoff_rate: float
    dropoff: int
    overall_conversion_rate: float
    avg_time_to_convert: float | None = None
    median_time_to_convert: float | None = None
    p90_time_to_convert: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "eventType": self.event_type, "count": self.count,
                "conversionRate": self.conversion_rate, "dropoffRate": self.dropoff_rate,
                "dropoff": self.dropoff, "overallConversionRate": self.overall_conversion_rate,
                "avgTimeToConvert": self.avg_time_to_convert,
                "medianTimeToConvert": self.median_time_to_convert,
                "p90TimeToConvert": self.p90_time_to_convert}


@dataclass(frozen=True)
class FunnelSummary:
    steps: tuple[FunnelStep, ...]
    total_entered: int
    total_completed: int
    overall_conversion_rate: float

    def to_json(self) -> dict[str, Any]:
        return {"steps": [s.to_json() for s in self.steps], "totalEntered": self.total_entered,
                "totalCompleted": self.total_completed,
                "overallConversionRate": self.overall_conversion_rate}


@dataclass(frozen=True)
class FunnelBreakdown:
    """One value of the breakdown property (None = not set) and its own funnel."""

    value: Any
    summary: FunnelSummary

    def to_json(self) -> dict[str, Any]:
        return {"value": self.value, **self.summary.to_json()}


@dataclass(frozen=True)
class FunnelResult:
    summary: FunnelSummary
    order: str
    count_by: str
    time_limit: int
    start_time: int | None
    end_time: int | None
    start_date: str | None = None
    breakdown_property: str | None = None
    breakdown_truncated: bool = False
    breakdown: tuple[FunnelBreakdown, ...] = ()

    def to_json(self) -> dict[str, Any]:
        out = self.summary.to_json()
        out.update(order=self.order, countBy=self.count_by, timeLimit=self.time_limit,
                   startTime=self.start_time, endTime=self.end_time)
        if self.start_date is not None:
            out["startDate"] = self.start_date
        if self.breakdown_property is not None:
            out["breakdownProperty"] = self.breakdown_property
            out["breakdownTruncated"] = self.breakdown_truncated
            out["breakdown"] = [g.to_json() for g in self.breakdown]
        return out


@dataclass(frozen=True)
class CohortRow:
    cohort: int
    start_time: int
    date: str
    size: int
    counts: list[int | None]  # None: the period has not started yet
    percentages: list[float | None]

    def to_json(self) -> dict[str, Any]:
        return {"cohort": self.cohort, "startTime": self.start_time, "date": self.date,
                "size": self.size, "counts": self.counts, "percentages": self.percentages}


@dataclass(frozen=True)
class CohortAverage:
    size: int
    counts: list[int | None]
    percentages: list[float | None]

    def to_json(self) -> dict[str, Any]:
        return {"size": self.size, "counts": self.counts, "percentages": self.percentages}


@dataclass(frozen=True)
class CohortResult:
    name: Any
    entry_event: str
    retention_event: str
    retention_type: str
    criterion: str
    periods: int
    period_length: int
    start_time: int
    end_time: int
    total_users: int
    cohorts: tuple[CohortRow, ...]
    average: CohortAverage

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "entryEvent": self.entry_event,
                "retentionEvent": self.retention_event, "retentionType": self.retention_type,
                "criterion": self.criterion, "periods": self.periods,
                "periodLength": self.period_length, "startTime": self.start_time,
                "endTime": self.end_time, "totalUsers": self.total_users,
                "cohorts": [c.to_json() for c in self.cohorts],
                "average": self.average.to_json()}


@dataclass(frozen=True)
class SegmentResult:
    name: str | None
    user_count: int
    total_users: int
    percentage: float
    sample_users: list[str]

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "type": "segment", "userCount": self.user_count,
                "totalUsers": self.total_users, "percentage": self.percentage,
                "sampleUsers": self.sample_users}


@dataclass(frozen=True)
class VariantMoments:
    """What a backend counts for one variant value: the partial aggregates the A/B
    statistics need (exposed users, converted users, the metric's mean, variance, sum)."""

    exposures: int
    conversions: int
    mean: float
    variance: float
    total: float


@dataclass(frozen=True)
class AbExposures:
    """A backend's A/B partials: every variant value seen (`labels`), the indexes of those
    with exposures (`present`) and their moments, and the exposure totals."""

    labels: list[Any]
    present: list[int]
    moments: dict[int, VariantMoments]
    total_exposures: int
    excluded_users: int


@dataclass(frozen=True)
class AbTestResult:
    """The A/B answer; variants and comparisons are built by the pure statistics in
    `rta.core.queries.abtest` (their JSON objects, already in the API's shape)."""

    name: Any
    event_type: str
    variant_property: str
    metric_event: str
    metric_property: str | None
    control: Any
    confidence_level: float
    alpha: float
    correction: str | None
    adjusted_alpha: float
    minimum_sample_size: int
    total_exposures: int
    excluded_users: int
    variants: tuple[dict[str, Any], ...]
    comparisons: tuple[dict[str, Any], ...]
    verdict: str
    winner: Any
    sample_ratio_mismatch: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name, "eventType": self.event_type,
            "variantProperty": self.variant_property, "metricEvent": self.metric_event,
            "metricProperty": self.metric_property, "control": self.control,
            "confidenceLevel": self.confidence_level, "alpha": self.alpha,
            "correction": self.correction, "adjustedAlpha": self.adjusted_alpha,
            "minimumSampleSize": self.minimum_sample_size,
            "totalExposures": self.total_exposures, "excludedUsers": self.excluded_users,
            "variants": list(self.variants), "comparisons": list(self.comparisons),
            "verdict": self.verdict, "winner": self.winner,
            "sampleRatioMismatch": self.sample_ratio_mismatch}


BehaviourResult = FunnelResult | CohortResult | SegmentResult | AbTestResult


@dataclass(frozen=True)
class ExecuteResult:
    """POST /queries/execute: the query's own answer with `type` and `name` first, and for a
    saved segment (`"save": true`) the stored document as `segment`."""

    type: str
    name: Any
    result: BehaviourResult
    saved: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        out = {"type": self.type, "name": self.name, **self.result.to_json()}
        if self.saved is not None:
            out["segment"] = self.saved
        return out
