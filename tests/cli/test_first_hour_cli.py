"""Issue #23 from the CLI, as a newcomer meets it: typos warn instead of answering a
confident zero, and the tables read well (against a real daemon process)."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.cli.conftest import rta
from tests.support import ServeProcess

BASE = 1_700_000_000_000 - 1_700_000_000_000 % 3_600_000


@pytest.fixture(scope="module")
def loaded(daemon: ServeProcess) -> str:
    events = [{"type": "signup" if i % 3 == 0 else "pageview", "userId": f"u{i % 4}",
               "timestamp": BASE + i * 60_000,
               "properties": {"plan": ["pro", "free"][i % 2], "amount": i}}
              for i in range(30)]
    r = httpx.post(f"{daemon.url}/events/batch", json=events)
    assert r.status_code == 202
    return daemon.url


@pytest.mark.parametrize("args, expected", [
    (["events", "-w", "pla=pro"], "no events carry property 'pla' (did you mean 'plan'?)"),
    (["events", "-t", "signups"],
     "no events of type 'signups' have been stored (did you mean 'signup'?)"),
    (["query", "count", "-w", "amount>abc"],
     "property 'amount' holds number values, so comparing it with string 'abc' (gt) "
     "matches no event"),
    (["query", "count", "-t", "signups"], "did you mean 'signup'?"),
    (["query", "unique", "-w", "pla=pro"], "did you mean 'plan'?"),
    (["query", "aggregate", "-g", "pln", "-i", "1h"], "did you mean 'plan'?"),
    (["query", "top", "plna"], "did you mean 'plan'?"),
    (["query", "funnel", "--step", "signup", "--step", "pageviews"],
     "did you mean 'pageview'?"),
    (["query", "cohort", "--entry", "signups"], "did you mean 'signup'?"),
])
def test_typos_answer_with_a_warning_on_stderr(loaded: str, args: list[str],
                                               expected: str) -> None:
    res = rta(*args, "--server", loaded)
    assert res.returncode == 0, res.stderr
    assert "warning: " in res.stderr and expected in res.stderr, res.stderr
    assert "warning" not in res.stdout
    res = rta(*args, "--server", loaded, "--json")
    assert res.returncode == 0, res.stderr
    assert any(expected in w["message"] for w in json.loads(res.stdout)["warnings"])


def test_a_correct_query_has_no_warning(loaded: str) -> None:
    res = rta("query", "count", "-t", "signup", "-w", "plan=pro", "-w", "amount>3",
              "--server", loaded, "--json")
    assert res.returncode == 0 and "warning" not in res.stderr
    assert "warnings" not in json.loads(res.stdout)


@pytest.mark.parametrize("where", ["plan==", "plan=", "amount>>3"])
def test_a_filter_without_a_value_is_a_usage_error(loaded: str, where: str) -> None:
    res = rta("events", "-w", where, "--server", loaded)
    assert res.returncode == 2
    assert "cannot read filter" in res.stderr
