"""Person-aware queries against an independent reference, on hypothesis data with links.

The reference folds the links with its own small model of PostHog's merge rules (sets of
ids, an identified flag per set, the target's person absorbing the source's), rewrites
every event's `userId` to its person, and lets a second engine answer the raw-id queries
over the rewritten events. Both engines must answer unique users, funnels, retention, top
by users and the event list's `personId` alike; with `identity=raw` the first engine must
answer as if no link existed.
"""

from __future__ import annotations

from typing import Any

import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rta.core import query_services
from rta.core.config import EngineConfig
from rta.core.engine import Engine, open_engine
from rta.core.persons import RAW, identity_mode
from rta.core.queries import analytics, behaviour
from rta.core.queries.filters import EventFilter

T0 = 1_700_000_000_000
DAY = 86_400_000
IDS = [f"d{i}" for i in range(8)]
TYPES = ["land", "signup", "buy"]
LINKS = {"$identify": "$anon_distinct_id", "$create_alias": "alias",
         "$merge_dangerously": "alias", "$alias": "previousId"}


def reference_persons(links: list[tuple[str, str, str]]) -> dict[str, str]:
    """distinct id -> person id, by the documented rules (independent of PersonGraph)."""
    person = {x: x for x in IDS}
    identified: set[str] = set()
    for kind, target, source in links:
        if target == source:
            continue
        pt, ps = person[target], person[source]
        identified_before = ps in identified
        identified.add(pt)
        if pt == ps or (identified_before and kind != "$merge_dangerously"):
            continue
        for x, p in person.items():
            if p == ps:
                person[x] = pt
        identified.discard(ps)
    return person


event = st.tuples(st.sampled_from(IDS), st.sampled_from(TYPES), st.integers(0, 20))
link = st.tuples(st.sampled_from(sorted(LINKS)), st.sampled_from(IDS), st.sampled_from(IDS),
                 st.integers(0, 20))


def as_events(events: list[tuple[str, str, int]], links: list[tuple[str, str, str, int]],
              person: dict[str, str] | None) -> list[dict[str, Any]]:
    def who(x: str) -> str:
        return x if person is None else person[x]
    out = [{"id": f"e{i}", "type": t, "userId": who(u), "timestamp": T0 + d * DAY // 4}
           for i, (u, t, d) in enumerate(events)]
    for i, (kind, target, source, d) in enumerate(links):
        # the rewritten copy keeps the link events (counted as events) but not their links
        props = {LINKS[kind]: source} if person is None else {"src": source}
        out.append({"id": f"l{i}", "type": kind, "userId": who(target),
                    "timestamp": T0 + d * DAY // 4, "properties": props})
    return out


QUERIES: list[tuple[str, dict[str, Any]]] = [
    ("unique", {"startTime": T0, "endTime": T0 + 10 * DAY}),
    ("unique", {"startTime": T0, "endTime": T0 + 10 * DAY, "type": "buy"}),
    ("top", {"startTime": T0, "endTime": T0 + 10 * DAY, "property": "type", "sort": "users"}),
    ("funnel", {"steps": [{"eventType": "land"}, {"eventType": "signup"},
                          {"eventType": "buy"}],
                "startTime": T0, "endTime": T0 + 10 * DAY}),
    ("funnel", {"steps": [{"eventType": "land"}, {"eventType": "buy"}],
                "startTime": T0, "endTime": T0 + 10 * DAY, "timeLimit": DAY}),
    ("cohort", {"entryEvent": "land", "retentionEvent": "buy", "periods": 5,
                "startTime": T0, "endTime": T0 + 6 * DAY}),
]


def answer(engine: Engine, kind: str, body: dict[str, Any]) -> Any:
    now = T0 + 30 * DAY
    if kind == "unique":
        out = analytics.run_unique_users(engine, body)
    elif kind == "top":
        out = analytics.run_top(engine, body)
    elif kind == "funnel":
        out = behaviour.run_funnel(engine, body, now)
    else:
        out = behaviour.run_cohort(engine, body, now)
    out.pop("cached", None)
    return out


async def answers(events: list[dict[str, Any]], raw: bool = False) -> list[Any]:
    async with open_engine(EngineConfig()) as engine:
        await engine.submit(events, partial=False, now=T0 + 30 * DAY)
        token = identity_mode.set(RAW) if raw else None
        try:
            return [answer(engine, k, b) for k, b in QUERIES]
        finally:
            if token is not None:
                identity_mode.reset(token)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(event, min_size=1, max_size=40), st.lists(link, max_size=8))
def test_person_queries_match_a_rewritten_reference(events: list[tuple[str, str, int]],
                                                    links: list[tuple[str, str, str, int]]
                                                    ) -> None:
    # links apply in arrival order (their events' order), whatever their timestamps
    person = reference_persons([(k, t, s) for k, t, s, _ in links])
    got = trio.run(answers, as_events(events, links, None))
    want = trio.run(answers, as_events(events, links, person))
    assert got == want
    raw = trio.run(answers, as_events(events, links, None), True)
    plain = trio.run(answers, as_events(events, [(k, t, t, d) for k, t, _, d in links],
                                        None))
    assert raw == plain  # identity=raw: as if no link existed (self-links carry none)


async def test_event_list_keeps_user_id_and_adds_person_id() -> None:
    async with open_engine(EngineConfig()) as engine:
        await engine.submit([
            {"type": "land", "userId": "anon", "timestamp": T0},
            {"type": "$identify", "userId": "u1", "timestamp": T0 + 1,
             "properties": {"$anon_distinct_id": "anon"}},
            {"type": "buy", "userId": "u1", "timestamp": T0 + 2}], partial=False, now=T0 + 5)
        ctx = query_services.context(engine)
        page = ctx.backend.events(EventFilter(), 10, None)
        rows = [(e["userId"], e.get("personId")) for e in page.to_json()["events"]]
        assert rows == [("u1", "u1"), ("u1", "u1"), ("anon", "u1")]
        # the userId filter matches ids as sent, not the whole person
        page = ctx.backend.events(EventFilter(users=("anon",)), 10, None)
        assert [e["userId"] for e in page.to_json()["events"]] == ["anon"]
