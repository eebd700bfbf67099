"""/health tells the truth (#24): degraded, with the reason, while writes fail; ok again
once the disk takes writes, whether or not a client writes meanwhile."""

from __future__ import annotations

import errno
import os

import httpx
import pytest
import trio

import rta.core.engine as engine_module
from tests.support import LiveServer


async def test_health_is_degraded_while_writes_fail_and_ok_after(
        http: httpx.AsyncClient, server: LiveServer, monkeypatch: pytest.MonkeyPatch) -> None:
    wal = server.engine.store.wal
    assert wal is not None
    assert (await http.get("/health")).json()["status"] == "ok"

    def read_only(payloads: list[bytes]) -> None:
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(wal, "write", read_only)
    monkeypatch.setattr(engine_module, "probe_write", lambda directory: False)
    assert (await http.post("/events", json={"type": "t"})).status_code == 507
    health = (await http.get("/health")).json()
    assert health["status"] == "degraded"
    assert any("Read-only file system" in reason for reason in health["reasons"])
    await trio.sleep(2.5)  # the probe still fails: still degraded
    assert (await http.get("/health")).json()["status"] == "degraded"

    monkeypatch.undo()  # the disk recovers; no client writes: the probe notices
    with trio.fail_after(10):
        while (await http.get("/health")).json()["status"] != "ok":
            await trio.sleep(0.2)
    assert (await http.get("/health")).json()["reasons"] == []
    assert (await http.post("/events", json={"type": "t"})).status_code == 202


async def test_health_is_ok_again_after_a_successful_write(
        http: httpx.AsyncClient, server: LiveServer, monkeypatch: pytest.MonkeyPatch) -> None:
    wal = server.engine.store.wal
    assert wal is not None

    def full(payloads: list[bytes]) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(wal, "write", full)
    monkeypatch.setattr(engine_module, "probe_write", lambda directory: False)
    assert (await http.post("/events/batch", json=[{"type": "t"}])).status_code == 507
    assert (await http.get("/health")).json()["status"] == "degraded"
    monkeypatch.setattr(wal, "write", type(wal).write.__get__(wal))
    assert (await http.post("/events/batch", json=[{"type": "t"}])).status_code == 202
    assert (await http.get("/health")).json()["status"] == "ok"
