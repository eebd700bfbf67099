"""`rta top [--live]` and `rta tail` against a real server in a background thread."""

from __future__ import annotations

import io
import json
import threading
import time
from typing import Any

import httpx
from rich.console import Console

from rta.cli.live import render_metrics, sparkline
from tests.cli.test_alerts_cli import BackgroundServer, bg, run

__all__ = ["bg"]  # the fixture


def wait_for(pred: Any, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_sparkline() -> None:
    assert sparkline([0, 0]) == "▁▁"
    assert sparkline([0, 5, 10]) == "▁▅█"
    assert len(sparkline(list(range(100)), width=60)) == 60


def test_render_metrics_into_a_fixed_width_console() -> None:
    data = {"eventsPerSecond": 12, "perSecond": [0, 6, 12], "activeUsers5m": 3,
            "lastMinute": {"total": 18}, "totals": {"events": 40},
            "topTypes": [{"type": "pageview", "count": 15}, {"type": "click", "count": 3}],
            "topPages": [{"page": "/pricing", "count": 9}]}
    out = io.StringIO()
    Console(file=out, width=100, force_terminal=False).print(render_metrics(data, "srv"))
    text = out.getvalue()
    for needle in ("12 ev/s", "3 active users", "pageview", "/pricing", "▁▅█", "q or Ctrl-C"):
        assert needle in text, needle


def test_top_once_and_live(bg: BackgroundServer) -> None:
    httpx.post(bg.url + "/events/batch", json=[
        {"type": "pageview", "userId": f"u{i % 4}", "properties": {"page": "/docs"}}
        for i in range(10)])
    r = run("top", "--json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["lastMinute"]["byType"] == {"pageview": 10}
    assert data["activeUsers5m"] == 4
    r = run("top")
    assert r.exit_code == 0 and "pageview" in r.stdout and "/docs" in r.stdout
    r = run("top", "--live", "--ticks", "2", "--json")
    assert r.exit_code == 0, r.output
    ticks = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(ticks) == 2 and all(t["totals"]["events"] == 10 for t in ticks)
    r = run("top", "--live", "--ticks", "1")
    assert r.exit_code == 0, r.output
    r = run("top", "--server", "http://127.0.0.1:9")
    assert r.exit_code == 3


def test_tail_with_type_and_where(bg: BackgroundServer) -> None:
    result: dict[str, Any] = {}

    def tail() -> None:
        result["r"] = run("tail", "--type", "click", "--where", "page~pro", "--count", "2",
                          "--json")

    thread = threading.Thread(target=tail)
    thread.start()
    hub = bg.server.engine.served.live_hub  # type: ignore[union-attr]
    wait_for(lambda: hub.subscribers("events") == 1)
    httpx.post(bg.url + "/events/batch", json=[
        {"type": "click", "userId": "a", "properties": {"page": "/products"}},
        {"type": "click", "userId": "b", "properties": {"page": "/home"}},
        {"type": "pageview", "userId": "c", "properties": {"page": "/products"}},
        {"type": "click", "userId": "d", "properties": {"page": "/pro"}}])
    thread.join(10)
    r = result["r"]
    assert r.exit_code == 0, r.output
    assert [json.loads(line)["userId"] for line in r.stdout.splitlines()] == ["a", "d"]
    r = run("tail", "--where", "nonsense")
    assert r.exit_code == 2  # a usage error: the command line is wrong


def test_top_into_a_pipe_keeps_a_page_width(bg: BackgroundServer) -> None:
    """Piped output is not wrapped (ids survive `| grep`), but `rta top`'s panels fill the
    width: into a pipe they were 65,536 columns wide (#23, the newcomer walk)."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    out = subprocess.run([sys.executable, "-m", "rta", "top", "--server", bg.url],
                         capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 0, out.stderr
    assert "rta top" in out.stdout
    assert max(len(line) for line in out.stdout.splitlines()) <= 100
