"""`rta clickhouse migrate`: an embedded store copied into ClickHouse, event for event
(ids, times, arrival, every property kind, sparse and dense columns), verified per day and
type; and the command as users run it."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import trio

from rta.core.clickhouse_migrate import migrate
from rta.core.config import EngineConfig
from rta.core.embedded.render import render_events
from rta.core.embedded.store import ColumnStore, StoreConfig
from rta.core.engine import Engine
from tests.clickhouse.harness import chdb_database

T0 = 1_700_000_000_000


def _events(n: int, seed: int) -> list[dict[str, Any]]:
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        props: dict[str, Any] = {"page": rnd.choice(["/", "/a", "/é"]), "n": rnd.randint(0, 9)}
        if rnd.random() < 0.3:
            props["amount"] = rnd.random() * 100
        if rnd.random() < 0.2:
            props["flag"] = rnd.random() < 0.5
        if rnd.random() < 0.01:  # rare keys: stored sparse
            props[f"rare{rnd.randint(0, 50)}"] = rnd.choice([1, "x", 2.5, True])
        if rnd.random() < 0.1:
            props["nested"] = {"a": rnd.randint(0, 3), "b": "ü"}
        event: dict[str, Any] = {"type": rnd.choice(["pageview", "click", "buy"]),
                                 "timestamp": T0 + rnd.randint(0, 5 * 86_400_000) // 1000 * 1000,
                                 "properties": props}
        if rnd.random() < 0.9:
            event["userId"] = f"user{rnd.randint(0, 200)}"
        if rnd.random() < 0.5:
            event["sessionId"] = f"s{rnd.randint(0, 40)}"
        if rnd.random() < 0.05:
            event["id"] = f"custom-{seed}-{i}"
        out.append(event)
    return out


def _store(data_dir: str) -> int:
    """A store with sealed segments and a head."""
    engine = Engine(EngineConfig(data_dir=data_dir, fsync=False, max_events=3000))
    total = 0
    try:
        for seed in range(4):
            events = _events(2500, seed)

            async def submit(batch: list[dict[str, Any]] = events) -> int:
                return (await engine.submit(batch, partial=False, now=T0 + 6 * 86_400_000)
                        ).accepted
            total += trio.run(submit)
            if engine.store.needs_seal():
                job = engine.store.begin_seal()
                engine.store.run_seal(job)
                engine.store.finish_seal(job)
    finally:
        engine.close()
    return total


def test_migrate_copies_every_event_exactly(tmp_path: Path) -> None:
    data_dir = str(tmp_path / "data")
    total = _store(data_dir)
    ch = chdb_database()
    try:
        report = migrate(data_dir, ch)
        assert report.events == total and not report.mismatches
        again = migrate(data_dir, ch)  # idempotent: dedup tokens drop the second copy
        assert not again.mismatches
        store = ColumnStore(data_dir, StoreConfig(fsync=False))
        try:
            snap = store.snapshot()
            want = []
            for block in snap.blocks:
                for e in render_events(block, np.arange(block.n), snap.dicts):
                    want.append((e["id"], e["timestamp"], e["receivedAt"], e["type"],
                                 e["userId"], e["sessionId"],
                                 json.dumps(e["properties"], sort_keys=True)))
        finally:
            store.close()
        rows = ch.rows("SELECT id, ts, recv, type, user, session, props_s, props_i, props_f, "
                       f"props_b FROM `{ch.database}`.events ORDER BY seq")
        got = []
        for eid, ts, recv, typ, user, session, s, i, f, b in rows:
            props = {**s, **i, **f, **{k: bool(v) for k, v in b.items()}}
            got.append((eid, ts, recv, typ, user, session, json.dumps(props, sort_keys=True)))
        assert got == want  # every event, in arrival order, values of every kind
    finally:
        ch.command(f"DROP DATABASE `{ch.database}`")


def test_migrate_command(tmp_path: Path) -> None:
    data_dir = str(tmp_path / "data")
    total = _store(data_dir)
    url = f"chdb://{tmp_path / 'ch'}"
    out = subprocess.run([sys.executable, "-m", "rta", "clickhouse", "migrate", "--data-dir",
                          data_dir, "--clickhouse-url", url, "--json"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    body = json.loads(out.stdout)
    assert body["events"] == total and body["verified"] is True
    status = subprocess.run([sys.executable, "-m", "rta", "clickhouse", "status",
                             "--clickhouse-url", url, "--json"],
                            capture_output=True, text=True, timeout=120)
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["events"] == total
    bad = subprocess.run([sys.executable, "-m", "rta", "clickhouse", "init",
                          "--clickhouse-url", "http://127.0.0.1:9/x"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 3 and "http://127.0.0.1:9/x" in bad.stderr
