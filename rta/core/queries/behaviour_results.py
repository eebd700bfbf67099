"""Typed behavioural results; `to_json()` gives the API's response body, field for field.

Thread rule: pure functions over their arguments; any thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rta.core.queries.intervals import wilson_pct
from rta.core.queries.paths_results import PathsResult
from rta.core.queries.stickiness_results import LifecycleResult, StickinessResult


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
        """Each step after the first also gets the 95% Wilson intervals of its rates."""
        steps = [s.to_json() for s in self.steps]
        for k in range(1, len(steps)):
            count = self.steps[k].count
            steps[k]["conversionInterval"] = wilson_pct(count, self.steps[k - 1].count)
            steps[k]["overallConversionInterval"] = wilson_pct(count, self.steps[0].count)
        if steps:
            steps[0]["conversionInterval"] = steps[0]["overallConversionInterval"] = None
        return {"steps": steps, "totalEntered": self.total_entered,
                "totalCompleted": self.total_completed,
                "overallConversionRate": self.overall_conversion_rate,
                "overallConversionInterval": wilson_pct(self.total_completed,
                                                        self.total_entered)}


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
        """`intervals`: the 95% Wilson interval of each percentage (None where it is)."""
        return {"cohort": self.cohort, "startTime": self.start_time, "date": self.date,
                "size": self.size, "counts": self.counts, "percentages": self.percentages,
                "intervals": [wilson_pct(c, self.size) for c in self.counts]}


@dataclass(frozen=True)
class CohortAverage:
    size: int
    counts: list[int | None]
    percentages: list[float | None]
    intervals: list[list[float] | None]  # 95% Wilson, over the cohorts each period covers

    def to_json(self) -> dict[str, Any]:
        return {"size": self.size, "counts": self.counts, "percentages": self.percentages,
                "intervals": self.intervals}


@dataclass(frozen=True)
class CohortBreakdown:
    """One value of the breakdown property (None = not set) and its own grid."""

    value: Any
    total_users: int
    cohorts: tuple[CohortRow, ...]
    average: CohortAverage

    def to_json(self) -> dict[str, Any]:
        return {"value": self.value, "totalUsers": self.total_users,
                "cohorts": [c.to_json() for c in self.cohorts],
                "average": self.average.to_json()}


@dataclass(frozen=True)
class CohortResult:
    name: Any
    entry_event: str | None
    retention_event: str | None
    retention_type: str
    criterion: str
    periods: int
    period_length: int
    start_time: int
    end_time: int
    total_users: int
    cohorts: tuple[CohortRow, ...]
    average: CohortAverage
    breakdown_property: str | None = None
    breakdown_truncated: bool = False
    breakdown: tuple[CohortBreakdown, ...] = ()
    unit: str = "users"  # "group:<type>": totalUsers and the cells count groups

    def to_json(self) -> dict[str, Any]:
        out = {"name": self.name, "entryEvent": self.entry_event,
               "retentionEvent": self.retention_event, "retentionType": self.retention_type,
               "criterion": self.criterion, "periods": self.periods,
               "periodLength": self.period_length, "startTime": self.start_time,
               "endTime": self.end_time, "totalUsers": self.total_users,
               "cohorts": [c.to_json() for c in self.cohorts],
               "average": self.average.to_json()}
        if self.breakdown_property is not None:
            out["breakdownProperty"] = self.breakdown_property
            out["breakdownTruncated"] = self.breakdown_truncated
            out["breakdown"] = [g.to_json() for g in self.breakdown]
        if self.unit != "users":
            out["unit"] = self.unit
        return out


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
class VariantMetric:
    """A variant's metric (the `metricProperty` values of its exposed users)."""

    mean: float
    std_dev: float
    total: float


