"""Person properties in every query family against an independent reference.

The reference folds the updates itself (arrival order; `$set` wins, `$set_once` only while
absent, `$unset` removes; a person folds the updates of all its distinct ids) and the links
with the small merge model of `test_persons_reference`, then writes each event's person
and that person's final properties into the events (`pp_<key>`) of a second engine. A
query naming `person.<key>` on the first engine must answer what the same query naming
`pp_<key>` answers on the second: filters (string, numeric, boolean, missing values),
unique users, breakdowns, funnels, retention, segments, A/B tests, stickiness, exports.
"""

from __future__ import annotations

import json
from typing import Any

import trio
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from rta.core.config import EngineConfig
from rta.core.engine import Engine, open_engine
from rta.core.export import Export, parse_export
from rta.core.queries import analytics, behaviour
from tests.core.test_persons_reference import IDS, LINKS, reference_persons

T0 = 1_700_000_000_000
DAY = 86_400_000
TYPES = ["land", "signup", "buy"]
KEYS = ("plan", "n", "flag")
VALUES = {"plan": st.sampled_from(["pro", "free", "Pro"]),
          "n": st.sampled_from([1, 2, 3, 2.5]), "flag": st.booleans()}
update = st.fixed_dictionaries({}, optional={
    "$set": st.fixed_dictionaries({}, optional=VALUES),
    "$set_once": st.fixed_dictionaries({}, optional=VALUES),
    "$unset": st.lists(st.sampled_from(KEYS), max_size=2)})
event = st.tuples(st.sampled_from(IDS), st.sampled_from(TYPES), st.integers(0, 20),
                  st.one_of(st.none(), update))
link = st.tuples(st.sampled_from(sorted(LINKS)), st.sampled_from(IDS), st.sampled_from(IDS))


def reference_properties(events: list[tuple[str, str, int, Any]],
                         person: dict[str, str]) -> dict[str, dict[str, Any]]:
    """person id -> properties, folded by the documented rule, written independently."""
    out: dict[str, dict[str, Any]] = {}
    for user, _, _, upd in events:
        if not upd:
            continue
        props = out.setdefault(person[user], {})
        for key, value in upd.get("$set", {}).items():
            props[key] = value
        for key, value in upd.get("$set_once", {}).items():
            if key not in props:
                props[key] = value
        for key in upd.get("$unset", []):
            props.pop(key, None)
    return out


