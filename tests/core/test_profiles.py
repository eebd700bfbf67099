"""The profile store: durability (log replay, updates recovered from the WAL when the log
lost its tail), erasure (`forget` leaves no byte of the values in the log) and the fold
across merged persons."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rta.core.config import EngineConfig
from rta.core.embedded.store.records import read_valid
from rta.core.engine import Engine, open_engine
from rta.core.errors import NotFoundError, ValidationError
from rta.core.profile_log import LOG_NAME

T0 = 1_700_000_000_000


def _log(data: Path) -> Path:
    return data / "persons" / LOG_NAME


async def test_fold_across_merges_and_the_api(tmp_path: Path) -> None:
    async with open_engine(EngineConfig(data_dir=str(tmp_path))) as engine:
        await engine.submit([
            {"type": "a", "userId": "anon", "timestamp": T0,
             "properties": {"$set_once": {"plan": "trial", "src": "ads"}}},
            {"type": "a", "userId": "user", "timestamp": T0,
             "properties": {"$set": {"plan": "pro"}}},
            {"type": "$identify", "userId": "user", "timestamp": T0,
             "properties": {"$anon_distinct_id": "anon"}}], partial=False, now=T0)
        profiles = engine.profiles
        # arrival order over both ids: anon's set_once, then user's $set
        assert profiles.properties("user") == {"plan": "pro", "src": "ads"}
        out = profiles.set_properties("anon", {"$unset": ["src"], "$set_once": {"plan": "x"}})
        assert out == {"personId": "user", "properties": {"plan": "pro"}}
        with pytest.raises(NotFoundError):
            profiles.set_properties("ghost", {"$set": {"a": 1}})
        with pytest.raises(ValidationError):
            profiles.set_properties("user", {"$set": {"a": [1]}})
        assert profiles.properties("user") == {"plan": "pro"}
        version = profiles.version  # a repeated value changes nothing (caches stay)
        profiles.set_properties("user", {"$set": {"plan": "pro"}, "$set_once": {"plan": "y"}})
        assert profiles.version == version and profiles.updates == 4


async def test_replay_and_recovery_from_the_wal(tmp_path: Path) -> None:
    config = EngineConfig(data_dir=str(tmp_path))
    engine = Engine(config)
    await engine.submit([{"type": "a", "userId": f"u{i}", "timestamp": T0 + i,
                          "properties": {"$set": {"n": i, "tag": f"t{i}"}}}
                         for i in range(3)], partial=False, now=T0)
    engine.profiles.set_properties("u0", {"$set": {"api": True}})
    await engine.submit([{"type": "a", "userId": "u1", "timestamp": T0,
                          "properties": {"$set": {"n": 10}}}], partial=False, now=T0)
    # a crash (nothing closed, the head only in the WAL) that lost the log's last record
    os.close(engine.store._lock_fd)  # type: ignore[arg-type]
    engine.store._lock_fd = None
    engine.profiles.close()
    engine.persons.close()
    engine.metadata.close()
    log = _log(tmp_path)
    payloads, _, _ = read_valid(str(log))
    data = log.read_bytes()
    log.write_bytes(data[:len(data) - len(payloads[-1]) - 8])
    async with open_engine(config) as engine:
        assert engine.profiles.properties("u0") == {"api": True, "n": 0, "tag": "t0"}
        assert engine.profiles.properties("u1") == {"n": 10, "tag": "t1"}
        assert engine.profiles.updates == 5
    async with open_engine(config) as engine:  # (recovered once: not applied twice)
        assert engine.profiles.updates == 5
        assert engine.profiles.properties("u1") == {"n": 10, "tag": "t1"}


async def test_forget_leaves_no_byte_behind(tmp_path: Path) -> None:
    config = EngineConfig(data_dir=str(tmp_path))
    secret = "alice-secret@example.com"
    async with open_engine(config) as engine:
        await engine.submit([
            {"type": "a", "userId": "alice", "timestamp": T0,
             "properties": {"$set": {"email": secret}}},
            {"type": "a", "userId": "bob", "timestamp": T0,
             "properties": {"$set": {"email": "bob@example.com"}}}], partial=False, now=T0)
        assert secret.encode() in _log(tmp_path).read_bytes()
        assert engine.profiles.forget("alice", ["alice"]) == 1
        assert engine.profiles.properties("alice") == {}
        assert engine.profiles.properties("bob") == {"email": "bob@example.com"}
        assert secret.encode() not in _log(tmp_path).read_bytes()
        assert not os.path.exists(str(_log(tmp_path)) + ".tmp")
        # appends continue after the rewrite
        engine.profiles.set_properties("bob", {"$set": {"plan": "pro"}})
    async with open_engine(config) as engine:
        assert engine.profiles.properties("alice") == {}
        assert engine.profiles.properties("bob") == {"email": "bob@example.com",
                                                      "plan": "pro"}
    assert b"bob@example.com" in _log(tmp_path).read_bytes()


async def test_queries_follow_property_changes() -> None:
    """Person-aware blocks are reused across property changes (the user indexes stay);
    each query reads the properties current when it starts."""
    from rta.core.queries import analytics, behaviour

    async with open_engine(EngineConfig()) as engine:
        await engine.submit([
            {"type": t, "userId": u, "timestamp": T0 + i}
            for i, (u, t) in enumerate([("a", "land"), ("b", "land"), ("a", "buy"),
                                        ("b", "buy")])], partial=False, now=T0 + 10)
        engine.profiles.set_properties("a", {"$set": {"plan": "pro"}})
        body = {"steps": [{"eventType": "land"}, {"eventType": "buy"}], "startTime": T0,
                "endTime": T0 + 10, "where": [{"property": "person.plan", "value": "pro"}]}
        span = {"startTime": T0, "endTime": T0 + 10, "groupBy": "person.plan"}
        assert behaviour.run_funnel(engine, body, T0 + 10)["totalCompleted"] == 1
        engine.profiles.set_properties("b", {"$set": {"plan": "pro"}})
        assert behaviour.run_funnel(engine, body, T0 + 10)["totalCompleted"] == 2
        assert analytics.run_count(engine, span)["groups"] == [
            {"key": "pro", "count": 4, "share": 1.0}]
        engine.profiles.set_properties("a", {"$unset": ["plan"]})
        assert behaviour.run_funnel(engine, body, T0 + 10)["totalCompleted"] == 1
        assert analytics.run_count(engine, span)["missing"] == 2


async def test_identify_traits_but_not_posthog_event_properties() -> None:
    async with open_engine(EngineConfig()) as engine:
        await engine.submit([
            {"type": "$identify", "userId": "s", "timestamp": T0,  # (Segment, as mapped)
             "properties": {"plan": "pro", "anonymousId": "a1", "address": {"city": "Oslo"},
                            "context": {"library": {"name": "analytics-python"}}}},
            {"type": "$identify", "userId": "p", "timestamp": T0,  # (posthog-js)
             "properties": {"$lib": "web", "$anon_distinct_id": "a2", "app_version": "3",
                            "$set": {"plan": "team"}}}], partial=False, now=T0)
        assert engine.profiles.properties("s") == {"address.city": "Oslo", "plan": "pro"}
        assert engine.profiles.properties("p") == {"plan": "team"}
