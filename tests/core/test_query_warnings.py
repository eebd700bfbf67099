"""Warnings for misspelt names and comparisons that cannot match (#23, finding 2): pure
checks of a query spec against a vocabulary."""

from __future__ import annotations

from rta.core.queries import behaviour, query_warnings
from rta.core.queries.analytics_specs import parse
from rta.core.queries.event_list import parse_event_list
from rta.core.queries.query_warnings import Vocabulary, for_query

NOW = 1_700_000_000_000
VOCAB = Vocabulary(frozenset({"signup", "pageview", "experiment_assigned", "purchase"}),
                   {"plan": frozenset({"string"}), "amount": frozenset({"number"}),
                    "variant": frozenset({"string"}), "beta": frozenset({"boolean"})})


def messages(query: object) -> list[str]:
    return [w.message for w in for_query(query, VOCAB)]


def test_known_names_and_matching_kinds_give_no_warning() -> None:
    q = parse("count", {"type": "signup", "where": [
        {"property": "plan", "operator": "in", "value": ["pro", "team"]},
        {"property": "amount", "operator": "gte", "value": 3},
        {"property": "beta", "operator": "eq", "value": True},
        {"property": "plan", "operator": "contains", "value": "pr"}], "groupBy": "type"}, NOW)
    assert for_query(q, VOCAB) == []
    assert query_warnings.add_to({"count": 0}, []) == {"count": 0}


def test_misspelt_type_property_and_group() -> None:
    q = parse("aggregate", {"type": ["signups"], "where": [{"pla": "pro"}],
                            "groupBy": "plna", "metric": "amout"}, NOW)
    assert messages(q) == [
        "no events of type 'signups' have been stored (did you mean 'signup'?)",
        "no events carry property 'pla' (did you mean 'plan'?)",
        "no events carry property 'amout' (did you mean 'amount'?)",
        "no events carry property 'plna' (did you mean 'plan'?)"]
    assert [w.field for w in for_query(q, VOCAB)] == ["type", "where", "metric", "groupBy"]


def test_comparisons_no_stored_value_can_satisfy() -> None:
    q = parse("count", {"where": [{"property": "amount", "operator": "gt", "value": "abc"},
                                  {"property": "plan", "operator": "neq", "value": 3},
                                  {"property": "amount", "operator": "contains",
                                   "value": "1"}]}, NOW)
    assert messages(q) == [
        "property 'amount' holds number values, so comparing it with string 'abc' (gt) "
        "matches no event",
        "property 'plan' holds string values, so comparing it with number 3 (neq) keeps "
        "every event",
        "property 'amount' holds number values, so comparing it with text operators "
        "(contains) matches no event"]


def test_event_list_property_parameters_match_either_kind() -> None:
    """?amount=3 compares as text or number (an OR): one of them can match, no warning."""
    assert messages(parse_event_list([("amount", "3"), ("plan", "pro")])) == []
    assert messages(parse_event_list([("amount", "abc")])) == [
        "property 'amount' holds number values, so comparing it with string 'abc' (eq) "
        "matches no event"]
    assert messages(parse_event_list([("type", "signups")]))[0].endswith(
        "(did you mean 'signup'?)")


def test_behaviour_queries() -> None:
    funnel = behaviour.parse("funnel", {"steps": ["signup", {"eventType": "purchse", "where": [
        {"amout": 1}]}], "breakdown": "plan"}, NOW)
    assert [w.field for w in for_query(funnel, VOCAB)] == ["steps[1].eventType",
                                                           "steps[1].where"]
    ab = behaviour.parse("abtest", {"variantProperty": "varaint", "metricEvent": "purchase",
                                    "metricProperty": "amount"}, NOW)
    assert messages(ab) == ["no events carry property 'varaint' (did you mean 'variant'?)"]
    seg = behaviour.parse("segment", {"filters": [
        {"property": "pla", "value": "pro"},
        {"eventType": "sigup", "count": 2}]}, NOW)
    assert [w.field for w in for_query(seg, VOCAB)] == ["filters", "filters.type"]
    cohort = behaviour.parse("cohort", {"entryEvent": "signup", "retentionEvent": "visit"},
                             NOW)
    assert messages(cohort) == ["no events of type 'visit' have been stored"]
