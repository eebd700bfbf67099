"""`rta query aggregate|count|unique|top` against a real daemon process."""

from __future__ import annotations

import json

import httpx
import pytest

from rta.cli.query_analytics import bar, sparkline
from tests.cli.conftest import rta
from tests.support import ServeProcess

BASE = 1_700_000_000_000 - 1_700_000_000_000 % 3_600_000
STEP = 60_000


@pytest.fixture(scope="module")
def loaded(daemon: ServeProcess) -> str:
    events = [{"type": "pageview" if i % 4 else "signup", "userId": f"u{i % 5}",
               "timestamp": BASE + i * STEP,
               "properties": {"page": ["/home", "/docs", "/ünï"][i % 3], "duration": i * 10}}
              for i in range(40)]
    r = httpx.post(f"{daemon.url}/events/batch", json=events)
    assert r.status_code == 202
    return daemon.url


def test_aggregate_json_and_table(loaded: str) -> None:
    args = ["query", "aggregate", "--server", loaded, "-t", "pageview", "-m", "duration",
            "-a", "sum", "-i", "10m", "--since", str(BASE), "--until",
            str(BASE + 40 * STEP - 1), "-w", "duration>=100"]
    res = rta(*args, "--json")
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    expected = sum(i * 10 for i in range(40) if i % 4 and i * 10 >= 100)
    assert data["total"]["value"] == expected
    assert len(data["buckets"]) == 4
    res = rta(*args)
    assert res.returncode == 0, res.stderr
    assert "sum(duration)" in res.stdout and "2023-11-14T22:00:00.000Z" in res.stdout
    assert any(ch in res.stdout for ch in "▁▂▃▄▅▆▇█")


def test_aggregate_grouped_table(loaded: str) -> None:
    res = rta("query", "aggregate", "--server", loaded, "-g", "page", "-i", "1h",
              "--since", str(BASE), "--until", str(BASE + 40 * STEP - 1))
    assert res.returncode == 0, res.stderr
    assert "/ünï" in res.stdout and "/home" in res.stdout


def test_count_and_top(loaded: str) -> None:
    res = rta("query", "count", "--server", loaded, "-g", "type", "--json")
    data = json.loads(res.stdout)
    assert {g["key"]: g["count"] for g in data["groups"]} == {"pageview": 30, "signup": 10}
    res = rta("query", "count", "--server", loaded, "-g", "page", "-w", "page!=/docs")
    assert res.returncode == 0, res.stderr
    assert "/docs" not in res.stdout and "/home" in res.stdout
    res = rta("query", "top", "page", "--server", loaded, "-n", "2", "--sort", "users")
    assert res.returncode == 0, res.stderr
    assert "share" in res.stdout and "(other)" in res.stdout


def test_unique(loaded: str) -> None:
    res = rta("query", "unique", "--server", loaded, "--json")
    assert json.loads(res.stdout)["uniqueUsers"] == 5
    res = rta("query", "unique", "--server", loaded, "-i", "10m", "--approximate",
              "--since", str(BASE), "--until", str(BASE + 40 * STEP - 1))
    assert res.returncode == 0, res.stderr
    assert "unique users" in res.stdout and "±" in res.stdout


def test_errors_exit_codes(loaded: str) -> None:
    res = rta("query", "aggregate", "--server", loaded, "-a", "mode")
    assert res.returncode == 2  # a closed set: checked by the CLI before any request
    assert "--agg" in res.stderr and res.stdout == ""
    res = rta("query", "count", "--server", loaded, "-w", "nonsense")
    assert res.returncode == 2
    res = rta("query", "count", "--server", "http://127.0.0.1:9")
    assert res.returncode == 3


def test_sparkline_and_bar() -> None:
    assert sparkline([0, 1, 2, 3, 4, 5, 6, 7]) == "▁▂▃▄▅▆▇█"
    assert sparkline([1, None, 1]) == "█ █"
    assert sparkline([]) == ""
    assert len(sparkline(list(range(1000)), 50)) == 50
    assert bar(1.0, 10) == "█" * 10 and bar(0.0) == ""
    assert bar(0.5, 3) == "█▌"
