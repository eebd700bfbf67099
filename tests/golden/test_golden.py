"""Golden test (issue #16): every endpoint and CLI data command answers as recorded.

One daemon with the fixed data set runs every case of `cases.py` in order; each area's
answers are compared with `answers/<area>.json`. Re-record with
`.venv/bin/python -m tests.golden.record` (only when a change of behaviour is intended).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.golden.cases import CASES
from tests.golden.harness import Run, differences, golden_daemon, read_answers, run_cases

AREAS = list(dict.fromkeys(c.area for c in CASES))
SHOWN = 12  # mismatching cases reported per area


@pytest.fixture(scope="module")
def golden_run() -> Iterator[Run]:
    with golden_daemon() as daemon:
        yield run_cases(daemon)


@pytest.fixture(scope="module")
def recorded() -> dict[str, dict[str, Any]]:
    answers = read_answers()
    if not answers:
        pytest.fail("no recorded answers: run `.venv/bin/python -m tests.golden.record`")
    return answers


def test_cases_and_answers_match(recorded: dict[str, dict[str, Any]]) -> None:
    """Every case has a recorded answer and every answer a case (no stale recordings)."""
    names = {(c.area, c.name) for c in CASES}
    stored = {(area, name) for area, answers in recorded.items() for name in answers}
    assert sorted(names - stored) == [], "cases without answers: re-record"
    assert sorted(stored - names) == [], "answers without cases: re-record"


@pytest.mark.parametrize("area", AREAS)
def test_golden(area: str, golden_run: Run, recorded: dict[str, dict[str, Any]]) -> None:
    expected = recorded.get(area, {})
    actual = golden_run.answers.get(area, {})
    report = []
    for name in actual:
        if name not in expected:
            continue
        diffs = list(differences(expected[name], actual[name]))
        if diffs:
            report.append(f"{area}/{name}:\n  " + "\n  ".join(diffs[:10])
                          + (f"\n  … {len(diffs) - 10} more" if len(diffs) > 10 else ""))
    if report:
        shown = "\n".join(report[:SHOWN])
        more = f"\n… and {len(report) - SHOWN} more cases" if len(report) > SHOWN else ""
        pytest.fail(f"{len(report)} of {len(actual)} {area} answers differ from the recording "
                    f"(answers/{area}.json):\n{shown}{more}", pytrace=False)
