"""Crash safety through a real `rta serve` process: SIGKILL mid-ingest, restart, verify."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx

from tests.support import ServeProcess


def all_ids(url: str) -> list[str]:
    ids: list[str] = []
    cursor = None
    with httpx.Client(base_url=url, timeout=30) as client:
        while True:
            params: dict[str, str | int] = {"limit": 10_000}
            if cursor:
                params["cursor"] = cursor
            page = client.get("/events", params=params).json()
            ids += [e["id"] for e in page["events"]]
            cursor = page["nextCursor"]
            if not cursor:
                return ids


def hammer(url: str, tag: str, acked: set[str], unsure: list[list[str]],
           stop: threading.Event) -> None:
    with httpx.Client(base_url=url, timeout=10) as client:
        i = 0
        while not stop.is_set():
            ids = [f"{tag}-{i}-{j}" for j in range(40)]
            events = [{"id": x, "type": "t", "userId": tag, "properties": {"i": i}} for x in ids]
            try:
                r = client.post("/events/batch", json=events)
            except httpx.TransportError:
                unsure.append(ids)
                return
            if r.status_code == 202:
                acked.update(ids)
            i += 1


def test_sigkill_during_ingest_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    acked: set[str] = set()
    unsure: list[list[str]] = []
    for round_no in range(3):  # kill it three times in a row
        proc = ServeProcess(data, "--max-events", "500")
        url = proc.start()
        stop = threading.Event()
        workers = [threading.Thread(target=hammer, args=(url, f"r{round_no}w{k}", acked, unsure,
                                                         stop)) for k in range(4)]
        for w in workers:
            w.start()
        time.sleep(0.8 + 0.3 * round_no)
        proc.kill()
        stop.set()
        for w in workers:
            w.join(15)
    proc = ServeProcess(data)
    url = proc.start()
    try:
        # Clients retry batches whose outcome they never learned: dedup keeps them single.
        with httpx.Client(base_url=url, timeout=30) as client:
            for ids in unsure:
                r = client.post("/events/batch", json=[{"id": x, "type": "t"} for x in ids])
                assert r.status_code == 202
                acked.update(ids)
        ids = all_ids(url)
    finally:
        assert proc.stop() == 0
    assert len(acked) > 1000, "the test did not ingest enough to be meaningful"
    assert len(ids) == len(set(ids)), "an event is stored twice"
    missing = acked - set(ids)
    assert not missing, f"{len(missing)} acknowledged events were lost"


def test_graceful_stop_seals_and_restart_serves(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    proc = ServeProcess(data)
    url = proc.start()
    with httpx.Client(base_url=url) as client:
        r = client.post("/events/batch", json=[{"type": "t", "id": f"g{i}"} for i in range(10)])
        assert r.status_code == 202
    assert proc.stop() == 0
    assert list((tmp_path / "data" / "segments").iterdir()), "shutdown did not seal the head"
    proc = ServeProcess(data)
    url = proc.start()
    try:
        assert sorted(all_ids(url)) == sorted(f"g{i}" for i in range(10))
    finally:
        proc.stop()


def test_second_daemon_on_the_same_data_dir_is_refused(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    first = ServeProcess(data)
    first.start()
    try:
        second = ServeProcess(data)
        try:
            second.start(timeout=10)
            raise AssertionError("second daemon started")
        except RuntimeError as exc:
            assert "in use by another rta process" in str(exc)
    finally:
        first.stop()
