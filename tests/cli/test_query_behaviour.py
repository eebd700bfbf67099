"""`rta query funnel|cohort|abtest|segment` and `rta segment ...` against a real daemon."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.cli.conftest import rta
from tests.support import ServeProcess


@pytest.fixture(scope="module")
def seeded(daemon: ServeProcess) -> Iterator[ServeProcess]:
    t = int(time.time() * 1000) - 3_600_000
    events = []
    for i in range(12):
        u = f"cli_{i}"
        events.append({"type": "pageview", "userId": u, "timestamp": t,
                       "properties": {"plan": "premium" if i < 5 else "free"}})
        if i < 6:
            events.append({"type": "click", "userId": u, "timestamp": t + 60_000,
                           "properties": {"category": "products"}})
        if i < 3:
            events.append({"type": "form_submit", "userId": u, "timestamp": t + 120_000})
        events.append({"type": "experiment_assigned", "userId": u, "timestamp": t,
                       "properties": {"variant": "control" if i % 2 else "variant_a"}})
    r = httpx.post(f"{daemon.url}/events/batch", json=events)
    assert r.status_code < 300, r.text
    yield daemon


def test_funnel_json_and_bars(seeded: ServeProcess) -> None:
    args = ["query", "funnel", "--step", "pageview", "--step", "click:category=products",
            "--step", "form_submit", "--window", "1h", "--server", seeded.url]
    r = rta(*args, "--json")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert [s["count"] for s in data["steps"]] == [12, 6, 3]
    r = rta(*args, "--breakdown", "plan")
    assert r.returncode == 0, r.stderr
    assert "click:category=products" in r.stdout and "50.0%" in r.stdout
    assert "█" in r.stdout and "plan = premium" in r.stdout


def test_cohort_abtest_segment(seeded: ServeProcess) -> None:
    r = rta("query", "cohort", "--entry", "pageview", "--return", "click", "--periods", "3",
            "--server", seeded.url)
    assert r.returncode == 0, r.stderr
    assert "average" in r.stdout and "P3" in r.stdout
    r = rta("query", "abtest", "--metric", "form_submit", "--min-sample", "5",
            "--server", seeded.url)
    assert r.returncode == 0, r.stderr
    assert "variant_a" in r.stdout and "(control)" in r.stdout
    assert "SIGNIFICANT" in r.stdout  # the verdict panel
    r = rta("query", "segment", "--where", "plan=premium", "--performed", "click",
            "--server", seeded.url, "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["userCount"] == 5


def test_segment_commands(seeded: ServeProcess) -> None:
    r = rta("segment", "create", "Premium CLI", "--where", "plan=premium",
            "--server", seeded.url, "--json")
    assert r.returncode == 0, r.stderr
    seg_id = json.loads(r.stdout)["id"]
    r = rta("segment", "list", "--server", seeded.url)
    assert "Premium CLI" in r.stdout and "plan eq premium" in r.stdout
    r = rta("segment", "show", "Premium CLI", "--server", seeded.url, "--json")
    assert json.loads(r.stdout)["userCount"] == 5
    r = rta("query", "funnel", "--step", "pageview", "--step", "click", "--segment",
            "Premium CLI", "--server", seeded.url, "--json")
    assert [s["count"] for s in json.loads(r.stdout)["steps"]] == [5, 5]
    r = rta("segment", "delete", seg_id, "--server", seeded.url)
    assert r.returncode == 0 and "deleted" in r.stderr
    r = rta("segment", "show", seg_id, "--server", seeded.url)
    assert r.returncode == 4 and "no segment" in r.stderr


def test_bad_input_exit_codes(seeded: ServeProcess) -> None:
    r = rta("query", "funnel", "--step", "pageview", "--server", seeded.url)
    assert r.returncode == 4 and "steps" in r.stderr
    r = rta("query", "funnel", "--step", "a", "--step", "b", "--order", "sideways",
            "--server", seeded.url)
    assert r.returncode == 2 and "--order" in r.stderr  # a closed set: checked by the CLI
