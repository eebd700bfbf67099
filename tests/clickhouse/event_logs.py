"""Hypothesis strategies for event logs that probe the backends' edge cases: timestamps that
tie, events that arrive out of order, repeated steps, properties missing or of mixed kinds
(the same key a number here and text there), unicode, users and sessions missing."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

T0 = 1_700_000_000_000  # a fixed origin; queries use NOW below
HOUR = 3_600_000
DAY = 24 * HOUR
NOW = T0 + 30 * DAY
TYPES = ("pageview", "signup", "purchase", "click", "Ünïcødé ✓")
USERS = (*(f"u{i}" for i in range(12)), "ü-ser", "用户")
PAGES = ("/", "/pricing", "/docs", "/produits/é", "")

values = st.one_of(
    st.sampled_from(PAGES), st.integers(-5, 50), st.floats(-10, 100, allow_nan=False,
                                                           allow_infinity=False),
    st.booleans())


@st.composite
def event(draw: st.DrawFn) -> dict[str, Any]:
    # timestamps on a coarse grid over 30 days so ties are common
    ts = T0 + draw(st.integers(0, 30 * 24 * 4)) * (HOUR // 4) * draw(st.sampled_from((1, 1, 0)))
    out: dict[str, Any] = {"type": draw(st.sampled_from(TYPES)), "timestamp": ts}
    user = draw(st.one_of(st.none(), st.sampled_from(USERS)))
    if user is not None:
        out["userId"] = user
    if draw(st.booleans()):
        out["sessionId"] = f"s{draw(st.integers(0, 5))}"
    props: dict[str, Any] = {}
    if draw(st.booleans()):
        props["page"] = draw(st.sampled_from(PAGES))
    if draw(st.booleans()):
        props["amount"] = draw(st.one_of(st.integers(0, 500), st.floats(0, 500, allow_nan=False)))
    if draw(st.integers(0, 3)) == 0:
        props["mixed"] = draw(values)
    if draw(st.integers(0, 3)) == 0:
        props["variant"] = draw(st.sampled_from(("control", "test", "B")))
    if draw(st.integers(0, 4)) == 0:
        props["plan"] = draw(st.sampled_from(("free", "pro", "team")))
    if props:
        out["properties"] = props
    return out


Log = list[list[dict[str, Any]]]


def event_logs(min_size: int = 1, max_size: int = 80) -> st.SearchStrategy[Log]:
    """A log as batches in arrival order (later batches may hold earlier timestamps)."""
    return st.lists(st.lists(event(), min_size=1, max_size=20), min_size=min_size,
                    max_size=max(min_size, max_size // 10))


# `where` predicates over every operator and the top-level fields: mixed-kind values,
# missing properties, text comparisons, lists (shared by the parity tests)
PREDICATES = st.one_of(
    st.builds(lambda op, v: {"property": "page", "operator": op, "value": v},
              st.sampled_from(("eq", "neq")), st.sampled_from(PAGES)),
    st.builds(lambda op, v: {"property": "amount", "operator": op, "value": v},
              st.sampled_from(("gt", "gte", "lt", "lte", "eq", "neq")), st.integers(0, 500)),
    st.builds(lambda op, v: {"property": "mixed", "operator": op, "value": v},
              st.sampled_from(("eq", "neq")),
              st.one_of(st.integers(-5, 50), st.sampled_from(PAGES), st.booleans())),
    st.builds(lambda op, v: {"property": "mixed", "operator": op, "value": v},
              st.sampled_from(("gt", "lte")),
              st.one_of(st.integers(-5, 50), st.sampled_from(PAGES))),
    st.builds(lambda op, v: {"property": "page", "operator": op, "value": v},
              st.sampled_from(("contains", "not_contains", "starts_with", "ends_with", "gt")),
              st.sampled_from(("/", "p", "é", "docs", ""))),
    st.builds(lambda op, v: {"property": "variant", "operator": op,
                             "value": [v] if op in ("in", "not_in") else v},
              st.sampled_from(("eq", "neq", "in", "not_in")),
              st.sampled_from(("control", "test", 1, True))),
    st.builds(lambda p, op: {"property": p, "operator": op},
              st.sampled_from(("plan", "variant", "mixed")),
              st.sampled_from(("exists", "not_exists"))),
    st.builds(lambda op, vs: {"property": "plan", "operator": op, "value": vs},
              st.sampled_from(("in", "not_in")),
              st.lists(st.sampled_from(("free", "pro", 3, True)), min_size=1, max_size=3)),
    st.builds(lambda op, v: {"property": "userId", "operator": op, "value": v},
              st.sampled_from(("eq", "neq", "starts_with", "gt")),
              st.sampled_from(("u1", "u", "ü-ser"))),
    st.builds(lambda p, op, v: {"property": p, "operator": op, "value": v},
              st.sampled_from(("sessionId", "type", "properties.type")),
              st.sampled_from(("eq", "neq", "contains")), st.sampled_from(("s1", "click"))),
    st.builds(lambda op, v: {"property": "timestamp", "operator": op, "value": v},
              st.sampled_from(("gt", "lte", "eq")), st.sampled_from((-1, 0, T0))),
    st.builds(lambda op, v: {"property": "userId", "operator": op, "value": v},
              st.sampled_from(("exists", "not_exists")), st.sampled_from(("u1",))),
    st.builds(lambda op, v: {"property": "sessionId", "operator": op,
                             "value": [v] if op == "in" else v},
              st.sampled_from(("in", "not_exists")), st.sampled_from(("s1", "s2"))),
)
