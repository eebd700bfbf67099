"""`rta alerts ...` against a real server running in a background thread."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from typer.testing import CliRunner

from rta.cli.main import app
from rta.core.config import EngineConfig
from tests.server.test_ws import no_protocol_pings
from tests.support import LiveServer, live_server


class BackgroundServer:
    """A real server on its own trio loop in a thread, for sync CLI tests."""

    def __init__(self, config: EngineConfig) -> None:
        self.config = config
        self.ready = threading.Event()
        self.server: LiveServer | None = None
        self._token: Any = None
        self._stop: trio.Event | None = None
        self._thread = threading.Thread(target=lambda: trio.run(self._main), daemon=True)

    async def _main(self) -> None:
        self._stop = trio.Event()
        self._token = trio.lowlevel.current_trio_token()
        async with live_server(self.config) as srv:
            self.server = srv
            self.ready.set()
            await self._stop.wait()

    def __enter__(self) -> BackgroundServer:
        self._thread.start()
        assert self.ready.wait(20), "server did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._stop is not None
        trio.from_thread.run_sync(self._stop.set, trio_token=self._token)
        self._thread.join(20)

    @property
    def url(self) -> str:
        assert self.server is not None
        return self.server.url


@pytest.fixture
def bg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[BackgroundServer]:
    no_protocol_pings(monkeypatch)
    monkeypatch.setenv("RTA_CONFIG", str(tmp_path / "none.toml"))
    monkeypatch.setenv("COLUMNS", "200")
    with BackgroundServer(EngineConfig(data_dir=str(tmp_path / "data"),
                                       alert_interval_ms=50)) as server:
        monkeypatch.setenv("RTA_SERVER", server.url)
        yield server


def run(*args: str, input: str | None = None) -> Any:
    return CliRunner().invoke(app, list(args), input=input)


def test_create_list_show_test_delete(bg: BackgroundServer, tmp_path: Path) -> None:
    r = run("alerts", "create", "--name", "slow pages", "--event-type", "pageview",
            "--property", "duration", "--aggregation", "p95", "--operator", "gte",
            "--threshold", "1000", "--window", "5m", "--where", "page^=/docs",
            "--channel", "log", "--severity", "error", "--json")
    assert r.exit_code == 0, r.output
    created = json.loads(r.stdout)
    assert created["condition"] == {
        "type": "threshold", "eventType": "pageview", "property": "duration",
        "aggregation": "p95", "operator": "gte", "threshold": 1000.0, "timeWindow": 300000,
        "filters": [{"property": "page", "operator": "starts_with", "value": "/docs"}]}
    spec = tmp_path / "alert.json"
    spec.write_text(json.dumps({"name": "from file", "condition": {
        "type": "anomaly", "eventType": "api_request", "property": "duration",
        "timeWindow": 600000}, "notification": {"channels": ["websocket", "log"],
                                                "severity": "warning"}}))
    r = run("alerts", "create", "--file", str(spec), "--json")
    assert r.exit_code == 0, r.output
    r = run("alerts", "list", "--json")
    assert [a["name"] for a in json.loads(r.stdout)["alerts"]] == ["slow pages", "from file"]
    r = run("alerts", "list")
    assert r.exit_code == 0 and "slow pages" in r.stdout and "p95(duration)" in r.stdout
    r = run("alerts", "show", created["id"])
    assert r.exit_code == 0 and "p95(duration) of pageview" in r.stdout
    r = run("alerts", "test", created["id"], "--range", "last_1h", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["firings"] == []
    r = run("alerts", "test", created["id"])
    assert r.exit_code == 0 and "would not have fired" in r.stdout
    r = run("alerts", "delete", created["id"])
    assert r.exit_code == 0
    r = run("alerts", "show", created["id"])
    assert r.exit_code == 4 and "no alert" in r.stderr


def test_bad_input_exit_codes(bg: BackgroundServer, tmp_path: Path) -> None:
    r = run("alerts", "create", "--name", "x", "--operator", "approx", "--threshold", "1")
    assert r.exit_code == 2 and "--operator" in r.stderr  # a closed set: checked by the CLI
    r = run("alerts", "create", "--name", "x", "--threshold", "1", "--webhook-url", "ftp://h/")
    assert r.exit_code == 4 and "http" in r.stderr
    r = run("alerts", "create", "--threshold", "1")
    assert r.exit_code == 2 and "--name" in r.stderr
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    r = run("alerts", "create", "--file", str(bad))
    assert r.exit_code == 4
    r = run("alerts", "list", "--server", "http://127.0.0.1:9")
    assert r.exit_code == 3


def test_watch_and_history(bg: BackgroundServer) -> None:
    r = run("alerts", "create", "--name", "errs", "--event-type", "error", "--threshold", "2",
            "--window", "10s", "--cooldown", "0", "--message", "boom", "--json")
    alert_id = json.loads(r.stdout)["id"]
    result: dict[str, Any] = {}

    def watch() -> None:
        result["r"] = run("alerts", "watch", "--count", "1", "--json")

    thread = threading.Thread(target=watch)
    thread.start()
    hub = bg.server.engine.served.live_hub  # type: ignore[union-attr]
    deadline = time.monotonic() + 10
    while hub.subscribers("alerts") < 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    httpx.post(bg.url + "/events/batch", json=[{"type": "error"} for _ in range(3)])
    thread.join(10)
    r = result["r"]
    assert r.exit_code == 0, r.output
    note = json.loads(r.stdout.splitlines()[0])
    assert note["event"] == "fired" and note["alertId"] == alert_id and note["value"] == 3
    r = run("alerts", "history", "--json")
    assert [h["event"] for h in json.loads(r.stdout)["history"]] == ["fired"]
    r = run("alerts", "history", "--alert", alert_id)
    assert r.exit_code == 0 and "boom" in r.stdout


def test_create_metric_alerts_from_flags(bg: BackgroundServer, tmp_path: Path) -> None:
    """Each metric kind from flags (stored as the daemon validated it), a --file metric
    overridden by flags, and the usage errors (exit 2, before any request) and the daemon's
    400 naming the field (exit 4)."""
    cases: list[tuple[list[str], dict[str, Any]]] = [
        (["--metric", "funnel", "--step", "visit", "--step", "signup", "--conversion-step",
          "1", "--time-limit", "1h", "--where", "plan=pro"],
         {"kind": "funnel", "steps": ["visit", "signup"], "step": 1, "timeLimit": "1h",
          "where": [{"property": "plan", "operator": "eq", "value": "pro"}]}),
        (["--metric", "formula", "--series", "A=purchase", "--series",
          "B=signup:unique_users", "--formula", "A / B"],
         {"kind": "formula", "formula": "A / B", "series": [
             {"name": "A", "eventType": "purchase"},
             {"name": "B", "eventType": "signup", "aggregation": "unique_users"}]}),
        (["--metric", "retention", "--entry", "signup", "--return", "open", "--day", "1",
          "--period", "1d"],
         {"kind": "retention", "entryEvent": "signup", "retentionEvent": "open", "day": 1,
          "periodLength": "1d"}),
        (["--metric", "unique_users", "-t", "pageview", "--where", "page^=/docs"],
         {"kind": "unique_users", "eventType": "pageview",
          "where": [{"property": "page", "operator": "starts_with", "value": "/docs"}]}),
        (["--metric", "stickiness", "-t", "open", "--min-periods", "3", "--interval", "day"],
         {"kind": "stickiness", "eventType": "open", "minPeriods": 3, "interval": "day"}),
    ]
    for flags, metric in cases:
        r = run("alerts", "create", "--name", metric["kind"], "--operator", "lt",
                "--threshold", "20", "--window", "7d", "--every", "5m", *flags, "--json")
        assert r.exit_code == 0, (flags, r.output)
        cond = json.loads(r.stdout)["condition"]
        assert cond["metric"] == metric, cond
        assert cond["evaluateEvery"] == 300_000 and cond.get("eventType") is None
    spec = tmp_path / "sticky.json"
    spec.write_text(json.dumps({"name": "from file", "condition": {
        "type": "threshold", "threshold": 10, "timeWindow": "14d",
        "metric": {"kind": "stickiness", "eventType": "open", "interval": "week"}}}))
    r = run("alerts", "create", "--file", str(spec), "--min-periods", "2", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["condition"]["metric"] == {
        "kind": "stickiness", "eventType": "open", "interval": "week", "minPeriods": 2}
    r = run("alerts", "show", json.loads(r.stdout)["id"])
    assert r.exit_code == 0 and "share of open users active on >= 2 weeks" in r.stdout

    usage = [(["--step", "a", "--step", "b"], "--step needs --metric"),
             (["--metric", "funnel", "--step", "a"], "two or more --step"),
             (["--metric", "stickiness"], "--event-type"),
             (["--metric", "retention", "--entry", "a", "--min-periods", "2"],
              "--min-periods is not used by --metric retention"),
             (["--metric", "funnel", "-t", "x", "--step", "a", "--step", "b"],
              "--event-type is not used"),
             (["--metric", "formula", "--series", "A=x", "--formula", "A", "--where", "a=1"],
              "--where is not used"),
             (["--metric", "ratio"], "--metric"),
             (["--metric", "stickiness", "-t", "a", "--interval", "month"], "--interval"),
             (["-t", "x", "--every", "1m"], "--every needs --metric")]
    for flags, text in usage:
        r = run("alerts", "create", "--name", "x", "--threshold", "1", *flags,
                "--server", "http://127.0.0.1:9")
        assert r.exit_code == 2 and text in r.stderr, (flags, r.stderr)
    r = run("alerts", "create", "--name", "x", "--threshold", "1", "--window", "1h",
            "--metric", "stickiness", "-t", "open", "--min-periods", "5")
    assert r.exit_code == 4 and "condition.metric.minPeriods" in r.stderr, r.stderr
