"""`rta query aggregate --series/--formula` and `--compare` against a real daemon."""

from __future__ import annotations

import json

import httpx
import pytest
import typer

from tests.cli.conftest import rta
from tests.support import ServeProcess

BASE = 1_700_000_000_000 - 1_700_000_000_000 % 3_600_000
STEP = 60_000


@pytest.fixture(scope="module")
def loaded(daemon: ServeProcess) -> str:
    events = [{"type": "pageview" if i % 4 else "signup", "userId": f"u{i % 5}",
               "timestamp": BASE + i * STEP, "properties": {"plan": "pro" if i % 8 else "free"}}
              for i in range(40)]
    r = httpx.post(f"{daemon.url}/events/batch", json=events)
    assert r.status_code == 202
    return daemon.url


def test_formula_and_compare(loaded: str) -> None:
    args = ["query", "aggregate", "--server", loaded, "--series", "A=signup",
            "--series", "B=pageview:count;plan=pro", "--formula", "A/B*100", "-i", "20m",
            "--since", str(BASE + 20 * STEP), "--until", str(BASE + 40 * STEP - 1), "--compare"]
    res = rta(*args, "--json")
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    # i in 20..39: signups at multiples of 4 (5), pro pageviews: i % 4 and i % 8 (15)
    assert data["total"]["value"] == 5 / 15 * 100
    assert data["series"][1]["total"]["value"] == 15
    assert data["comparison"]["value"] == 5 / 15 * 100  # i in 0..19 alike
    res = rta(*args)
    assert res.returncode == 0, res.stderr
    assert "A/B*100" in res.stdout and "previous period" in res.stdout
    assert "change 0" in res.stdout

    res = rta("query", "count", "--server", loaded, "-t", "signup", "--since",
              str(BASE + 20 * STEP), "--until", str(BASE + 40 * STEP - 1), "--compare")
    assert res.returncode == 0, res.stderr
    assert "poisson_exact_conditional" in res.stdout and "not significant" in res.stdout


@pytest.mark.parametrize("spec", ["A", "=signup", "A=", "A=a:b:c:d", "A=signup;plan="])
def test_bad_series_option_is_a_usage_error(spec: str, capsys: pytest.CaptureFixture[str]
                                            ) -> None:
    from rta.cli.query_formula import parse_series

    with pytest.raises(typer.Exit) as info:
        parse_series([spec])
    assert info.value.exit_code == 2
    assert f"--series {spec!r}" in capsys.readouterr().err


def test_series_option_forms() -> None:
    from rta.cli.query_formula import parse_series

    assert parse_series(["R=purchase:sum:amount;plan=pro", "U=visit:unique_users"]) == [
        {"name": "R", "eventType": "purchase", "aggregation": "sum", "property": "amount",
         "where": [{"property": "plan", "operator": "eq", "value": "pro"}]},
        {"name": "U", "eventType": "visit", "aggregation": "unique_users"}]
