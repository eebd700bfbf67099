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
    r = rta("query", "stickiness", "login", "--where", "plan=pro", "--server", daemon.url)
    assert r.returncode == 0, r.stderr
    assert "Stickiness: login (1 users" in r.stdout and "100.0%" in r.stdout

    r = rta("query", "lifecycle", "login", "--server", daemon.url, "--json")
    assert r.returncode == 0, r.stderr
    life = json.loads(r.stdout)
    assert life["totals"]["new"] == 3 and len(life["periods"]) == 8
    r = rta("query", "lifecycle", "login", "--interval", "week", "--server", daemon.url)
    assert r.returncode == 0, r.stderr
    assert "resurrecting" in r.stdout and "total" in r.stdout


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
    r = rta("query", "cohort", "--periods", "2", "--server", daemon.url)
    assert r.returncode == 2 and "--entry" in r.stderr
