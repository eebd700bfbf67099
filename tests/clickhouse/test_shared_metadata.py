"""Several daemons, one database (#17 item 6): the shared metadata store, the alerts lease and
the evaluator's gate, against chdb in this process (two stores, two lease participants and
two evaluators on one database stand for two daemons); and, with RTA_CLICKHOUSE_URL set, two
real `rta serve --backend clickhouse` daemons on one server."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
import trio

from rta.core.alerts import AlertEvaluator
from rta.core.clickhouse.connection import ClickHouse, ClickHouseError, parse_url
from rta.core.clickhouse.lease import Lease, wall_ms
from rta.core.clickhouse.metadata_store import ClickHouseMetadataStore
from rta.core.config import EngineConfig
from rta.core.dashboards.storage import register_template
from rta.core.embedded import segments
from rta.core.engine import Engine, shared_metadata, shares_metadata
from rta.core.errors import ConflictError, NotFoundError, RtaError
from rta.core.metadata import Metadata, MetadataStore
from tests.clickhouse.harness import chdb_database
from tests.support import ServeProcess


@pytest.fixture
def ch() -> Iterator[ClickHouse]:
    conn = chdb_database()
    yield conn
    conn.command(f"DROP DATABASE IF EXISTS `{conn.database}`")


class Clock:
    """A hand-stepped clock near the wall clock (the lease table's TTL reads real dates)."""

    def __init__(self) -> None:
        self.now = wall_ms()

    def __call__(self) -> int:
        return self.now

    def step(self, ms: int) -> None:
        self.now += ms


def _strip(doc: dict[str, Any] | None) -> dict[str, Any] | None:
    """A document without what differs between two runs (id, times)."""
    if doc is None:
        return None
    return {k: v for k, v in doc.items() if k not in ("id", "createdAt", "updatedAt")}


def _error(fn: Any) -> tuple[type, str, Any] | None:
    try:
        fn()
    except RtaError as exc:
        return type(exc), exc.message, exc.details
    return None


# -- the metadata store ------------------------------------------------------------------


def test_two_stores_see_each_others_writes(ch: ClickHouse) -> None:
    a, b = ClickHouseMetadataStore(ch), ClickHouseMetadataStore(ch)
    doc = a.create("dashboard", {"name": "ops", "widgets": []})
    assert b.get("dashboard", doc["id"]) == doc
    assert b.list("dashboard") == [doc]
    assert b.find_by_name("dashboard", "ops") == doc
    time.sleep(0.002)
    changed = b.put("dashboard", doc["id"], {"name": "ops2", "widgets": [1]})
    assert changed["createdAt"] == doc["createdAt"] and changed["updatedAt"] > doc["updatedAt"]
    assert a.get("dashboard", doc["id"]) == changed
    assert a.find_by_name("dashboard", "ops") is None
    assert a.find_by_name("dashboard", "ops2") == changed
    b.delete("dashboard", doc["id"])
    assert a.list("dashboard") == []
    with pytest.raises(NotFoundError):
        a.get("dashboard", doc["id"])
    with pytest.raises(NotFoundError):
        a.delete("dashboard", doc["id"])
    again = a.create("dashboard", {"name": "back"}, doc_id=doc["id"])  # an id can come back
    assert b.get("dashboard", doc["id"]) == again
    a.append_history("alert", "r1", {"n": 1})
    b.append_history("alert", "r2", {"n": 2})
    a.append_history("alert", "r1", {"n": 3})
    assert b.history("alert") == [{"n": 3}, {"n": 2}, {"n": 1}]
    assert b.history("alert", ref="r1") == [{"n": 3}, {"n": 1}]
    assert a.history("alert", limit=1) == [{"n": 3}]


def _script(store: Metadata) -> list[Any]:
    """Every call of the interface, including the failing ones, and what each answered."""
    out: list[Any] = []
    first = store.create("segment", {"name": "s", "filters": []})
    time.sleep(0.002)
    second = store.create("segment", {"name": "s", "x": 1})  # (the store allows it)
    store.create("segment", {"name": "t"}, doc_id="fixed")
    replaced = store.create("segment", {"name": "t2"}, doc_id="fixed")
    out.append([_strip(d) for d in store.list("segment")])
    out.append(_strip(store.find_by_name("segment", "s")))
    out.append(store.find_by_name("segment", "s") == store.get("segment", first["id"]))
    out.append(store.find_by_name("segment", "nobody"))
    out.append(_strip(store.get("segment", "fixed")) == _strip(replaced))
    out.append(_error(lambda: store.get("segment", "missing")))
    out.append(_error(lambda: store.put("segment", "missing", {"name": "x"})))
    out.append(_error(lambda: store.delete("segment", "missing")))
    out.append(_error(lambda: store.get("dashboard", "fixed")))  # kinds are apart
    store.delete("segment", second["id"])
    out.append([_strip(d) for d in store.list("segment")])
    for i in range(4):
        store.append_history("alert", f"r{i % 2}", {"i": i})
    out.append(store.history("alert", limit=3))
    out.append(store.history("alert", ref="r0"))
    out.append(store.history("other"))
    return out


def test_same_answers_and_errors_as_the_sqlite_store(ch: ClickHouse) -> None:
    sqlite = MetadataStore(None)
    try:
        assert _script(ClickHouseMetadataStore(ch)) == _script(sqlite)
    finally:
        sqlite.close()


def test_name_conflicts_across_daemons(ch: ClickHouse) -> None:
    """Callers' 409s (segments, templates) see documents created through another daemon."""
    one = SimpleNamespace(metadata=ClickHouseMetadataStore(ch))
    two = SimpleNamespace(metadata=ClickHouseMetadataStore(ch))
    segments.create(one, {"name": "buyers", "filters": []})  # type: ignore[arg-type]
    with pytest.raises(RtaError) as clash:
        segments.create(two, {"name": "buyers", "filters": []})  # type: ignore[arg-type]
    assert clash.value.status == 409
    assert segments.find(two, "buyers")["name"] == "buyers"  # type: ignore[arg-type]
    body = {"template": "mine", "widgets": []}
    register_template(one, body)  # type: ignore[arg-type]
    with pytest.raises(ConflictError):
        register_template(two, body)  # type: ignore[arg-type]


def test_data_dir_tokens_still_count(ch: ClickHouse, tmp_path: Path) -> None:
    """A token made with `rta token create --data-dir` (the sqlite file) is seen by that
    daemon's shared store next to the shared tokens, and can be revoked through it."""
    local = MetadataStore(str(tmp_path))
    mine = local.create("token", {"name": "first", "scope": "admin"})
    store = ClickHouseMetadataStore(ch, local=local)
    other = ClickHouseMetadataStore(ch)
    time.sleep(0.002)
    shared = other.create("token", {"name": "shared", "scope": "read"})
    assert store.list("token") == [mine, shared]
    assert other.list("token") == [shared]  # (another daemon's data dir is its own)
    assert store.get("token", mine["id"]) == mine
    assert store.find_by_name("token", "first") == mine
    store.delete("token", mine["id"])
    assert store.list("token") == [shared]
    with pytest.raises(NotFoundError):
        store.delete("token", mine["id"])
    store.close()


def test_tokens_answer_from_the_last_read_while_clickhouse_is_away(ch: ClickHouse) -> None:
    """Authentication is on the ingest path, which keeps acknowledging while ClickHouse is
    unreachable: token lists then answer from the last read; other reads fail (503)."""
    store = ClickHouseMetadataStore(ch)
    token = store.create("token", {"name": "t", "scope": "write"})
    assert store.list("token") == [token]
    store.ch = ClickHouse(parse_url("http://127.0.0.1:9/rta"))  # nothing listens there
    assert store.list("token") == [token]
    assert store.list("token") == [token]  # (not retried for a few seconds)
    with pytest.raises(ClickHouseError):
        store.list("dashboard")


# -- the lease ---------------------------------------------------------------------------


def _pair(ch: ClickHouse, clock: Clock, name: str = "alerts") -> tuple[Lease, Lease]:
    return (Lease(ch, name, "daemon-a", term_ms=300, renew_ms=100, clock=clock),
            Lease(ch, name, "daemon-b", term_ms=300, renew_ms=100, clock=clock))


def test_one_holder_and_takeover_after_the_holder_stops(ch: ClickHouse) -> None:
    clock = Clock()
    a, b = _pair(ch, clock)
    assert a.renew() and not b.renew()
    for _ in range(5):  # both renewing: the first claim keeps it
        clock.step(100)
        assert a.renew() and not b.renew()
        assert a.held != b.held and a.current == b.current == "daemon-a"
    # a stops renewing (crashed, or cut off from ClickHouse): its own view lapses first...
    clock.step(100)
    assert not b.renew()
    clock.step(180)  # 280 ms after a's last renewal: past a's guard (300 - 30), not its term
    assert a.held is False and not b.renew()  # nobody acts until a's claim has expired
    clock.step(30)  # past a's expiry: b takes over
    assert b.renew() and b.current == "daemon-b" and not a.held
    # a comes back: it claims afresh and waits its turn rather than snatching it back
    assert not a.renew() and a.current == "daemon-b"
    clock.step(100)
    assert b.renew() and not a.renew()


def test_release_hands_over_at_once_and_rows_are_per_lease(ch: ClickHouse) -> None:
    clock = Clock()
    a, b = _pair(ch, clock)
    other = Lease(ch, "other-job", "daemon-b", term_ms=300, renew_ms=100, clock=clock)
    assert a.renew() and not b.renew() and other.renew()  # another lease's holder is apart
    a.release()
    assert not a.held and b.renew()
    assert b.holder_now() == "daemon-b"


def test_lease_rule_is_the_same_from_every_reader(ch: ClickHouse) -> None:
    """Three participants claiming in turn: every one computes the same holder, and the
    order of succession is the order of first claims."""
    clock = Clock()
    leases = [Lease(ch, "alerts", f"d{i}", term_ms=300, renew_ms=100, clock=clock)
              for i in (2, 0, 1)]
    for lease in leases:
        lease.renew()
        clock.step(10)
    for lease in leases:
        lease.renew()
    assert {lease.current for lease in leases} == {"d2"}
    leases[0].release()
    for lease in leases[1:]:
        lease.renew()
    assert {lease.current for lease in leases[1:]} == {"d0"}
    assert [lease.held for lease in leases] == [False, True, False]


# -- the evaluator's gate ----------------------------------------------------------------

T0 = 1_700_000_000_000
RULE = {"name": "busy", "condition": {"type": "threshold", "eventType": "hit",
                                      "property": "count", "operator": "gt", "threshold": 0,
                                      "timeWindow": 60_000},
        "notification": {"channels": ["log"]}, "cooldown": 0}


def _daemon(ch: ClickHouse, lease: Lease) -> tuple[Engine, AlertEvaluator]:
    engine = Engine(EngineConfig(fsync=False))
    engine.metadata.close()
    engine.metadata = ClickHouseMetadataStore(ch)
    engine.alert_lease = lease
    return engine, AlertEvaluator(engine, interval_ms=10)


def _hit(engine: Engine, evaluator: AlertEvaluator) -> None:
    now = wall_ms()

    async def send() -> None:
        batch = (await engine.submit([{"type": "hit", "userId": "u", "timestamp": now}],
                                     partial=False, now=now))
        assert batch.accepted == 1
    engine.on_ingest(evaluator.on_ingest)
    trio.run(send)


def test_only_the_holder_evaluates_and_rules_follow_the_store(ch: ClickHouse) -> None:
    from rta.core.alerts import validate_alert

    clock = Clock()
    lease_a, lease_b = _pair(ch, clock)
    engine_a, ev_a = _daemon(ch, lease_a)
    engine_b, ev_b = _daemon(ch, lease_b)
    try:
        assert lease_a.renew() and not lease_b.renew()
        rule = engine_b.metadata.create("alert", validate_alert(RULE))  # made on b
        ev_b.load(rule)
        for engine, ev in ((engine_a, ev_a), (engine_b, ev_b)):
            _hit(engine, ev)

        def round_(ev: AlertEvaluator) -> None:
            trio.run(ev._leased_round)

        round_(ev_a)  # a becomes the holder: it reads the rules and evaluates
        round_(ev_b)
        assert set(ev_a.states) == {rule["id"]} and ev_a.evaluated == 1
        assert ev_b.evaluated == 0  # b is not the holder
        assert [h["event"] for h in engine_b.metadata.history("alert")] == ["fired"]
        # a stops renewing; after its term b holds, evaluates and fires on its own counters
        clock.step(310)
        assert lease_b.renew()
        round_(ev_a)
        round_(ev_b)
        assert ev_a.evaluated == 1 and ev_b.evaluated == 1
        assert [h["event"] for h in engine_a.metadata.history("alert")] == ["fired", "fired"]
        # a rule changed and another deleted through a: b follows on its next reload
        changed = engine_a.metadata.put("alert", rule["id"],
                                        {**validate_alert(RULE), "enabled": False})
        ev_b._reloaded_at = 0.0
        round_(ev_b)
        assert ev_b.states[rule["id"]].rule.enabled is False
        assert ev_b._loaded[rule["id"]] == changed["updatedAt"]
        engine_a.metadata.delete("alert", rule["id"])
        ev_b._reloaded_at = 0.0
        round_(ev_b)
        assert ev_b.states == {}
    finally:
        engine_a.close()
        engine_b.close()


def test_without_a_lease_the_evaluator_is_as_before() -> None:
    engine = Engine(EngineConfig(fsync=False))
    try:
        ev = AlertEvaluator(engine, interval_ms=10)
        assert ev.lease is None and "lease" not in ev.stats()
    finally:
        engine.close()


def test_engine_shares_only_over_a_server(ch: ClickHouse, tmp_path: Path) -> None:
    """chdb is one process's engine (nothing to share): the sqlite store stays; a server
    gets the shared store and a lease (built without I/O, so no server is needed here)."""
    assert not shares_metadata(SimpleNamespace(ch=ch))  # type: ignore[arg-type]
    server = ClickHouse.__new__(ClickHouse)
    server.target = SimpleNamespace(in_process=False)  # type: ignore[assignment]
    assert shares_metadata(SimpleNamespace(ch=server))  # type: ignore[arg-type]
    local = MetadataStore(str(tmp_path))
    metadata, lease = shared_metadata(EngineConfig(), SimpleNamespace(ch=ch),  # type: ignore[arg-type]
                                      local)
    assert isinstance(metadata, ClickHouseMetadataStore) and metadata.local is local
    assert lease.name == "alerts" and not lease.held
    metadata.close()


# -- two daemons on a real server --------------------------------------------------------


SERVER = os.environ.get("RTA_CLICKHOUSE_URL", "")


@pytest.mark.skipif(not SERVER.startswith(("http://", "https://")),
                    reason="set RTA_CLICKHOUSE_URL to a ClickHouse server "
                    "(http://user:pass@host:8123/db) to run two daemons on it; chdb cannot be "
                    "opened by two processes")
def test_two_daemons_share_dashboards_and_one_evaluates(tmp_path: Path) -> None:
    daemons = [ServeProcess(str(tmp_path / f"data{i}"), "--backend", "clickhouse",
                            "--clickhouse-url", SERVER) for i in range(2)]
    urls = [d.start(timeout=60) for d in daemons]
    try:
        name = f"shared-{os.getpid()}-{time.time_ns()}"
        r = httpx.post(urls[0] + "/dashboards", json={"name": name, "widgets": []}, timeout=30)
        assert r.status_code == 201, r.text
        listed = httpx.get(urls[1] + "/dashboards", timeout=30).json()["dashboards"]
        assert r.json()["id"] in {d["id"] for d in listed}
        assert httpx.delete(urls[1] + f"/dashboards/{r.json()['id']}", timeout=30).is_success
        listed = httpx.get(urls[0] + "/dashboards", timeout=30).json()["dashboards"]
        assert r.json()["id"] not in {d["id"] for d in listed}
        deadline = time.monotonic() + 10
        while True:  # both have renewed at least once: exactly one holds the lease
            held = [httpx.get(u + "/stats", timeout=30).json()["alerts"]["lease"]["held"]
                    for u in urls]
            if sum(held) == 1 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert sum(held) == 1, held
    finally:
        for d in daemons:
            d.stop()
