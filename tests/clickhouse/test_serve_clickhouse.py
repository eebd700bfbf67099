"""`rta serve --backend clickhouse` as users run it: a real daemon process with ClickHouse
in-process (chdb), events in over HTTP, answers out of ClickHouse, and the shipper's exactly
once across kill -9 (#17 items 1, 3 and the faults section)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from tests.support import ServeProcess

T0 = 1_700_000_000_000


def _serve(tmp_path: Path, *extra: str) -> ServeProcess:
    return ServeProcess(str(tmp_path / "data"), "--backend", "clickhouse", "--clickhouse-url",
                        f"chdb://{tmp_path / 'ch'}", *extra)


def _wait_shipped(url: str, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        ch = httpx.get(url + "/stats", timeout=10).json()["clickhouse"]
        if ch["lagEvents"] == 0 and ch["backlogBytes"] == 0:
            return dict(ch)
        assert time.monotonic() < deadline, ch
        time.sleep(0.2)


def _clickhouse_rows(path: Path, sql: str) -> list[list[Any]]:
    """Query the chdb directory from a separate process (chdb allows one path per process,
    and the daemon's is closed by then)."""
    code = ("import json, sys, clickhouse_connect\n"
            "c = clickhouse_connect.get_client(dsn=sys.argv[1])\n"
            "print(json.dumps([list(r) for r in c.query(sys.argv[2]).result_rows]))\n")
    out = subprocess.run([sys.executable, "-c", code, f"chdb://{path}", sql],
                         capture_output=True, text=True, timeout=120, check=True)
    return list(json.loads(out.stdout.strip().splitlines()[-1]))


def test_serve_answers_from_clickhouse(tmp_path: Path) -> None:
    proc = _serve(tmp_path)
    url = proc.start(timeout=60)
    try:
        events = [{"type": "pageview" if i % 3 else "signup", "userId": f"u{i % 7}",
                   "timestamp": T0 + i * 1000, "properties": {"n": i}} for i in range(50)]
        r = httpx.post(url + "/events/batch", json={"events": events}, timeout=30)
        assert r.status_code in (200, 202) and r.json()["accepted"] == 50, r.text
        shipped = _wait_shipped(url)
        assert shipped["shippedEvents"] == 50 and shipped["reachable"]
        count = httpx.get(url + "/analytics/count", params={"startTime": T0,
                                                            "endTime": T0 + 10**8}).json()
        assert count["count"] == 50
        users = httpx.get(url + "/analytics/unique-users",
                          params={"eventType": "signup", "startTime": T0,
                                  "endTime": T0 + 10**8}).json()
        assert users["uniqueUsers"] == len({i % 7 for i in range(50) if i % 3 == 0})
        assert "rta_clickhouse_lag_events 0" in httpx.get(url + "/metrics").text
        health = httpx.get(url + "/health").json()
        assert health["status"] == "ok" and health["clickhouse"]["reachable"]
    finally:
        proc.stop()
    assert _clickhouse_rows(tmp_path / "ch", "SELECT count(), uniqExact(id) FROM rta.events") \
        == [[50, 50]]


def test_unreachable_clickhouse_at_start_exits_3_naming_the_url(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "rta", "serve", "--port", "0", "--data-dir",
                          str(tmp_path / "d"), "--backend", "clickhouse", "--clickhouse-url",
                          "http://127.0.0.1:9/analytics"], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 3, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "http://127.0.0.1:9/analytics" in lines[0], out.stderr


def test_kill_during_shipping_loses_nothing_and_stores_once(tmp_path: Path) -> None:
    """Batches stream in while the daemon ships; kill -9 at some point, restart: every
    acknowledged event is in ClickHouse exactly once."""
    acknowledged: list[str] = []
    proc = _serve(tmp_path)
    url = proc.start(timeout=60)
    stop = threading.Event()

    def send() -> None:
        i = 0
        with httpx.Client(timeout=10) as client:
            while not stop.is_set():
                batch = [{"id": f"00000000-0000-4000-8000-{i * 100 + j:012d}",
                          "type": "tick", "userId": f"u{j}", "timestamp": T0 + i}
                         for j in range(100)]
                try:
                    r = client.post(url + "/events/batch", json={"events": batch})
                except httpx.HTTPError:
                    return  # the daemon died mid-request: that batch was not acknowledged
                if r.status_code in (200, 202):
                    acknowledged.extend(e["id"] for e in batch)
                i += 1

    sender = threading.Thread(target=send)
    sender.start()
    time.sleep(3.0)  # a few shipping rounds in
    proc.kill()
    stop.set()
    sender.join(10)
    assert len(acknowledged) >= 1000
    proc = _serve(tmp_path)
    url = proc.start(timeout=60)
    try:
        _wait_shipped(url, timeout=60)
    finally:
        proc.stop()
    (count, distinct, acked), = _clickhouse_rows(
        tmp_path / "ch", "SELECT count(), uniqExact(id), "
        f"countIf(id IN ({','.join(repr(a) for a in acknowledged[-2000:])})) FROM rta.events")
    assert count == distinct  # stored once
    assert distinct >= len(acknowledged)  # nothing acknowledged lost (some unacked may land)
    assert acked == min(2000, len(acknowledged))


def test_embedded_default_is_unchanged(tmp_path: Path) -> None:
    """Without --backend the daemon neither ships nor reports a ClickHouse section."""
    proc = ServeProcess(str(tmp_path / "data"))
    url = proc.start()
    try:
        assert "clickhouse" not in httpx.get(url + "/stats").json()
        assert not os.path.exists(tmp_path / "data" / "ship")
    finally:
        proc.stop()
