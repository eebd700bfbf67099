"""Minimal Prometheus-style metrics: counters and fixed-bucket histograms, text exposition.

Thread rule: counters are bumped on the event loop; rendering may read them from any thread
(plain numbers).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                   5.0, 10.0)


def _labels(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    inner = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels.items()))
    return "{" + inner + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


@dataclass
class Counter:
    name: str
    help: str
    values: dict[tuple[tuple[str, str], ...], float] = field(default_factory=dict)

    def inc(self, amount: float = 1, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        self.values[key] = self.values.get(key, 0) + amount

    def render(self) -> Iterable[str]:
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} counter"
        if not self.values:
            yield f"{self.name} 0"
        for key, value in self.values.items():
            yield f"{self.name}{_labels(dict(key))} {value:g}"


@dataclass
class Histogram:
    name: str
    help: str
    buckets: tuple[float, ...] = LATENCY_BUCKETS
    series: dict[tuple[tuple[str, str], ...], list[float]] = field(default_factory=dict)

    def observe(self, value: float, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        counts = self.series.get(key)
        if counts is None:
            counts = self.series[key] = [0.0] * (len(self.buckets) + 2)  # buckets, sum, count
        counts[bisect.bisect_left(self.buckets, value)] += 1
        counts[-2] += value
        counts[-1] += 1

    def render(self) -> Iterable[str]:
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} histogram"
        for key, counts in self.series.items():
            labels = dict(key)
            running = 0.0
            for bound, count in zip(self.buckets, counts, strict=False):
                running += count
                yield f"{self.name}_bucket{_labels({**labels, 'le': f'{bound:g}'})} {running:g}"
            running += counts[len(self.buckets)]
            yield f"{self.name}_bucket{_labels({**labels, 'le': '+Inf'})} {running:g}"
            yield f"{self.name}_sum{_labels(labels)} {counts[-2]:g}"
            yield f"{self.name}_count{_labels(labels)} {counts[-1]:g}"


@dataclass
class Gauge:
    name: str
    help: str
    read: Callable[[], float]

    def render(self) -> Iterable[str]:
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} gauge"
        yield f"{self.name} {self.read():g}"


class Registry:
    def __init__(self) -> None:
        self.metrics: dict[str, Counter | Histogram | Gauge] = {}

    def counter(self, name: str, help: str) -> Counter:
        metric = self.metrics.setdefault(name, Counter(name, help))
        assert isinstance(metric, Counter)
        return metric

    def histogram(self, name: str, help: str,
                  buckets: tuple[float, ...] = LATENCY_BUCKETS) -> Histogram:
        metric = self.metrics.setdefault(name, Histogram(name, help, buckets))
        assert isinstance(metric, Histogram)
        return metric

    def gauge(self, name: str, help: str, read: Callable[[], float]) -> Gauge:
        metric = Gauge(name, help, read)
        self.metrics[name] = metric
        return metric

    def render(self) -> str:
        lines: list[str] = []
        for metric in self.metrics.values():
            lines.extend(metric.render())
        return "\n".join(lines) + "\n"
