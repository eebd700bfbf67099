"""`rta dashboards share|shares|unshare` against a real server (in a background thread)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from rta.core.config import EngineConfig
from tests.cli.test_alerts_cli import BackgroundServer, run
from tests.server.test_ws import no_protocol_pings


@pytest.fixture
def bg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[BackgroundServer]:
    no_protocol_pings(monkeypatch)
    monkeypatch.setenv("RTA_CONFIG", str(tmp_path / "none.toml"))
    monkeypatch.setenv("COLUMNS", "200")
    with BackgroundServer(EngineConfig(data_dir=str(tmp_path / "data"))) as server:
        monkeypatch.setenv("RTA_SERVER", server.url)
        yield server


def test_share_list_and_unshare(bg: BackgroundServer) -> None:
    r = httpx.post(bg.url + "/dashboards", json={"name": "kpis", "widgets": []})
    dash = r.json()["id"]
    r = run("dashboards", "shares", dash)
    assert r.exit_code == 0 and "no share links" in r.stderr and r.stdout == ""
    r = run("dashboards", "share", dash, "--name", "wiki", "--expires", "7d", "--json")
    assert r.exit_code == 0, r.output
    wiki = json.loads(r.stdout)
    r = run("dashboards", "share", dash)
    assert r.exit_code == 0 and r.stdout.strip().startswith(bg.url + "/share/")
    r = run("dashboards", "shares", dash, "--json")
    assert r.exit_code == 0, r.output
    listed = json.loads(r.stdout)
    assert listed["total"] == 2
    assert {link["name"] for link in listed["links"]} == {"wiki", None}
    assert all("token" not in link and "hash" not in link for link in listed["links"])
    assert wiki["token"] not in r.stdout
    r = run("dashboards", "shares", dash)
    assert r.exit_code == 0 and "2 share links" in r.stdout and "wiki" in r.stdout
    assert wiki["hint"] in r.stdout and "active" in r.stdout
    r = run("dashboards", "unshare", dash, wiki["id"])
    assert r.exit_code == 0
    r = run("dashboards", "shares", dash, "--json")
    assert [link["name"] for link in json.loads(r.stdout)["links"]] == [None]
    r = run("dashboards", "shares", "no-such-dashboard")
    assert r.exit_code == 4 and r.stdout == ""
