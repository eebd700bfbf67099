"""Erasure of a person in the embedded store (#18 part 5): nothing of the person left in
memory or in any file (read inside the compressed segments), everything else intact,
before and after a restart, and after a SIGKILL at each phase."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rta.core.config import EngineConfig
from rta.core.engine import Engine
from rta.core.errors import NotFoundError, ValidationError
from tests.erasure_support import T0, find_bytes, victim_events

NOW = T0 + 40 * 86_400_000


def submit(engine: Engine, events: list[dict[str, Any]], size: int = 40) -> None:
    async def go() -> None:
        for i in range(0, len(events), size):
            await engine.submit(events[i:i + size], partial=False, now=NOW)
    trio.run(go)


def stored(engine: Engine) -> Counter[tuple[Any, ...]]:
    """Every stored event as (type, userId, sessionId, ts, plan, shared), counted."""
    snap = engine.store.snapshot()
    d = snap.dicts
    out: Counter[tuple[Any, ...]] = Counter()
    for block in snap.blocks:
        if not block.n:
            continue
        plan = block.props.get("s:plan")
        shared = block.props.get("s:shared")
        rows = zip(d.types.decode(block.type), d.users.decode(block.user),
                   d.sessions.decode(block.session), block.ts.tolist(),
                   d.values.decode(plan) if plan is not None else [None] * block.n,
                   d.values.decode(shared) if shared is not None else [None] * block.n,
                   strict=True)
        out.update(rows)
    return out


def expected(events: list[dict[str, Any]], gone: set[str]) -> Counter[tuple[Any, ...]]:
    return Counter((e["type"], e["userId"], e.get("sessionId"), e["timestamp"],
                    e.get("properties", {}).get("plan"), e.get("properties", {}).get("shared"))
                   for e in events if e["userId"] not in gone)


def test_erasure_leaves_no_bytes_behind(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    events, needles = victim_events("nb")
    engine = Engine(EngineConfig(data_dir=data, max_events=60))
    try:
        submit(engine, events)
        assert engine.store.stats()["segments"] >= 3 and engine.store.stats()["headEvents"]
        before = find_bytes(data, needles)
        # the search is real: the custom event ids are found inside compressed segments
        assert any(f.endswith(".arrow") and n.startswith("evt-") for f, n in before), before
        assert engine.persons.describe("anon-nb-victim")["personId"] == "login-nb-victim"
        receipt = engine.erasure.erase_sync("anon-nb-victim")
        victim = {"anon-nb-victim", "login-nb-victim"}
        assert receipt["personId"] == "login-nb-victim"
        assert sorted(receipt["distinctIds"]) == sorted(victim)
        assert receipt["distinctIdsErased"] == 2
        assert receipt["eventsRemoved"] == sum(e["userId"] in victim for e in events) == 31
        assert receipt["segmentsRewritten"] >= 2
        assert stored(engine) == expected(events, victim)
        for x in victim:
            with pytest.raises(NotFoundError):
                engine.persons.describe(x)
            assert engine.store.dicts.users.lookup(x) == -1
        assert engine.store.dicts.values.lookup("common-value") >= 0  # still used
        assert engine.store.dicts.values.lookup("nb-victim@mail.example") == -1
        assert find_bytes(data, needles) == []
        log = engine.erasure.history()
        assert len(log) == 1 and log[0]["events"] == 31
        assert engine.erasure.hash_id("login-nb-victim") in log[0]["distinctIds"]
    finally:
        engine.close()
    assert find_bytes(data, needles) == []
    engine = Engine(EngineConfig(data_dir=data, max_events=60))
    try:
        assert stored(engine) == expected(events, victim)
        for x in victim:
            with pytest.raises(NotFoundError):
                engine.persons.describe(x)
        # an erased id sent again is new data (its old event ids are no duplicates now)
        again = [e for e in events if e.get("id") == "evt-nb-victim-12"]
        submit(engine, again)
        assert stored(engine) == expected(events, victim) + expected(again, set())
    finally:
        engine.close()


def test_bad_input_and_unknown_ids() -> None:
    engine = Engine(EngineConfig(data_dir=None))
    try:
        submit(engine, [{"type": "page", "userId": "someone", "timestamp": T0}])
        with pytest.raises(NotFoundError):
            engine.erasure.erase_sync("nobody")
        with pytest.raises(ValidationError) as exc:
            engine.erasure.erase_sync("")
        assert exc.value.details[0]["field"] == "id"
        assert stored(engine) == Counter({("page", "someone", None, T0, None, None): 1})
    finally:
        engine.close()


EVENT = st.fixed_dictionaries({
    "type": st.sampled_from(["a", "b"]), "userId": st.sampled_from(["u1", "u2", "u3"]),
    "sessionId": st.sampled_from(["s1", "s2", "s3", "s4"]),
    "timestamp": st.integers(T0, T0 + 5_000).map(lambda t: t - t % 1000),
    "properties": st.fixed_dictionaries({"plan": st.sampled_from(["x", "y", "z"])})})


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=st.lists(EVENT, min_size=1, max_size=60), head=st.integers(5, 40))
def test_erasure_matches_a_filter_of_the_log(events: list[dict[str, Any]], head: int) -> None:
    """What remains equals the log without the person's events; session and value strings
    leave the dictionaries exactly when no remaining event uses them."""
    engine = Engine(EngineConfig(data_dir=None, max_events=head))
    try:
        submit(engine, events, size=7)
        victim = events[0]["userId"]
        receipt = engine.erasure.erase_sync(victim)
        assert receipt["eventsRemoved"] == sum(e["userId"] == victim for e in events)
        assert stored(engine) == expected(events, {victim})
        kept = [e for e in events if e["userId"] != victim]
        d = engine.store.dicts
        for s in {e["sessionId"] for e in events}:
            assert (d.sessions.lookup(s) >= 0) == any(e["sessionId"] == s for e in kept), s
        for v in {e["properties"]["plan"] for e in events}:
            assert (d.values.lookup(v) >= 0) == any(e["properties"]["plan"] == v
                                                    for e in kept), v
    finally:
        engine.close()


CRASH = textwrap.dedent("""
    import os, signal, sys, trio
    from rta.core.config import EngineConfig
    from rta.core.engine import Engine
    from tests.core.test_erasure import submit
    from tests.erasure_support import victim_events
    events, _ = victim_events("ck")
    engine = Engine(EngineConfig(data_dir=sys.argv[1], max_events=60))
    submit(engine, events)
    e = engine.erasure
    job = e._cut("anon-ck-victim")
    if sys.argv[2] != "cut":
        e._work(job)
    if sys.argv[2] == "swap":
        e._swap(job)
    os.kill(os.getpid(), signal.SIGKILL)