@dataclass(frozen=True)
class VariantStats:
    name: Any
    is_control: bool
    exposures: int
    conversions: int
    conversion_rate: float
    conversion_interval: tuple[float, float] | None
    sufficient_sample: bool
    metric: VariantMetric | None = None  # only when the test has a metric property

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name, "isControl": self.is_control, "exposures": self.exposures,
            "conversions": self.conversions, "conversionRate": self.conversion_rate,
            "conversionInterval": None if self.conversion_interval is None
            else list(self.conversion_interval),
            "sufficientSample": self.sufficient_sample}
        if self.metric is not None:
            out.update(metricMean=self.metric.mean, metricStdDev=self.metric.std_dev,
                       metricTotal=self.metric.total)
        return out


@dataclass(frozen=True)
class MetricComparison:
    """Welch's t-test of a variant's metric mean against the control's."""

    mean_difference: float
    t_statistic: float
    degrees_of_freedom: float
    p_value: float
    adjusted_p_value: float
    interval: tuple[float, float]
    significant: bool

    def to_json(self) -> dict[str, Any]:
        return {"meanDifference": self.mean_difference, "tStatistic": self.t_statistic,
                "degreesOfFreedom": self.degrees_of_freedom, "pValue": self.p_value,
                "adjustedPValue": self.adjusted_p_value, "interval": list(self.interval),
                "significant": self.significant}


@dataclass(frozen=True)
class Comparison:
    """One variant against the control: conversion difference, lift, tests, verdict."""

    variant: Any
    control: Any
    difference: float
    lift: float | None
    lift_interval: tuple[float, float] | None
    z_score: float | None
    p_value: float | None
    adjusted_p_value: float | None
    probability_to_beat_control: float
    significant: bool
    verdict: str
    has_metric: bool = False  # whether `metric` is part of the answer (it may be None)
    metric: MetricComparison | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "variant": self.variant, "control": self.control, "difference": self.difference,
            "lift": self.lift,
            "liftInterval": None if self.lift_interval is None else list(self.lift_interval),
            "zScore": self.z_score, "pValue": self.p_value,
            "adjustedPValue": self.adjusted_p_value,
            "probabilityToBeatControl": self.probability_to_beat_control}
        if self.has_metric:
            out["metric"] = None if self.metric is None else self.metric.to_json()
        out["significant"] = self.significant
        out["verdict"] = self.verdict
        return out


@dataclass(frozen=True)
class SampleRatio:
    """The sample-ratio-mismatch check: exposures against the expected split."""

    chi_square: float
    p_value: float
    detected: bool
    threshold: float
    expected: tuple[float, ...]

    def to_json(self) -> dict[str, Any]:
        return {"chiSquare": self.chi_square, "pValue": self.p_value, "detected": self.detected,
                "threshold": self.threshold, "expected": list(self.expected)}


@dataclass(frozen=True)
class AbTestResult:
    """The A/B answer; variants and comparisons come from the pure statistics in
    `rta.core.queries.abtest`."""

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
    variants: tuple[VariantStats, ...]
    comparisons: tuple[Comparison, ...]
    verdict: str
    winner: Any
    sample_ratio_mismatch: SampleRatio

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name, "eventType": self.event_type,
            "variantProperty": self.variant_property, "metricEvent": self.metric_event,
            "metricProperty": self.metric_property, "control": self.control,
            "confidenceLevel": self.confidence_level, "alpha": self.alpha,
            "correction": self.correction, "adjustedAlpha": self.adjusted_alpha,
            "minimumSampleSize": self.minimum_sample_size,
            "totalExposures": self.total_exposures, "excludedUsers": self.excluded_users,
            "variants": [v.to_json() for v in self.variants],
            "comparisons": [c.to_json() for c in self.comparisons],
            "verdict": self.verdict, "winner": self.winner,
            "sampleRatioMismatch": self.sample_ratio_mismatch.to_json()}


BehaviourResult = (FunnelResult | CohortResult | SegmentResult | AbTestResult | PathsResult
                   | StickinessResult | LifecycleResult)


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
