"""Warnings for queries that run but cannot mean what was asked: no silent zeros.

A misspelt event type (`signups`) or property (`pla`), or a comparison no stored value can
satisfy (`amount>abc` when `amount` holds only numbers), answers an honest zero; the answer
stands, but it comes with a warning naming the closest known names ("did you mean 'plan'?").
The checks are pure functions of the query spec and the backend's `Vocabulary` (known event
types and property kinds), so every backend warns alike. Callers add a `warnings` list to a
response only when there is one, so every other answer stays byte-identical.

Thread rule: pure; `for_query` reads the backend's vocabulary (any thread that may use it).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from rta.core.queries.filters import (
    NEGATIVE,
    PROPERTY_PREFIX,
    TOP_LEVEL,
    EventFilter,
    Group,
    Predicate,
)
from rta.core.queries.page_steps import is_page_type
from rta.core.queries.pageviews import PAGEVIEW_TYPES, PATH_KEYS

NUMBER, STRING, BOOLEAN = "number", "string", "boolean"
STRING_OPS = ("contains", "not_contains", "starts_with", "ends_with")
GROUP_FIELDS = ("type", "eventType", "userId", "sessionId")  # groupBy values that are fields


@dataclass(frozen=True)
class Vocabulary:
    """What the data holds: event types ever stored and each property key's value kinds
    (`number`, `string`, `boolean`)."""

    types: frozenset[str] = frozenset()
    properties: Mapping[str, frozenset[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class QueryWarning:
    field: str
    message: str

    def to_json(self) -> dict[str, str]:
        return {"field": self.field, "message": self.message}


def add_to(body: dict[str, Any], warnings: list[QueryWarning]) -> dict[str, Any]:
    """`body` with a `warnings` list when there are warnings (otherwise unchanged)."""
    if warnings:
        body["warnings"] = [w.to_json() for w in warnings]
    return body


def _suggest(name: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, sorted(known), n=3, cutoff=0.6)
    if not close:
        return ""
    return " (did you mean " + " or ".join(repr(c) for c in close) + "?)"


def event_type(name: str, vocab: Vocabulary, path: str) -> list[QueryWarning]:
    if name in vocab.types:
        return []
    return [QueryWarning(path, f"no events of type {name!r} have been stored"
                          f"{_suggest(name, vocab.types)}")]


def page_vocabulary(event_type: str | None, vocab: Vocabulary) -> Vocabulary:
    """The vocabulary a step on `event_type` is checked against: a page step
    (`page_steps`) knows every pageview type once one is stored, and every page-path alias
    once one is (with the kinds of them all), since it reads them all."""
    if not is_page_type(event_type):
        return vocab
    types = vocab.types | frozenset(PAGEVIEW_TYPES) if vocab.types & set(PAGEVIEW_TYPES) \
        else vocab.types
    kinds = frozenset().union(*(vocab.properties.get(k, frozenset()) for k in PATH_KEYS))
    if not kinds:
        return Vocabulary(types, vocab.properties)
    return Vocabulary(types, {**vocab.properties, **{k: kinds for k in PATH_KEYS}})


def event_types(names: Iterable[str] | None, vocab: Vocabulary, path: str) -> list[QueryWarning]:
    return [w for n in names or () for w in event_type(n, vocab, path)]


PERSON_PREFIX = "person."  # person properties (`person_props.PREFIX`)


def _bare(prop: str) -> str:
    return prop[len(PROPERTY_PREFIX):] if prop.startswith(PROPERTY_PREFIX) else prop


def property_name(prop: str | None, vocab: Vocabulary, path: str,
                  fields: Iterable[str] = ()) -> list[QueryWarning]:
    """A property no event carries (`fields` lists top-level names also accepted)."""
    if prop is None or prop in fields:
        return []
    key = _bare(prop)
    if key in vocab.properties or key.startswith(PERSON_PREFIX):
        return []  # (person properties are not event vocabulary: no person has it = no match)
    return [QueryWarning(path, f"no events carry property {key!r}"
                          f"{_suggest(key, vocab.properties)}")]


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return BOOLEAN
    return NUMBER if isinstance(value, int | float) else STRING


def _matchable(pred: Predicate, kinds: frozenset[str]) -> bool:
    """Whether any stored value kind can satisfy the positive form of `pred`."""
    op = NEGATIVE.get(pred.op, pred.op)
    if op == "exists":
        return True
    if op in STRING_OPS:
        return STRING in kinds
    values = pred.value if op == "in" and isinstance(pred.value, list) else [pred.value]
    wanted = {_kind(v) for v in values}
    if op in ("gt", "gte", "lt", "lte"):
        wanted.discard(BOOLEAN)
    return bool(wanted & kinds)


def _describe(kinds: frozenset[str]) -> str:
    return " and ".join(sorted(kinds))


def _predicates(node: Predicate | Group) -> Iterator[Predicate]:
    if isinstance(node, Predicate):
        yield node
    else:
        for item in node.items:
            yield from _predicates(item)


def where(node: Predicate | Group | None, vocab: Vocabulary, path: str) -> list[QueryWarning]:
    """Unknown properties, and comparisons no stored value kind can satisfy (an OR group
    warns of a mismatch only when none of its comparisons can match)."""
    if node is None:
        return []
    out: list[QueryWarning] = []
    seen: set[str] = set()
    for pred in _predicates(node):
        if pred.prop in TOP_LEVEL:
            if TOP_LEVEL[pred.prop] == "type" and pred.op in ("eq", "in"):
                names = pred.value if isinstance(pred.value, list) else [pred.value]
                out += event_types([str(n) for n in names], vocab, path)
            continue
        key = _bare(pred.prop)
        if key not in seen:
            seen.add(key)
            out += property_name(key, vocab, path)
    out += _mismatches(node, vocab, path)
    return _unique(out)


def _mismatches(node: Predicate | Group, vocab: Vocabulary, path: str) -> list[QueryWarning]:
    if isinstance(node, Group):
        parts = [_mismatches(item, vocab, path) for item in node.items]
        if node.op == "or" and any(not p for p in parts):
            return []
        return [w for p in parts for w in p]
    if node.prop in TOP_LEVEL or node.prop.startswith(PERSON_PREFIX):
        return []
    kinds = vocab.properties.get(_bare(node.prop))
    if not kinds or _matchable(node, kinds):
        return []
    key = _bare(node.prop)
    op = NEGATIVE.get(node.op, node.op)
    what = "text operators" if op in STRING_OPS else f"{_kind(node.value)} {node.value!r}"
    if op == "in" and isinstance(node.value, list):
        what = "the values " + ", ".join(repr(v) for v in node.value)
    effect = "keeps every event" if node.op in NEGATIVE else "matches no event"
    return [QueryWarning(path, f"property {key!r} holds {_describe(kinds)} values, so "
                          f"comparing it with {what} ({node.op}) {effect}")]


def _unique(warnings: list[QueryWarning]) -> list[QueryWarning]:
    seen: set[QueryWarning] = set()
    return [w for w in warnings if not (w in seen or seen.add(w))]  # type: ignore[func-returns-value]


def event_filter(flt: EventFilter, vocab: Vocabulary, prefix: str = "") -> list[QueryWarning]:
    """The types and `where` of a filter (`prefix`: the filter's field path, with a dot)."""
    return event_types(flt.types, vocab, prefix + "type") + where(flt.where, vocab,
                                                                    prefix + "where")


def for_query(query: Any, vocab: Vocabulary) -> list[QueryWarning]:
    """Every warning of an analytics, behavioural or event-list query spec."""
    from rta.core.queries import analytics_specs as a
    from rta.core.queries import behaviour_specs as b
    from rta.core.queries.event_list import EventListQuery
    from rta.core.queries.paths_specs import PathsQuery
    from rta.core.queries.stickiness_specs import LifecycleQuery, StickinessQuery

    out: list[QueryWarning] = []
    if isinstance(query, a.AggregateQuery | a.CountQuery | a.UniqueUsersQuery | a.TopQuery
                  | EventListQuery):
        out += event_filter(query.filter.flt, vocab)
    if isinstance(query, a.AggregateQuery):
        out += property_name(query.metric, vocab, "metric")
        out += property_name(query.group_by, vocab, "groupBy", GROUP_FIELDS)
    elif isinstance(query, a.CountQuery):
        out += property_name(query.group_by, vocab, "groupBy", GROUP_FIELDS)
    elif isinstance(query, a.TopQuery):
        out += property_name(query.property, vocab, "property", GROUP_FIELDS)
    elif isinstance(query, b.FunnelQuery):
        for i, step in enumerate(query.steps):
            pv = page_vocabulary(step.event_type, vocab)
            out += event_type(step.event_type, pv, f"steps[{i}].eventType")
            out += where(step.where, pv, f"steps[{i}].where")
        for i, ex in enumerate(query.exclusions):
            pv = page_vocabulary(ex.event_type, vocab)
            out += event_type(ex.event_type, pv, f"exclusions[{i}].eventType")
            out += where(ex.where, pv, f"exclusions[{i}].where")
        out += property_name(query.breakdown, vocab, "breakdown")
        out += where(query.where, vocab, "where")
    elif isinstance(query, b.CohortQuery):
        entry_vocab = page_vocabulary(query.entry, vocab)
        ret_vocab = page_vocabulary(query.ret, vocab)
        if query.entry is not None:
            out += event_type(query.entry, entry_vocab, "entryEvent")
        if query.ret is not None and query.ret != query.entry:
            out += event_type(query.ret, ret_vocab, "retentionEvent")
        out += property_name(query.breakdown, vocab, "breakdown")
        out += where(query.entry_where, entry_vocab, "entryFilters")
        out += where(query.ret_where, ret_vocab, "retentionFilters")
    elif isinstance(query, b.AbTestQuery):
        out += event_type(query.assign, vocab, "eventType")
        out += property_name(query.variant_property, vocab, "variantProperty")
        out += event_type(query.metric_event, vocab, "metricEvent")
        out += property_name(query.metric_property, vocab, "metricProperty")
        out += where(query.assign_flt.where, vocab, "filters")
        out += where(query.metric_flt.where, vocab, "metricFilters")
    elif isinstance(query, PathsQuery):
        if query.path_type == "events":
            out += event_types([query.start_point] if query.start_point else None, vocab,
                               "startPoint")
            out += event_types([query.end_point] if query.end_point else None, vocab,
                               "endPoint")
        out += where(query.where, vocab, "where")
    elif isinstance(query, StickinessQuery | LifecycleQuery):
        out += event_type(query.event_type, vocab, "eventType")
        out += where(query.flt.where, vocab, "filters")
    elif isinstance(query, b.SegmentQuery):
        out += _segment(query.definition.tree, vocab, "filters")
    return _unique(out)


def _segment(node: Any, vocab: Vocabulary, path: str) -> list[QueryWarning]:
    from rta.core.queries.segment_spec import EventCondition

    if node is None:
        return []
    if isinstance(node, EventCondition):
        written = node.written or node.flt
        etype = written.types[0] if written.types else None
        return event_filter(written, page_vocabulary(etype, vocab), path + ".")
    if isinstance(node, Group):
        return [w for item in node.items for w in _segment(item, vocab, path)]
    if isinstance(node, Predicate) and "\x00" in node.prop:  # an event-type-scoped property
        etype, _, prop = node.prop.partition("\x00")
        return event_type(etype, vocab, path + ".eventType") + where(
            Predicate(prop, node.op, node.value), vocab, path)
    return where(node, vocab, path)