""")


@pytest.mark.parametrize("phase", ["cut", "work", "swap"])
def test_a_kill_mid_erasure_is_finished_at_restart(tmp_path: Path, phase: str) -> None:
    data = str(tmp_path / "data")
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run([sys.executable, "-c", CRASH, data, phase], cwd=root,
                          env={**os.environ, "PYTHONPATH": str(root)}, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == -9, proc.stderr
    assert os.path.exists(os.path.join(data, "erasure", "intent.log"))
    events, needles = victim_events("ck")
    victim = {"anon-ck-victim", "login-ck-victim"}
    engine = Engine(EngineConfig(data_dir=data, max_events=60))
    try:
        assert stored(engine) == expected(events, victim)
        assert not os.path.exists(os.path.join(data, "erasure", "intent.log"))
        assert find_bytes(data, needles) == []
        assert len(engine.erasure.history()) == 1
    finally:
        engine.close()
    assert find_bytes(data, needles) == []


def test_a_snapshot_taken_before_reads_the_old_files_until_released(tmp_path: Path) -> None:
    import gc

    data = str(tmp_path / "data")
    events, _ = victim_events("snap")
    engine = Engine(EngineConfig(data_dir=data, max_events=60))
    try:
        submit(engine, events)
        snap = engine.store.snapshot()
        old = {s.path for s in engine.store.segments}
        engine.erasure.erase_sync("login-snap-victim")
        assert old - {s.path for s in engine.store.segments}  # some were rewritten
        # the old snapshot still reads every row it had, from the old files
        assert sum(len(b.scan("user")) for b in snap.blocks) == snap.total_events
        assert all(os.path.exists(p) for p in old)
        del snap
        gc.collect()
        engine.store.snapshot()  # (releases are counted down on the next pin)
        gone = old - {s.path for s in engine.store.segments}
        assert not any(os.path.exists(p) for p in gone)
    finally:
        engine.close()


async def test_a_failed_erasure_is_finished_by_the_next_one(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    """A full disk mid-rewrite: 507, nothing of the half-done rewrite is served or left to
    load; the next erasure request finishes it first."""
    from rta.core import erasure as erasure_module
    from rta.core.engine import open_engine
    from rta.core.errors import StorageError

    data = str(tmp_path / "data")
    events, needles = victim_events("fail")
    victim = {"anon-fail-victim", "login-fail-victim"}
    real = erasure_module.write_rewritten
    calls = 0

    def flaky(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise OSError(28, "No space left on device")
        return real(*args, **kwargs)

    first = Engine(EngineConfig(data_dir=data, max_events=60))  # (seals deterministically)
    for i in range(0, len(events), 40):
        await first.submit(events[i:i + 40], partial=False, now=NOW)
    first.close()
    async with open_engine(EngineConfig(data_dir=data, max_events=60)) as engine:
        assert len(engine.store.segments) >= 3
        monkeypatch.setattr(erasure_module, "write_rewritten", flaky)
        with pytest.raises(StorageError):
            await engine.erasure.erase("login-fail-victim")
        monkeypatch.undo()
        receipt = await engine.erasure.erase("other-fail-3")
        assert receipt["personId"] == "other-fail-3"
        gone = victim | {"other-fail-3"}
        assert stored(engine) == expected(events, gone)
        assert len(engine.erasure.history()) == 2
    assert find_bytes(data, needles) == []
    engine = Engine(EngineConfig(data_dir=data, max_events=60))
    try:
        assert stored(engine) == expected(events, gone)
    finally:
        engine.close()


def test_wal_rewrite_maps_record_boundaries(tmp_path: Path) -> None:
    """A reader's saved offset (the ClickHouse shipper's) moves to the same record in the
    rewritten file: every kept record starts where the map says."""
    from rta.core.embedded.store.records import frame, read_frames
    from rta.core.embedded.store.rewrite import filter_wal_file
    from rta.core.events import EventBatch

    batches = [[("a", 1), ("v", 2)], [("v", 3)], [("b", 4)], [("ü", 5), ("v", 6), ("c", 7)]]
    payloads = [EventBatch(received_at=T0, ids=[f"e{t}" for _, t in b],
                           timestamps=[T0 + t for _, t in b], types=["x"] * len(b),
                           users=[u for u, _ in b], sessions=[None] * len(b)).to_json()
                for b in batches]
    path = tmp_path / "wal-00000001.log"
    path.write_bytes(b"".join(frame(p) for p in payloads))
    starts = [0]
    for p in payloads:
        starts.append(starts[-1] + len(frame(p)))
    removed, moved = filter_wal_file(str(path), {"v"})
    assert removed == 3
    data = path.read_bytes()
    kept = {end - len(p) - 8: EventBatch.from_json(p).users for end, p in read_frames(data)}
    assert list(kept.values()) == [["a"], ["b"], ["ü", "c"]]
    assert moved[starts[0]] in kept and kept[moved[starts[0]]] == ["a"]
    assert moved[starts[1]] == moved[starts[2]] and kept[moved[starts[2]]] == ["b"]
    assert kept[moved[starts[3]]] == ["ü", "c"] and moved[starts[4]] == len(data)
