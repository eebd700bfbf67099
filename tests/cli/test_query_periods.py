"""`rta query stickiness|lifecycle` against a real daemon: tables and --json."""

from __future__ import annotations

import json
import time

import httpx

from tests.cli.conftest import rta
from tests.support import ServeProcess

DAY = 86_400_000


def test_stickiness_and_lifecycle_commands(daemon: ServeProcess) -> None:
    today = int(time.time() * 1000) // DAY * DAY
    events = [{"type": "login", "userId": u, "timestamp": today - d * DAY + 1000,
               "properties": {"plan": "pro" if u == "a" else "free"}}
              for u, days in (("a", (0, 1, 2)), ("b", (0,)), ("c", (2, 4))) for d in days]
    r = httpx.post(f"{daemon.url}/events/batch", json=events)
    assert r.status_code < 300, r.text

    r = rta("query", "stickiness", "login", "--range", "last_7d", "--server", daemon.url,
            "--json")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert [s["users"] for s in data["stickiness"][:3]] == [1, 1, 1]
    r = rta("query", "lifecycle", "login", "--where", "plan=free", "--server", daemon.url)
    assert r.returncode == 0, r.stderr
    assert "Lifecycle: login per day" in r.stdout and "resurrecting" in r.stdout
    assert "total" in r.stdout


def test_cohort_breakdown_options(daemon: ServeProcess) -> None:
    today = int(time.time() * 1000) // DAY * DAY
    events = [{"type": "join", "userId": f"j{i}", "timestamp": today - 2 * DAY + i,
               "properties": {"plan": "pro" if i < 2 else "free"}} for i in range(5)]
    events += [{"type": "join", "userId": "j0", "timestamp": today - DAY + 9}]
    r = httpx.post(f"{daemon.url}/events/batch", json=events)
    assert r.status_code < 300, r.text
    r = rta("query", "cohort", "--entry", "join", "--periods", "2", "--breakdown", "plan",
            "--server", daemon.url, "--json")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert [g["value"] for g in data["breakdown"]] == ["free", "pro"]
    r = rta("query", "cohort", "--entry-where", "plan=pro", "--periods", "2", "-b", "plan",
            "--server", daemon.url)
    assert r.returncode == 0, r.stderr
    assert "filtered events" in r.stdout and "plan = pro" in r.stdout
