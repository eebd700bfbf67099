"""The OpenAPI document is complete, and schemathesis finds no 5xx anywhere in it."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from rta.core import Engine
from rta.server.app import create_app
from rta.server.openapi import build_spec
from tests.support import ServeProcess


def test_every_route_is_described() -> None:
    spec, missing = build_spec(create_app(Engine()))
    assert missing == []
    assert "/events/batch" in spec["paths"] and "post" in spec["paths"]["/queries/funnel"]


@pytest.fixture(scope="module")
def fuzz_target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    proc = ServeProcess(str(tmp_path_factory.mktemp("fuzz") / "data"))
    url = proc.start()
    events = [{"type": t, "userId": f"u{i % 5}", "properties": {"page": f"/p{i % 3}", "n": i}}
              for i, t in enumerate(["pageview", "click", "signup", "purchase"] * 10)]
    httpx.post(f"{url}/events/batch", json=events).raise_for_status()
    yield url
    proc.stop()


def test_no_server_errors(fuzz_target: str) -> None:
    """Every operation, fuzzed from its schema (bounded examples): never a 5xx, and every
    4xx carries the JSON error body."""
    schema = schemathesis.openapi.from_url(f"{fuzz_target}/openapi.json")
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.path == "/ws":
            continue
        operations += 1

        @given(case=operation.as_strategy())
        @settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck),
                  database=None)
        def check(case: schemathesis.Case) -> None:
            response = case.call(base_url=fuzz_target, timeout=30)
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.formatted_path} -> "
                                f"{response.status_code}: {response.text[:200]}")
            elif response.status_code >= 400 and case.path != "/":
                body = response.json()
                assert set(body["error"]) >= {"code", "message", "details"}, body

        check()
    assert operations > 40
    assert not failures, "\n".join(failures[:20])
