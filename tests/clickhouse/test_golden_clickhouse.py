"""Parity through the product's own surface: the golden suite (every HTTP endpoint and CLI
data command, error cases included, over the fixed data set loaded through POST
/events/batch) run against `rta serve --backend clickhouse` on chdb, compared with the
answers recorded on the embedded engine. Only what describes the daemon itself may differ."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.golden.harness import Run, differences, golden_daemon, read_answers, run_cases

# What describes the daemon, not the data: stats, health and metrics carry a `clickhouse`
# section, and the local store's counters hold the recent window only.
DAEMON_WORDS = ("stats", "health", "metrics")


def _daemon_case(name: str) -> bool:
    return any(name.startswith(w) or f".{w}" in name or f"/{w}" in name for w in DAEMON_WORDS)


def _differences(expected: Any, actual: Any, path: str = "") -> Iterator[str]:
    """Like the golden suite's comparison, but floats equal to 1e-9 (sums in another order)
    and HyperLogLog estimates equal within three of their standard errors."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        if expected.get("approximate") is True and "standardError" in expected:
            bound = 3 * float(expected["standardError"]) + 1
            if abs(actual.get("uniqueUsers", 0) - expected["uniqueUsers"]) > bound:
                yield f"{path}.uniqueUsers: {actual.get('uniqueUsers')}, expected " \
                      f"{expected['uniqueUsers']} +- {bound:.0f}"
            expected = {k: v for k, v in expected.items() if k not in APPROXIMATE}
            actual = {k: v for k, v in actual.items() if k not in APPROXIMATE}
        for key in sorted(set(expected) | set(actual)):
            if key not in actual or key not in expected:
                yield f"{path}.{key}: only one side has it"
            else:
                yield from _differences(expected[key], actual[key], f"{path}.{key}")
        return
    if isinstance(expected, list) and isinstance(actual, list):
        if len(expected) != len(actual):
            yield f"{path}: {len(actual)} items, expected {len(expected)}"
            return
        for i, (e, a) in enumerate(zip(expected, actual, strict=True)):
            yield from _differences(e, a, f"{path}[{i}]")
        return
    numbers = all(isinstance(v, int | float) and not isinstance(v, bool)
                  for v in (expected, actual))
    if numbers and (isinstance(expected, float) or isinstance(actual, float)):
        if not math.isclose(expected, actual, rel_tol=1e-9, abs_tol=1e-9):
            yield f"{path}: {actual!r}, expected {expected!r}"
        return
    if expected != actual:
        yield from differences(expected, actual, path)


APPROXIMATE = {"uniqueUsers", "standardError", "buckets"}


def _shipped(client: httpx.Client) -> None:
    deadline = time.monotonic() + 120
    while True:
        ch = client.get("/stats").json()["clickhouse"]
        if ch["lagEvents"] == 0 and ch["backlogBytes"] == 0:
            return
        assert time.monotonic() < deadline, ch
        time.sleep(0.2)


@pytest.fixture(scope="module")
def clickhouse_run() -> Iterator[Run]:
    with golden_daemon("--backend", "clickhouse", "--clickhouse-url", "chdb://{tmp}/ch",
                       settle=_shipped) as daemon:
        yield run_cases(daemon)


def test_every_endpoint_answers_as_on_the_embedded_engine(clickhouse_run: Run) -> None:
    recorded = read_answers()
    report: list[str] = []
    for area, answers in clickhouse_run.answers.items():
        for name, actual in answers.items():
            if _daemon_case(name) or name not in recorded.get(area, {}):
                continue
            diffs = list(_differences(recorded[area][name], actual))
            if diffs:
                report.append(f"{area}/{name}:\n  " + "\n  ".join(diffs[:6]))
    if report:
        with open("/tmp/golden-ch-report.txt", "w") as f:
            f.write("\n".join(report))
    assert not report, f"{len(report)} answers differ on ClickHouse:\n" + "\n".join(report[:25])


