"""Fault injection: a full disk and a damaged segment through a real `rta serve` process,
and a read-only filesystem under a live server."""

from __future__ import annotations

import errno
import os
import resource
import signal
import uuid
from pathlib import Path

import httpx
import pyarrow as pa
import pytest

from tests.server.test_crash import all_ids
from tests.support import LiveServer, ServeProcess

FILE_LIMIT = 96 * 1024  # bytes any one file may grow to while the "disk is full"


def _limit_file_size() -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # get EFBIG instead of being killed
    resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_LIMIT, resource.RLIM_INFINITY))


def test_full_disk_answers_507_loses_nothing_and_recovers(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    proc = ServeProcess(data, "--max-events", "100000", preexec=_limit_file_size)
    url = proc.start()
    acked: set[str] = set()
    refused: set[str] = set()
    with httpx.Client(base_url=url, timeout=30) as client:
        for i in range(200):
            ids = [f"b{i}-{j}" for j in range(40)]
            r = client.post("/events/batch", json=[
                {"id": x, "type": "t", "properties": {"pad": "x" * 40}} for x in ids])
            if r.status_code == 202:
                acked.update(ids)
            else:
                assert r.status_code == 507, r.text
                err = r.json()["error"]
                assert err["code"] == "storage_unavailable" and err["message"]
                refused.update(ids)
        assert acked and refused, "the limit was never hit"
        assert client.get("/health").json()["status"] in ("ok", "degraded")  # still serving
        # Space returns: lift the limit on the running process.
        assert proc.proc is not None
        resource.prlimit(proc.proc.pid, resource.RLIMIT_FSIZE,
                         (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        later = [f"after-{j}" for j in range(40)]
        r = client.post("/events/batch", json=[{"id": x, "type": "t"} for x in later])
        assert r.status_code == 202
        acked.update(later)
    proc.kill()  # crash right after: every acknowledged event must come back
    proc = ServeProcess(data)
    url = proc.start()
    try:
        ids = all_ids(url)
    finally:
        proc.stop()
    assert len(ids) == len(set(ids))
    assert set(ids) == acked


def test_damaged_segment_is_reported_and_the_rest_served(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    proc = ServeProcess(data, "--max-events", "50")
    url = proc.start()
    with httpx.Client(base_url=url) as client:
        for i in range(3):
            r = client.post("/events/batch", json=[{"id": f"s{i}-{j}", "type": "t"}
                                                   for j in range(50)])
            assert r.status_code == 202
    assert proc.stop() == 0
    segments = sorted((tmp_path / "data" / "segments").iterdir())
    assert len(segments) >= 2
    lost = pa.ipc.open_file(pa.memory_map(str(segments[0]))).read_all()
    lost_ids = {str(uuid.UUID(int=(int(h) << 64) | int(lo))) for h, lo in zip(
        lost.column("id_hi").to_pylist(), lost.column("id_lo").to_pylist(), strict=True)}
    if "id_text" in lost.column_names:
        lost_ids = set(lost.column("id_text").to_pylist())
    segments[0].write_bytes(b"\x00garbage" * 100)
    proc = ServeProcess(data)
    url = proc.start()
    try:
        health = httpx.get(f"{url}/health").json()
        assert health["status"] == "degraded"
        assert [d["segment"] for d in health["store"]["damagedSegments"]] == [segments[0].name]
        ids = set(all_ids(url))
        everything = {f"s{i}-{j}" for i in range(3) for j in range(50)}
        assert ids == everything - lost_ids and lost_ids
    finally:
        proc.stop()


def test_a_column_found_damaged_while_serving_is_a_503_then_skipped(tmp_path: Path) -> None:
    """Bit rot inside a segment's column data (its footer intact, so it opens): the query
    that reads it gets a 503 naming the segment; after that the daemon serves the rest and
    /health reports it, as for a segment found damaged at startup."""
    data = str(tmp_path / "data")
    proc = ServeProcess(data, "--max-events", "5000")
    url = proc.start()
    with httpx.Client(base_url=url) as client:
        for _ in range(2):  # (values that do not compress away: the data dwarfs the footer)
            r = client.post("/events/batch", json=[
                {"type": "t", "userId": f"u{j * 7919 % 4999}",
                 "properties": {"n": j * 104729 % 99991, "x": (j * 7919 % 997) / 7}}
                for j in range(5000)])
            assert r.status_code == 202
    assert proc.stop() == 0
    segments = sorted((tmp_path / "data" / "segments").iterdir())
    assert len(segments) == 2
    raw = bytearray(segments[0].read_bytes())
    tenth = len(raw) // 10
    raw[4 * tenth:6 * tenth] = bytes(2 * tenth)  # inside the column data, not the footer
    segments[0].write_bytes(bytes(raw))
    proc = ServeProcess(data)
    url = proc.start()
    try:
        health = httpx.get(f"{url}/health").json()
        assert health["status"] == "ok", health  # (opening reads footers)
        first = httpx.get(f"{url}/events", params={"limit": 10_000})
        assert first.status_code == 503
        assert first.json()["error"]["code"] == "segment_damaged"
        assert segments[0].name in first.json()["error"]["message"]
        health = httpx.get(f"{url}/health").json()
        assert health["status"] == "degraded"
        assert [d["segment"] for d in health["store"]["damagedSegments"]] == [segments[0].name]
        again = httpx.get(f"{url}/events", params={"limit": 10_000})
        assert again.status_code == 200 and len(again.json()["events"]) == 5000
        assert httpx.get(f"{url}/stats").json()["store"]["events"] == 5000
    finally:
        proc.stop()


async def test_read_only_storage_answers_507_and_recovers(
        http: httpx.AsyncClient, server: LiveServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """The WAL write fails as on a read-only filesystem: nothing is acknowledged or
    applied, the server stays up, and ingestion resumes once writes work again."""
    wal = server.engine.store.wal
    assert wal is not None

    def read_only(payloads: list[bytes]) -> None:
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(wal, "write", read_only)
    r = await http.post("/events", json={"type": "t", "id": "ro-1"})
    assert r.status_code == 507
    assert "Read-only file system" in r.json()["error"]["message"]
    assert (await http.get("/events")).json()["count"] == 0
    monkeypatch.undo()
    r = await http.post("/events", json={"type": "t", "id": "ro-1"})
    assert r.status_code == 202 and r.json()["duplicates"] == 0  # the id was released
    assert (await http.get("/events")).json()["count"] == 1
