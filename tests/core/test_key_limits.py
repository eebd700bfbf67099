"""Limits on property keys and event types (#24): per event, per batch and store-wide, with
the same verdict on the column-wise fast path and the per-event path, and a budget that
refused or dropped batches cannot use up."""

from __future__ import annotations

import gc
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import trio

from rta.core.config import EngineConfig
from rta.core.engine import Engine, open_engine
from rta.core.errors import ValidationError
from rta.core.events import EventValidator, Limits
from rta.core.key_budget import KeyBudget


def wide_event(i: int, keys: int, prefix: str = "k") -> dict[str, Any]:
    return {"type": "t", "userId": f"u{i}",
            "properties": {f"{prefix}{i}_{j}": j for j in range(keys)}}


def test_an_event_over_the_key_limit_is_refused_naming_the_limit() -> None:
    v = EventValidator(Limits(max_event_properties=10))
    assert len(v.validate_one(wide_event(0, 10)).props) == 10
    with pytest.raises(ValidationError) as caught:
        v.validate_one(wide_event(1, 11))
    err = caught.value.to_dict()["error"]
    assert err["code"] == "too_many_properties"
    assert err["details"][0] == {"field": "properties", "message": err["details"][0]["message"],
                                 "count": 11, "limit": 10}
    assert "max_event_properties" in err["message"]


def test_nested_keys_count_after_flattening() -> None:
    v = EventValidator(Limits(max_event_properties=3))
    with pytest.raises(ValidationError):
        v.validate_one({"type": "t", "properties": {"a": {"b": 1, "c": 2}, "d": {"e": 3},
                                                    "f": 4}})


def test_a_batch_keeps_events_until_its_distinct_keys_reach_the_limit() -> None:
    """The attack of #24: 100 events x 1,000 unique keys. The fast path gives up, the
    per-event path accepts the events that fit and names each refused one by index."""
    v = EventValidator(Limits(max_batch_property_keys=10_000))
    items = [wide_event(i, 1000) for i in range(100)]
    assert v.fast_batch(items) is None
    batch, rejected = v.validate_batch(items)
    assert len(batch) == 10 and len(batch.props) == 10_000
    assert [r["index"] for r in rejected] == list(range(10, 100))
    assert {r["error"]["code"] for r in rejected} == {"too_many_property_keys"}


def test_the_fast_path_and_the_per_event_path_agree_on_key_counts() -> None:
    v = EventValidator(Limits(max_event_properties=5, max_batch_property_keys=12))
    ok = [wide_event(i, 4, "same") for i in range(3)]  # 12 distinct keys in all
    fast = v.fast_batch(ok)
    assert fast is not None and len(fast) == 3
    slow, rejected = v.validate_batch([*ok, wide_event(9, 1)])
    assert len(slow) == 3 and [r["index"] for r in rejected] == [3]
    assert v.fast_batch([wide_event(0, 6)]) is None  # one event over: the slow path decides


def test_the_store_budget_refuses_new_names_and_always_takes_known_ones() -> None:
    budget = KeyBudget(max_columns=5, max_types=2)
    v = EventValidator(Limits(), budget=budget)
    first = v.validate_one({"type": "a", "properties": {"x": 1, "y": "s"}})
    budget.register(first)
    held = v.validate_one({"type": "b", "properties": {"z": 1.5}})  # pending, not applied
    with pytest.raises(ValidationError) as caught:
        v.validate_one({"type": "c"})
    assert caught.value.code == "event_type_limit"
    assert caught.value.details[0]["limit"] == 2
    with pytest.raises(ValidationError) as caught:
        v.validate_one({"type": "a", "properties": {"p": 1, "q": 2, "r": 3}})
    assert caught.value.code == "property_key_limit"
    assert caught.value.details[0]["field"] == "properties.p"
    # known names always pass, however full the budget
    again = v.validate_one({"type": "a", "properties": {"x": 2, "y": "t"}})
    assert len(again) == 1
    budget.register(held)
    assert budget.stats()["propertyKeys"] == 3 and budget.stats()["eventTypes"] == 2


def test_a_batch_dropped_unstored_gives_its_claims_back() -> None:
    """Otherwise batches refused for another reason (an invalid neighbour) would use up the
    budget without storing anything."""
    budget = KeyBudget(max_columns=1000, max_types=10)
    v = EventValidator(Limits(), budget=budget)
    for round_ in range(5):
        batch, _ = v.validate_batch([wide_event(round_, 500, "r")])
        assert budget.columns == 500
        del batch
        gc.collect()
        assert budget.columns == 0


async def test_the_engine_caps_keys_and_types_across_restarts(tmp_path: Path) -> None:
    config = EngineConfig(data_dir=str(tmp_path), max_property_keys=20, max_event_types=3)
    async with open_engine(config) as engine:
        batch, rejected = engine.validator.validate_batch(
            [{"type": f"t{i}", "properties": {f"k{i}_{j}": j for j in range(5)}}
             for i in range(5)])
        assert len(batch) == 3  # the 4th type is refused before the key limit matters
        assert [r["error"]["code"] for r in rejected] == ["event_type_limit"] * 2
        await engine.ingest(batch)
        assert engine.stats()["limits"]["propertyKeys"] == 15
    engine_again = Engine(config)  # recounts from the store (head replayed from the WAL)
    try:
        assert engine_again.key_budget.stats()["eventTypes"] == 3
        assert engine_again.key_budget.stats()["propertyKeys"] == 15
        with pytest.raises(ValidationError):
            engine_again.validator.validate_one({"type": "t0", "properties": {
                f"new{j}": j for j in range(6)}})
        assert len(engine_again.validator.validate_one(
            {"type": "t2", "properties": {"k2_0": 1, "fresh": 1}})) == 1
    finally:
        engine_again.close()


async def test_http_batch_over_the_limits_is_a_400_naming_each_event(tmp_path: Path) -> None:
    import httpx

    from tests.support import live_server

    config = EngineConfig(data_dir=str(tmp_path), limits=replace(
        Limits(), max_batch_property_keys=100))
    async with live_server(config) as srv, httpx.AsyncClient(base_url=srv.url) as http:
        items = [wide_event(i, 60) for i in range(3)]
        r = await http.post("/events/batch", json=items)
        assert r.status_code == 400, r.text
        err = r.json()["error"]
        assert err["code"] == "invalid_batch"
        assert [(d["index"], d["code"]) for d in err["details"]] == [
            (1, "too_many_property_keys"), (2, "too_many_property_keys")]
        r = await http.post("/events/batch?partial=true", json=items)
        assert r.status_code == 202 and r.json()["accepted"] == 1
        r = await http.post("/events", json=wide_event(7, 1001))
        assert r.status_code == 400 and r.json()["error"]["code"] == "too_many_properties"
        await trio.sleep(0)
