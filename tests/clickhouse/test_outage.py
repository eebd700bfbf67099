"""ClickHouse going away under a running daemon (#17, faults): ingest keeps acknowledging
into the WAL, queries answer 503 with the reason at once, /health says degraded, ingest is
refused (503) once the backlog fills its bound, and everything acknowledged ships, once,
when ClickHouse is back."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from rta.core.clickhouse.connection import ClickHouse, ClickHouseError
from rta.core.config import EngineConfig
from tests.clickhouse.harness import CHDB_DIR
from tests.support import live_server

T0 = 1_700_000_000_000


def _events(n: int, start: int) -> list[dict[str, Any]]:
    return [{"type": "tick", "userId": f"u{i % 5}", "timestamp": T0 + start + i,
             "properties": {"pad": "x" * 200}} for i in range(n)]


async def _shipped(client: httpx.AsyncClient, timeout: float = 30) -> dict[str, Any]:
    with trio.fail_after(timeout):
        while True:
            ch = (await client.get("/stats")).json()["clickhouse"]
            if ch["lagEvents"] == 0 and ch["backlogBytes"] == 0 and ch["reachable"]:
                return dict(ch)
            await trio.sleep(0.1)


async def test_outage_acks_refuses_queries_and_catches_up(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    database = f"t_{uuid.uuid4().hex[:12]}"
    config = EngineConfig(data_dir=str(tmp_path / "data"), fsync=False, backend="clickhouse",
                          clickhouse_url=f"chdb://{CHDB_DIR}?database={database}",
                          clickhouse_max_backlog_mb=1)
    down = False
    real_call = ClickHouse._call

    def call(self: ClickHouse, method: str, *args: Any, **kwargs: Any) -> Any:
        if down:
            raise ClickHouseError(f"ClickHouse ({self.target.display}): [Errno 111] "
                                  "Connection refused")
        return real_call(self, method, *args, **kwargs)

    monkeypatch.setattr(ClickHouse, "_call", call)
    params = {"startTime": T0, "endTime": T0 + 10**9}
    async with live_server(config) as srv, httpx.AsyncClient(base_url=srv.url,
                                                             timeout=30) as client:
        r = await client.post("/events/batch", json={"events": _events(100, 0)})
        assert r.status_code in (200, 202)
        await _shipped(client)
        down = True
        r = await client.post("/events/batch", json={"events": _events(100, 1000)})
        assert r.status_code in (200, 202), r.text  # acknowledged into the WAL
        with trio.fail_after(5):  # answered at once, not after the read-your-writes wait
            r = await client.get("/analytics/count", params=params)
        assert r.status_code == 503
        error = r.json()["error"]
        assert error["code"] == "backend_unavailable" and "Connection refused" in \
            error["message"]
        with trio.fail_after(10):
            while (await client.get("/health")).json()["status"] != "degraded":
                await trio.sleep(0.1)
        sent = 200
        refused = None
        for batch in range(40):  # ~250 bytes an event: the 1 MiB bound fills
            r = await client.post("/events/batch", json={"events": _events(500, 2000 + batch
                                                                           * 500)})
            if r.status_code == 503:
                refused = r.json()["error"]
                break
            assert r.status_code in (200, 202), r.text
            sent += 500
        assert refused is not None and refused["code"] == "backlog_full"
        down = False
        srv.engine.clickhouse.shipper.request_ship()  # (instead of the back-off's next try)
        await _shipped(client, timeout=60)
        r = await client.get("/analytics/count", params=params)
        assert r.status_code == 200 and r.json()["count"] == sent
    ch = ClickHouse.open(f"chdb://{CHDB_DIR}?database={database}")
    (total, distinct), = ch.rows(f"SELECT count(), uniqExact(id) FROM `{database}`.events")
    assert total == distinct == sent
    ch.command(f"DROP DATABASE `{database}`")


def test_a_statement_past_its_bound_is_stopped_by_clickhouse() -> None:
    """A query whose HTTP request timed out keeps its worker thread: ClickHouse itself stops
    the statement at `statement_timeout_s`, and the caller gets a ClickHouseError (503)."""
    import time

    ch = ClickHouse(ClickHouse.open(f"chdb://{CHDB_DIR}").target, statement_timeout_s=1)
    started = time.monotonic()
    with pytest.raises(ClickHouseError) as info:
        ch.rows("SELECT count() FROM numbers(1000000000000)")
    assert time.monotonic() - started < 10
    assert "Timeout exceeded" in str(info.value) and info.value.status == 503