def build(events: list[tuple[str, str, int, Any]], links: list[tuple[str, str, str]],
          reference: bool) -> list[dict[str, Any]]:
    person = reference_persons(links)
    final = reference_properties(events, person)
    out = []
    for i, (user, etype, d, upd) in enumerate(events):
        e: dict[str, Any] = {"id": f"e{i}", "type": etype, "timestamp": T0 + d * DAY // 4}
        if reference:
            e["userId"] = person[user]
            e["properties"] = {f"pp_{k}": v for k, v in final.get(person[user], {}).items()}
        else:
            e["userId"] = user
            if upd:
                e["properties"] = dict(upd)
        out.append(e)
    for i, (kind, target, source) in enumerate(links):
        out.append({"id": f"l{i}", "type": kind, "timestamp": T0 + 21 * DAY // 4,
                    "userId": person[target] if reference else target,
                    "properties": ({f"pp_{k}": v for k, v in
                                    final.get(person[target], {}).items()} if reference
                                   else {LINKS[kind]: source})})
    return out


def queries(p: str) -> list[tuple[str, dict[str, Any]]]:
    """The queries, with person properties named `p + key`."""
    span = {"startTime": T0, "endTime": T0 + 10 * DAY}
    return [
        ("count", {**span, "where": [{"property": p + "plan", "value": "pro"}]}),
        ("count", {**span, "where": [{"property": p + "plan", "operator": "neq",
                                      "value": "pro"}]}),
        ("count", {**span, "where": [{"property": p + "n", "operator": "gt", "value": 1}]}),
        ("count", {**span, "where": [{"property": p + "n", "operator": "in",
                                      "value": [2.5, "x", True]}]}),
        ("count", {**span, "where": [{"property": p + "flag", "value": True}]}),
        ("count", {**span, "where": [{"property": p + "plan", "operator": "starts_with",
                                      "value": "p"}]}),
        ("count", {**span, "where": [{"property": p + "nokey", "value": "pro"}]}),
        ("count", {**span, "groupBy": p + "plan"}),
        ("count", {**span, "groupBy": p + "n"}),
        ("aggregate", {**span, "metric": p + "n", "aggregation": "sum"}),
        ("aggregate", {**span, "metric": p + "plan", "aggregation": "avg"}),
        ("unique", {**span, "where": [{"property": p + "plan", "operator": "exists"}]}),
        ("unique", {**span, "type": "buy", "where": [{"property": p + "flag",
                                                      "operator": "not_exists"}]}),
        ("top", {**span, "property": p + "plan", "sort": "users"}),
        ("funnel", {**span, "steps": [{"eventType": "land"}, {"eventType": "buy"}],
                    "where": [{"property": p + "plan", "value": "pro"}]}),
        ("funnel", {**span, "steps": [{"eventType": "land"},
                                      {"eventType": "buy", "where": [
                                          {"property": p + "n", "operator": "gte",
                                           "value": 2}]}],
                    "breakdown": p + "plan"}),
        ("cohort", {"entryEvent": "land", "retentionEvent": "buy", "periods": 4,
                    "startTime": T0, "endTime": T0 + 5 * DAY, "breakdown": p + "plan"}),
        ("segment", {**span, "name": "s", "filters": [
            {"property": p + "plan", "operator": "eq", "value": "pro"}]}),
        ("abtest", {**span, "name": "ab", "eventType": "land", "variantProperty": p + "plan",
                    "metricEvent": "buy", "control": "free", "minimumSampleSize": 0}),
        ("stickiness", {**span, "eventType": "land",
                        "where": [{"property": p + "plan", "operator": "neq",
                                   "value": "free"}]}),
        ("query", {"type": "paths", "config": {
            **span, "where": [{"property": p + "plan", "operator": "in",
                               "value": ["pro", "Pro"]}]}}),
        ("query", {"type": "lifecycle", "config": {
            **span, "eventType": "buy",
            "where": [{"property": p + "n", "operator": "lt", "value": 3}]}}),
        ("export", {"format": "ndjson", "fields": ["id", "type"],
                    "filter": {**span, "where": [{"property": p + "flag",
                                                  "operator": "exists"}]}}),
    ]


def answer(engine: Engine, kind: str, body: dict[str, Any]) -> Any:
    now = T0 + 30 * DAY
    try:
        if kind == "count":
            out = analytics.run_count(engine, body)
        elif kind == "aggregate":
            out = analytics.run_aggregate(engine, body)
        elif kind == "unique":
            out = analytics.run_unique_users(engine, body)
        elif kind == "top":
            out = analytics.run_top(engine, body)
        elif kind == "export":
            export = Export(engine.snapshot(), parse_export(body), now=0)
            text = b"".join(export.chunks()).decode()
            return sorted(json.loads(line)["id"] for line in text.splitlines())
        else:
            out = getattr(behaviour, f"run_{kind}")(engine, body, now)
    except Exception as exc:  # (both engines must fail alike)
        return ["error", type(exc).__name__, str(exc).replace("pp_", "person.")]
    text = json.dumps(out, sort_keys=True).replace("pp_", "person.")
    result = json.loads(text)
    if isinstance(result, dict):
        result.pop("cached", None)
        result.pop("warnings", None)
    return result


async def answers(events: list[dict[str, Any]], prefix: str) -> list[Any]:
    async with open_engine(EngineConfig()) as engine:
        for i in range(0, len(events), 7):  # (several batches: updates fold incrementally)
            await engine.submit(events[i:i + 7], partial=False, now=T0 + 30 * DAY)
        return [answer(engine, k, b) for k, b in queries(prefix)]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(event, min_size=1, max_size=30), st.lists(link, max_size=6))
@example(events=[("d1", "land", 0, {"$set": {}, "$set_once": {"plan": "pro"}}),
                 ("d2", "land", 0, {"$set": {}, "$set_once": {"plan": "pro"}})],
         links=[("$alias", "d0", "d1")])  # (a person whose own id arrives last: sample order)
def test_person_filters_match_a_reference(events: list[tuple[str, str, int, Any]],
                                          links: list[tuple[str, str, str]]) -> None:
    got = trio.run(answers, build(events, links, False), "person.")
    want = trio.run(answers, build(events, links, True), "pp_")
    for (kind, body), g, w in zip(queries("person."), got, want, strict=True):
        if kind == "segment":  # (the sample is ordered by when each person's own id first
            # arrived; the reference relabels events by person, which moves that)
            g, w = ({**x, "sampleUsers": sorted(x["sampleUsers"])} for x in (g, w))
        assert g == w, (kind, body)
