"""Page steps: a query step on a pageview type matches every SDK's pageviews.

A step (a funnel step or exclusion, a retention entry or return event, a segment's "did
event" condition) whose event type is one of `pageviews.PAGEVIEW_TYPES`
(`pageview`, `page`, `$pageview`) is a *page step*: it matches events of all three types,
and a condition on a page-path alias (`$pathname`, `path`, `page`, `context.page.path`) reads
the value of the first of those aliases (`pageviews.PATH_KEYS`, in order) the event
carries, as sent (no query-string cut or URL fallback: those need the web views' Python
labels). So `{"eventType": "pageview", "where": {"page": "/pricing"}}` also matches
PostHog's `$pageview` with `$pathname = /pricing`, and `eventType: "$pageview"` also
matches rta's `pageview` (the rule is symmetric). docs/web.md ("Page steps") is the contract.

The rewrite is a filter-language tree (`Group`/`Predicate`), so both backends evaluate it
with the filters they already have; queries keep the user's own `where` for warnings.

Thread rule: pure functions over their arguments; any thread.
"""

from __future__ import annotations

from rta.core.queries.filters import NEGATIVE, EventFilter, Group, Predicate
from rta.core.queries.pageviews import PAGEVIEW_TYPES, PATH_KEYS


def is_page_type(event_type: str | None) -> bool:
    """Whether a step on `event_type` is a page step."""
    return event_type in PAGEVIEW_TYPES


def page_predicate(node: Predicate) -> Group:
    """`node` over the page path: its test on the first alias present, or (for the negative
    operators, which match a missing property) the event carrying no alias at all."""
    branches: list[Predicate | Group] = []
    for i, key in enumerate(PATH_KEYS):
        before = tuple(Predicate(k, "not_exists") for k in PATH_KEYS[:i])
        branches.append(Group("and", (*before, Predicate(key, "exists"),
                                      Predicate(key, node.op, node.value))))
    if node.op in NEGATIVE:
        branches.append(Group("and", tuple(Predicate(k, "not_exists") for k in PATH_KEYS)))
    return Group("or", tuple(branches))


def page_where(node: Group | Predicate | None) -> Group | Predicate | None:
    """`node` with every condition on a page-path alias read through the alias rule."""
    if node is None:
        return None
    if isinstance(node, Group):
        return Group(node.op, tuple(page_where(item) for item in node.items))  # type: ignore[misc]
    return page_predicate(node) if node.prop in PATH_KEYS else node


def step_filter(event_type: str, where: Group | None) -> EventFilter:
    """The events a step on `event_type` with the user's `where` matches."""
    if not is_page_type(event_type):
        return EventFilter(types=(event_type,), where=where)
    rewritten = page_where(where)
    assert rewritten is None or isinstance(rewritten, Group)
    return EventFilter(types=PAGEVIEW_TYPES, where=rewritten)
