"""The golden cases: every HTTP route and every CLI data command, error cases included.

Cases run in this order against one daemon (see `harness.py`), so later cases see what
earlier ones created: segments before the queries that use them, ingest cases after the
queries (their events lie in April 2024, outside every query's range, but they move
/stats). `{var}` in a path, parameter, body or CLI argument is a value an earlier case
captured (`capture={"var": "json.path"}`); captured values are normalised to `<var>` in
answers, except variables named `raw_*` (deterministic values such as cursors).
Every query names an absolute time range: nothing may depend on the wall clock.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

# The data set (harness.DATA_*) covers 2024-05-18T00:00Z .. 2024-06-01T00:00Z.
S, E = "2024-05-18T00:00:00Z", "2024-05-31T23:59:59.999Z"
S_MS, E_MS = 1_715_990_400_000, 1_717_199_999_999
D1, D2 = "2024-05-25T00:00:00Z", "2024-05-25T23:59:59.999Z"  # one day
RANGE = (("startTime", S), ("endTime", E))
BODY_RANGE = {"startTime": S, "endTime": E}
USER = "user_001094"
SESSION = "s_42378e29af19ba8b"
# Events the ingest cases send lie in April 2024, before the data set.
APRIL = 1_711_929_600_000  # 2024-04-01T00:00:00Z
APRIL_RANGE = (("startTime", "2024-04-01T00:00:00Z"), ("endTime", "2024-04-30T23:59:59Z"))


@dataclass(frozen=True)
class Http:
    """One HTTP request; `raw` (bytes or str) is sent as is, else `body` as JSON."""

    area: str
    name: str
    method: str
    path: str
    params: tuple[tuple[str, str], ...] = ()
    body: Any = None
    raw: bytes | str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    gzip: bool = False
    decode: str | None = None  # json | text | csv | ndjson | parquet | xlsx | metrics | sha256
    capture: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Cli:
    """One `rta ...` run against the daemon; `output`: a file under {out} to decode too."""

    area: str
    name: str
    args: tuple[str, ...]
    stdin: str | None = None
    decode: str | None = None  # "ndjson" for NDJSON on stdout with --json
    output: str | None = None
    capture: dict[str, str] = field(default_factory=dict)
    wave: str | None = None  # consecutive cases of one wave run concurrently


Case = Http | Cli
CASES: list[Case] = []


def get(area: str, name: str, path: str, *params: tuple[str, str], **kw: Any) -> None:
    CASES.append(Http(area, name, "GET", path, tuple(params), **kw))


def post(area: str, name: str, path: str, body: Any = None, *params: tuple[str, str],
         **kw: Any) -> None:
    CASES.append(Http(area, name, "POST", path, tuple(params), body=body, **kw))


def call(area: str, name: str, method: str, path: str, body: Any = None, **kw: Any) -> None:
    CASES.append(Http(area, name, method, path, body=body, **kw))


def cli(area: str, name: str, *args: str, both: bool = True, **kw: Any) -> None:
    """`rta args --json` (name.json) and, with `both`, the table output too (name.table)."""
    CASES.append(Cli(area, f"{name}.json", (*args, "--json"), **kw))
    if both:
        CASES.append(Cli(area, f"{name}.table", args,
                         **{k: v for k, v in kw.items() if k != "capture"}))


def cli_raw(area: str, name: str, *args: str, **kw: Any) -> None:
    CASES.append(Cli(area, name, args, **kw))


# == system =======================================================================================
A = "system"
get(A, "health", "/health")
get(A, "stats.loaded", "/stats")
get(A, "openapi", "/openapi.json")
get(A, "metrics", "/metrics", decode="metrics")
get(A, "web.index", "/", decode="sha256")
get(A, "404.unknown_path", "/nope")
get(A, "404.unknown_nested", "/analytics/nope")
call(A, "405.delete_health", "DELETE", "/health")
get(A, "405.get_funnel", "/queries/funnel")
call(A, "405.put_events", "PUT", "/events", {"type": "x"})
call(A, "405.patch_segments", "PATCH", "/segments", {})

# == events (reading) =============================================================================
A = "events"
get(A, "page1", "/events", *RANGE, ("limit", "5"), capture={"raw_cursor1": "nextCursor"})
get(A, "page2", "/events", *RANGE, ("limit", "5"), ("cursor", "{raw_cursor1}"))
get(A, "default_limit_day", "/events", ("startTime", D1), ("endTime", "2024-05-25T00:30:00Z"))
get(A, "type", "/events", *RANGE, ("type", "purchase"), ("limit", "3"))
get(A, "types_comma", "/events", *RANGE, ("type", "signup,login"), ("limit", "4"))
get(A, "types_repeated", "/events", *RANGE, ("type", "error"), ("type", "conversion"),
    ("limit", "4"))
get(A, "event_type_alias", "/events", *RANGE, ("eventType", "form_submit"), ("limit", "2"))
get(A, "user", "/events", *RANGE, ("userId", USER), ("limit", "6"))
get(A, "session", "/events", ("sessionId", SESSION), ("limit", "50"))
get(A, "property_param", "/events", *RANGE, ("page", "/pricing"), ("limit", "3"))
get(A, "property_param_prefixed", "/events", *RANGE, ("properties.status", "500"),
    ("limit", "3"))
get(A, "where_json", "/events", *RANGE,
    ("where", '[{"property":"duration","operator":"gt","value":1500}]'), ("limit", "3"))
get(A, "where_or", "/events", *RANGE, ("where", '[{"operator":"OR","filters":['
                                          '{"property":"code","operator":"eq","value":500},'
                                          '{"property":"code","operator":"eq","value":504}]}]'),
    ("limit", "3"))
get(A, "where_exists", "/events", *RANGE,
    ("where", '[{"property":"revenue","operator":"exists"}]'), ("limit", "2"))
get(A, "ms_range", "/events", ("startTime", str(S_MS)), ("endTime", str(S_MS + 3_600_000)),
    ("limit", "3"))
get(A, "empty_range", "/events", ("startTime", "2020-01-01T00:00:00Z"),
    ("endTime", "2020-01-02T00:00:00Z"))
get(A, "err.limit_zero", "/events", ("limit", "0"))
get(A, "err.limit_text", "/events", ("limit", "ten"))
get(A, "err.limit_big", "/events", ("limit", "10001"))
get(A, "err.cursor", "/events", ("cursor", "not-a-cursor"))
get(A, "err.where_not_json", "/events", ("where", "duration>5"))
get(A, "err.where_operator", "/events",
    ("where", '[{"property":"duration","operator":"bigger","value":1}]'))
get(A, "err.where_not_list", "/events", ("where", '{"property":"x"}'))
get(A, "err.start_time", "/events", ("startTime", "banana"))
get(A, "err.range_reversed", "/events", ("startTime", E), ("endTime", S))
get(A, "err.time_range", "/events", ("timeRange", "fortnight"))
get(A, "err.year_10000", "/events", ("startTime", "253402300800000"))
get(A, "err.segment", "/events", ("segment", "No Such Segment"))

# == segments =====================================================================================
A = "segments"
PRO = {"name": "Pro Signups", "description": "signed up on pro or team",
       "filters": [{"property": "plan", "operator": "in", "value": ["pro", "team"]}]}
BUYERS = {"name": "Buyers", "filters": [{"eventType": "purchase",
                                         "count": {"operator": "gte", "value": 1}}]}
post(A, "create.pro", "/segments", PRO, capture={"seg_pro": "id"})
post(A, "create.buyers", "/segments", BUYERS, capture={"seg_buyers": "id"})
post(A, "create.or_group", "/segments", {
    "name": "Google or GitHub", "operator": "OR", "filters": [
        {"property": "method", "operator": "eq", "value": "google"},
        {"property": "method", "operator": "eq", "value": "github"}]},
     capture={"seg_or": "id"})
get(A, "list", "/segments")
get(A, "show.by_id", "/segments/{seg_pro}")
get(A, "show.by_name", "/segments/Buyers", ("sampleSize", "3"))
get(A, "show.or", "/segments/{seg_or}", ("sampleSize", "0"))
post(A, "err.duplicate", "/segments", PRO)
post(A, "err.no_name", "/segments", {"filters": []})
post(A, "err.bad_operator", "/segments", {"name": "x", "filters": [
    {"property": "plan", "operator": "like", "value": "p"}]})
post(A, "err.bad_count", "/segments", {"name": "y", "filters": [
    {"eventType": "purchase", "count": {"operator": "gte", "value": "two"}}]})
post(A, "err.not_object", "/segments", [1, 2])
get(A, "err.show_unknown", "/segments/nope")
get(A, "err.sample_size", "/segments/{seg_pro}", ("sampleSize", "-1"))
get(A, "events_in_segment", "/events", *RANGE, ("segment", "Buyers"), ("type", "purchase"),
    ("limit", "3"))

# == analytics ====================================================================================
A = "analytics"
get(A, "aggregate.get.count_1d", "/analytics/aggregate", *RANGE, ("interval", "1d"))
get(A, "aggregate.get.avg_duration", "/analytics/aggregate", *RANGE, ("type", "api_request"),
    ("metric", "duration"), ("aggregation", "avg"), ("interval", "1d"))
get(A, "aggregate.get.p95_group", "/analytics/aggregate", *RANGE, ("type", "api_request"),
    ("metric", "duration"), ("aggregation", "p95"), ("interval", "1d"),
    ("groupBy", "endpoint"), ("limit", "3"))
get(A, "aggregate.get.tz", "/analytics/aggregate", *RANGE, ("interval", "1d"),
    ("tzOffset", "120"), ("type", "signup"))
get(A, "aggregate.get.auto_interval", "/analytics/aggregate", ("startTime", D1),
    ("endTime", D2), ("type", "purchase"))
get(A, "aggregate.get.unique", "/analytics/aggregate", *RANGE, ("aggregation", "unique_users"),
    ("interval", "1d"))
get(A, "aggregate.get.ms_interval", "/analytics/aggregate", ("startTime", D1),
    ("endTime", D2), ("interval", "21600000"), ("where",
                                                '[{"property":"page","operator":"eq","value":"/"}]'))
get(A, "aggregate.get.group_type", "/analytics/aggregate", *RANGE, ("groupBy", "type"),
    ("interval", "1d"), ("limit", "4"))
get(A, "aggregate.get.segment", "/analytics/aggregate", *RANGE, ("segment", "Pro Signups"),
    ("interval", "1d"))
post(A, "aggregate.post.sum_where", "/analytics/aggregate", {
    "eventType": "purchase", "metric": "amount", "aggregation": "sum", "interval": "1d",
    "where": [{"property": "currency", "operator": "eq", "value": "EUR"}], **BODY_RANGE})
for agg in ("min", "max", "p50", "p90", "p99", "count"):
    post(A, f"aggregate.post.{agg}", "/analytics/aggregate", {
        "eventType": "pageview", "metric": "duration", "aggregation": agg, "interval": "1d",
        **BODY_RANGE})
post(A, "aggregate.post.ms_times", "/analytics/aggregate", {
    "eventType": "purchase", "metric": "quantity", "aggregation": "sum", "interval": "1h",
    "startTime": S_MS, "endTime": S_MS + 6 * 3_600_000})
post(A, "aggregate.post.group_limit", "/analytics/aggregate", {
    "eventType": "pageview", "groupBy": "referrer", "limit": 2, "interval": "1d",
    "userId": [USER, "user_000001"], **BODY_RANGE})
post(A, "aggregate.post.segment", "/analytics/aggregate", {
    "segment": "Buyers", "aggregation": "unique_users", "interval": "1d", **BODY_RANGE})
post(A, "aggregate.post.repeat_cached", "/analytics/aggregate", {
    "eventType": "purchase", "metric": "amount", "aggregation": "sum", "interval": "1d",
    "where": [{"property": "currency", "operator": "eq", "value": "EUR"}], **BODY_RANGE})
get(A, "count.get.total", "/analytics/count", *RANGE)
get(A, "count.get.by_type", "/analytics/count", *RANGE, ("groupBy", "type"))
get(A, "count.get.by_page", "/analytics/count", *RANGE, ("groupBy", "page"), ("limit", "5"))
get(A, "count.get.where", "/analytics/count", *RANGE, ("type", "pageview"),
    ("where", '[{"property":"referrer","operator":"in","value":["google","bing"]}]'))
get(A, "count.get.user", "/analytics/count", *RANGE, ("userId", USER), ("groupBy", "type"))
get(A, "count.get.segment", "/analytics/count", *RANGE, ("segment", "Buyers"),
    ("groupBy", "type"))
post(A, "count.post.or", "/analytics/count", {
    "type": ["click", "pageview"], "operator": "OR",
    "where": [{"property": "page", "operator": "starts_with", "value": "/products"},
              {"property": "element", "operator": "eq", "value": "cta"}], **BODY_RANGE})
post(A, "count.post.group_missing", "/analytics/count", {
    "groupBy": "plan", **BODY_RANGE})
post(A, "count.post.contains", "/analytics/count", {
    "type": "error", "groupBy": "message", "where": [
        {"property": "message", "operator": "contains", "value": "Error"}], **BODY_RANGE})
get(A, "top.get.page", "/analytics/top", *RANGE, ("property", "page"), ("n", "5"))
get(A, "top.get.by_users", "/analytics/top", *RANGE, ("property", "referrer"),
    ("sort", "users"), ("n", "3"))
get(A, "top.get.type", "/analytics/top", *RANGE, ("property", "type"))
get(A, "top.get.user_id", "/analytics/top", *RANGE, ("property", "userId"), ("n", "3"))
post(A, "top.post.where", "/analytics/top", {
    "property": "product", "type": "purchase", "n": 3,
    "where": [{"property": "amount", "operator": "gte", "value": 40}], **BODY_RANGE})
get(A, "unique.get.total", "/analytics/unique-users", *RANGE)
get(A, "unique.get.daily", "/analytics/unique-users", *RANGE, ("interval", "1d"))
get(A, "unique.get.approx", "/analytics/unique-users", *RANGE, ("approximate", "true"))
get(A, "unique.get.approx_daily_tz", "/analytics/unique-users", *RANGE,
    ("approximate", "true"), ("interval", "1d"), ("tzOffset", "-300"))
post(A, "unique.post.type", "/analytics/unique-users", {"type": "purchase", **BODY_RANGE})
post(A, "unique.post.segment", "/analytics/unique-users", {
    "segment": "Pro Signups", "interval": "1d", **BODY_RANGE})
# errors
get(A, "err.aggregation", "/analytics/aggregate", *RANGE, ("aggregation", "median"),
    ("metric", "duration"))
get(A, "err.interval_zero", "/analytics/aggregate", *RANGE, ("interval", "0"))
get(A, "err.interval_text", "/analytics/aggregate", *RANGE, ("interval", "fortnightly"))
get(A, "err.too_many_buckets", "/analytics/aggregate", *RANGE, ("interval", "1"))
get(A, "err.metric_missing", "/analytics/aggregate", *RANGE, ("aggregation", "sum"))
get(A, "err.metric_not_numeric", "/analytics/aggregate", *RANGE, ("metric", "page"),
    ("aggregation", "avg"))
get(A, "err.tz_offset", "/analytics/aggregate", *RANGE, ("tzOffset", "9999"))
get(A, "err.limit", "/analytics/aggregate", *RANGE, ("groupBy", "page"), ("limit", "-1"))
get(A, "err.start_time", "/analytics/count", ("startTime", "banana"))
get(A, "err.end_before_start", "/analytics/count", ("startTime", E), ("endTime", S))
get(A, "err.year_10000", "/analytics/count", ("endTime", "253402300800000"))
get(A, "err.where_operator", "/analytics/count", *RANGE,
    ("where", '[{"property":"page","operator":"like","value":"/"}]'))
get(A, "count.get.where_cli_syntax", "/analytics/count", *RANGE, ("where", "page=/"))
post(A, "err.where_not_list", "/analytics/count", {"where": {"property": "page"}, **BODY_RANGE})
post(A, "count.post.where_no_property", "/analytics/count", {
    "where": [{"operator": "eq", "value": 1}], **BODY_RANGE})
post(A, "err.where_in_not_list", "/analytics/count", {
    "where": [{"property": "page", "operator": "in", "value": "/"}], **BODY_RANGE})
post(A, "err.type_wrong_type", "/analytics/count", {"type": 5, **BODY_RANGE})
post(A, "err.unknown_field", "/analytics/count", {"bogus": 1, **BODY_RANGE})
post(A, "count.post.group_by_list", "/analytics/count", {"groupBy": ["page"], **BODY_RANGE})
get(A, "err.segment_unknown", "/analytics/count", *RANGE, ("segment", "Nobody"))
get(A, "err.top_no_property", "/analytics/top", *RANGE)
get(A, "err.top_n_zero", "/analytics/top", *RANGE, ("property", "page"), ("n", "0"))
get(A, "err.top_sort", "/analytics/top", *RANGE, ("property", "page"), ("sort", "size"))
get(A, "err.unique_approx", "/analytics/unique-users", *RANGE, ("approximate", "maybe"))
post(A, "err.body_array", "/analytics/aggregate", [1])
post(A, "err.bad_json", "/analytics/aggregate", raw='{"interval": ',
     headers={"Content-Type": "application/json"})
post(A, "err.media_type", "/analytics/count", raw="a,b", headers={"Content-Type": "text/csv"})
post(A, "err.interval_negative", "/analytics/aggregate", {"interval": -5, **BODY_RANGE})
post(A, "err.start_time_float", "/analytics/aggregate", {"startTime": 1e20, "endTime": E})

# == behavioural queries ==========================================================================
A = "queries"
FUNNEL = {"steps": [{"name": "Visit", "eventType": "pageview"},
                    {"name": "Product click", "eventType": "click",
                     "filters": {"category": "products"}},
                    {"name": "Checkout", "eventType": "form_submit",
                     "filters": [{"property": "form", "operator": "eq", "value": "checkout"}]},
                    {"name": "Purchase", "eventType": "purchase"}], **BODY_RANGE}
post(A, "funnel.basic", "/queries/funnel", FUNNEL)
post(A, "funnel.string_steps", "/queries/funnel", {"steps": ["signup", "purchase"],
                                                   **BODY_RANGE})
post(A, "funnel.breakdown", "/queries/funnel", {**FUNNEL, "breakdown": "referrer"})
post(A, "funnel.strict_sessions", "/queries/funnel", {
    "steps": ["pageview", "click"], "order": "strict", "countBy": "sessions",
    "timeLimit": 3_600_000, **BODY_RANGE})
post(A, "funnel.any_order", "/queries/funnel", {
    "steps": ["purchase", "login"], "order": "any", "timeLimit": 86_400_000, **BODY_RANGE})
post(A, "funnel.exclusion", "/queries/funnel", {
    "steps": ["pageview", "form_submit", "purchase"],
    "exclusions": [{"eventType": "error", "fromStep": 0, "toStep": 1}], **BODY_RANGE})
post(A, "funnel.segment", "/queries/funnel", {"steps": ["pageview", "purchase"],
                                              "segment": "Pro Signups", **BODY_RANGE})
post(A, "cohort.basic", "/queries/cohort", {
    "name": "Signup retention", "entryEvent": "signup", "retentionEvent": "login",
    "periods": 7, "periodLength": 86_400_000, **BODY_RANGE})
post(A, "cohort.recurring", "/queries/cohort", {
    "entryEvent": "pageview", "periods": 3, "periodLength": 172_800_000,
    "retentionType": "recurring", **BODY_RANGE})
post(A, "cohort.on_or_after", "/queries/cohort", {
    "entryEvent": "signup", "retentionEvent": "purchase", "periods": 4,
    "periodLength": 86_400_000, "criterion": "on_or_after", **BODY_RANGE})
post(A, "abtest.conversion", "/queries/abtest", {
    "name": "Checkout v2", "eventType": "experiment_assigned", "variantProperty": "variant",
    "metricEvent": "purchase", **BODY_RANGE})
post(A, "abtest.revenue", "/queries/abtest", {
    "eventType": "experiment_assigned", "variantProperty": "variant",
    "metricEvent": "purchase", "metricProperty": "amount", "control": "variant_a",
    "minimumSampleSize": 10, **BODY_RANGE})
post(A, "abtest.small_sample", "/queries/abtest", {
    "eventType": "experiment_assigned", "variantProperty": "variant",
    "metricEvent": "conversion", "minimumSampleSize": 100000, **BODY_RANGE})
post(A, "segment.adhoc", "/queries/segment", {
    "name": "Team plan", "filters": [{"property": "plan", "operator": "eq", "value": "team"}],
    **BODY_RANGE})
post(A, "segment.event_condition", "/queries/segment", {
    "filters": [{"eventType": "purchase", "where": [
        {"property": "amount", "operator": "gt", "value": 100}],
        "count": {"operator": "gte", "value": 1}}], "sampleSize": 5, **BODY_RANGE})
post(A, "execute.segment", "/queries/execute", {
    "type": "segment", "config": {"filters": [
        {"property": "method", "operator": "eq", "value": "sso"}], **BODY_RANGE}})
post(A, "execute.funnel", "/queries/execute", {"type": "funnel", "config": {
    "steps": ["pageview", "form_submit"], "segment": "Buyers", **BODY_RANGE}})
post(A, "execute.cohort", "/queries/execute", {"type": "cohort", "config": {
    "entryEvent": "signup", "retentionEvent": "pageview", "periods": 2, **BODY_RANGE}})
post(A, "execute.abtest", "/queries/execute", {"type": "abtest", "config": {
    "eventType": "experiment_assigned", "variantProperty": "variant",
    "metricEvent": "form_submit", **BODY_RANGE}})
# errors
post(A, "err.funnel_one_step", "/queries/funnel", {"steps": ["pageview"]})
post(A, "err.funnel_21_steps", "/queries/funnel", {"steps": ["pageview"] * 21})
post(A, "err.funnel_no_steps", "/queries/funnel", {})
post(A, "err.funnel_step_type", "/queries/funnel", {"steps": ["pageview", {"name": "x"}]})
post(A, "err.funnel_step_filters", "/queries/funnel", {"steps": [
    "pageview", {"eventType": "click", "filters": [{"property": "a", "operator": "zz"}]}]})
post(A, "err.funnel_order", "/queries/funnel", {"steps": ["a", "b"], "order": "random"})
post(A, "err.funnel_count_by", "/queries/funnel", {"steps": ["a", "b"], "countBy": "events"})
post(A, "err.funnel_time_limit", "/queries/funnel", {"steps": ["a", "b"], "timeLimit": 0})
post(A, "err.funnel_time_limit_huge", "/queries/funnel", {"steps": ["a", "b"],
                                                          "timeLimit": 1e20})
post(A, "err.funnel_year_10000", "/queries/funnel", {"steps": ["a", "b"],
                                                     "startTime": 253402300800000})
post(A, "err.funnel_exclusion", "/queries/funnel", {"steps": ["a", "b"],
                                                    "exclusions": [{"fromStep": 0}]})
post(A, "err.funnel_segment", "/queries/funnel", {"steps": ["a", "b"], "segment": "Nobody"})
post(A, "err.cohort_no_entry", "/queries/cohort", {"periods": 3})
post(A, "err.cohort_periods", "/queries/cohort", {"entryEvent": "a", "periods": -1})
post(A, "err.cohort_period_length", "/queries/cohort", {"entryEvent": "a",
                                                        "periodLength": 10**13})
post(A, "err.cohort_type", "/queries/cohort", {"entryEvent": "a", "retentionType": "weekly"})
post(A, "err.cohort_criterion", "/queries/cohort", {"entryEvent": "a", "criterion": "near"})
post(A, "err.cohort_end_time", "/queries/cohort", {"entryEvent": "a", "endTime": 1e20})
post(A, "err.abtest_missing", "/queries/abtest", {"eventType": "experiment_assigned"})
post(A, "err.abtest_sample", "/queries/abtest", {
    "eventType": "a", "variantProperty": "v", "metricEvent": "m", "minimumSampleSize": -3})
post(A, "abtest.unknown_field", "/queries/abtest", {
    "eventType": "a", "variantProperty": "v", "metricEvent": "m", "confidence": 2})
post(A, "err.abtest_confidence", "/queries/abtest", {
    "eventType": "a", "variantProperty": "v", "metricEvent": "m", "confidenceLevel": 2})
post(A, "err.segment_filters", "/queries/segment", {"filters": "plan=pro"})
post(A, "err.execute_type", "/queries/execute", {"type": "nope", "config": {}})
post(A, "err.execute_config", "/queries/execute", {"type": "segment"})
post(A, "err.bad_json", "/queries/cohort", raw="{entryEvent: signup}")
post(A, "err.not_object", "/queries/abtest", "abtest")

# == alerts =======================================================================================
A = "alerts"
# The evaluator is pinned not to tick during the run (harness.PINNED_ENV), so every rule's
# state is the one it was loaded with; no rule can fire on the 2024 data anyway.
ALERT: dict[str, Any] = {"name": "Error burst", "enabled": True,
         "condition": {"type": "threshold", "eventType": "error", "property": "count",
                       "operator": "gt", "threshold": 5, "timeWindow": 3_600_000},
         "notification": {"channels": ["websocket", "log"], "severity": "critical",
                          "message": "Too many errors"},
         "cooldown": 60_000}
ANOMALY: dict[str, Any] = {"name": "Latency anomaly",
           "condition": {"type": "anomaly", "eventType": "api_request", "property": "duration",
                         "aggregation": "avg", "timeWindow": 3_600_000, "sensitivity": 2.5,
                         "direction": "up"},
           "notification": {"channels": ["log"], "severity": "warning"}}
post(A, "create.threshold", "/alerts", ALERT, capture={"alert_a": "id"})
post(A, "create.anomaly", "/alerts", ANOMALY, capture={"alert_b": "id"})
post(A, "create.where_for", "/alerts", {
    "name": "Slow checkout", "condition": {
        "type": "threshold", "eventType": "api_request", "property": "duration",
        "aggregation": "avg", "operator": "gte", "threshold": 200, "timeWindow": 600_000,
        "where": [{"property": "endpoint", "operator": "eq", "value": "/api/checkout"}]},
    "for": 120_000, "enabled": False}, capture={"alert_c": "id"})
get(A, "list", "/alerts")
get(A, "get", "/alerts/{alert_a}")
call(A, "put", "PUT", "/alerts/{alert_a}", {**ALERT, "name": "Error burst (replaced)",
                                            "cooldown": 120_000})
call(A, "patch.threshold", "PATCH", "/alerts/{alert_a}", {"condition": {"threshold": 10}})
call(A, "patch.disable", "PATCH", "/alerts/{alert_b}", {"enabled": False})
post(A, "test.threshold", "/alerts/{alert_a}/test", {"startTime": S, "endTime": E})
post(A, "test.threshold_day", "/alerts/{alert_a}/test", {"startTime": D1, "endTime": D2})
# (avg, not p95: a p95 rule's backtest takes seconds per hour of range on this data)
post(A, "test.anomaly", "/alerts/{alert_b}/test", {"startTime": D1, "endTime": D2})
post(A, "test.where_for", "/alerts/{alert_c}/test", {"startTime": S_MS, "endTime": E_MS})
post(A, "test.notify", "/alerts/{alert_a}/test", {"startTime": D1, "endTime": D2,
                                                  "notify": True})
get(A, "history", "/alerts/history")
get(A, "history.by_alert", "/alerts/history", ("alertId", "{alert_a}"), ("limit", "5"))
get(A, "history.other_alert", "/alerts/history", ("alertId", "{alert_b}"))
# errors
post(A, "err.no_name", "/alerts", {"condition": ALERT["condition"]})
post(A, "err.no_condition", "/alerts", {"name": "x"})
post(A, "err.condition_type", "/alerts", {"name": "x", "condition": {"type": "spike"}})
post(A, "err.operator", "/alerts", {"name": "x", "condition": {
    **ALERT["condition"], "operator": "approx"}})
post(A, "err.threshold_text", "/alerts", {"name": "x", "condition": {
    **ALERT["condition"], "threshold": "many"}})
post(A, "err.window", "/alerts", {"name": "x", "condition": {
    **ALERT["condition"], "timeWindow": -1}})
post(A, "err.channel", "/alerts", {**ALERT, "notification": {"channels": ["sms"]}})
post(A, "err.webhook_no_url", "/alerts", {**ALERT, "notification": {"channels": ["webhook"]}})
post(A, "create.webhook_private", "/alerts", {**ALERT, "notification": {
    "channels": ["webhook"], "webhookUrl": "http://127.0.0.1:9/hook"}},
     capture={"alert_priv": "id"})
post(A, "err.cooldown", "/alerts", {**ALERT, "cooldown": "soon"})
post(A, "err.sensitivity", "/alerts", {**ANOMALY, "condition": {
    **ANOMALY["condition"], "sensitivity": 0}})
get(A, "err.get_unknown", "/alerts/no-such-alert")
call(A, "err.put_unknown", "PUT", "/alerts/no-such-alert", ALERT)
call(A, "err.put_invalid", "PUT", "/alerts/{alert_a}", {"name": ""})
call(A, "err.patch_invalid", "PATCH", "/alerts/{alert_a}", {"condition": {"operator": "zz"}})
call(A, "err.patch_unknown", "PATCH", "/alerts/no-such-alert", {"enabled": True})
post(A, "err.test_start", "/alerts/{alert_a}/test", {"startTime": "nonsense"})
post(A, "err.test_reversed", "/alerts/{alert_a}/test", {"startTime": E, "endTime": S})
post(A, "err.test_bad_json", "/alerts/{alert_a}/test", raw="{not json")
post(A, "err.test_not_object", "/alerts/{alert_a}/test", [1])
post(A, "err.test_unknown", "/alerts/no-such-alert/test", {})
get(A, "err.history_limit", "/alerts/history", ("limit", "0"))

# == export =======================================================================================
A = "export"
EXPORT_FILTER = {"type": "purchase", **BODY_RANGE}
for fmt in ("csv", "json", "ndjson", "parquet", "xlsx"):
    post(A, f"format.{fmt}", "/export", {"format": fmt, "filter": EXPORT_FILTER, "limit": 25},
         decode=fmt)
post(A, "fields.csv", "/export", {"format": "csv", "filter": {"type": "api_request", **BODY_RANGE},
                                  "fields": ["id", "type", "timestamp", "userId",
                                             "properties.endpoint", "properties.duration"],
                                  "limit": 15}, decode="csv")
post(A, "where.ndjson", "/export", {"format": "ndjson", "filter": {
    "where": [{"property": "code", "operator": "eq", "value": 504}], **BODY_RANGE}},
     decode="ndjson")
post(A, "segment.json", "/export", {"format": "json", "filter": {
    "segment": "Pro Signups", "type": "signup", **BODY_RANGE}, "limit": 10}, decode="json")
post(A, "top_level_filter.csv", "/export", {"format": "csv", "type": "conversion",
                                            **BODY_RANGE, "limit": 5}, decode="csv")
post(A, "user.parquet", "/export", {"format": "parquet", "filter": {
    "userId": USER, **BODY_RANGE}, "fields": ["timestamp", "type", "properties.page"]},
     decode="parquet")
post(A, "empty.csv", "/export", {"format": "csv", "filter": {
    "startTime": "2020-01-01T00:00:00Z", "endTime": "2020-01-02T00:00:00Z"}}, decode="csv")
post(A, "err.format", "/export", {"format": "yaml"})
post(A, "err.limit", "/export", {"format": "csv", "limit": 0})
post(A, "err.fields", "/export", {"format": "csv", "fields": "id,type"})
post(A, "err.fields_empty", "/export", {"format": "csv", "fields": []})
post(A, "err.filter_type", "/export", {"format": "csv", "filter": "purchase"})
post(A, "err.filter_time", "/export", {"format": "csv", "filter": {"startTime": "soon"}})
post(A, "err.clash", "/export", {"format": "csv", "type": "a", "filter": {"type": "b"}})
post(A, "err.segment", "/export", {"format": "csv", "filter": {"segment": "Nobody"}})

# == dashboards ===================================================================================
A = "dashboards"
WIN = {"startTime": S, "endTime": E}
WIDGETS = [
    {"id": "events", "type": "counter", "title": "Events",
     "position": {"x": 0, "y": 0, "w": 3, "h": 2}, "dataSource": {"type": "count", **WIN}},
    {"id": "revenue", "type": "gauge", "title": "Revenue",
     "position": {"x": 3, "y": 0, "w": 3, "h": 2},
     "dataSource": {"type": "aggregation", "eventType": "purchase", "metric": "amount",
                    "aggregation": "sum", **WIN}, "config": {"max": 100000}},
    {"id": "users", "type": "counter", "title": "Users",
     "position": {"x": 6, "y": 0, "w": 3, "h": 2},
     "dataSource": {"type": "unique_users", **WIN}},
    {"id": "daily", "type": "line-chart", "title": "Events a day",
     "position": {"x": 0, "y": 2, "w": 6, "h": 4},
     "dataSource": {"type": "count", "interval": "1d", "groupBy": "type", **WIN}},
    {"id": "latency", "type": "bar-chart", "title": "p95 latency",
     "position": {"x": 6, "y": 2, "w": 6, "h": 4},
     "dataSource": {"type": "aggregation", "eventType": "api_request", "metric": "duration",
                    "aggregation": "p95", "groupBy": "endpoint", **WIN}},
    {"id": "pages", "type": "pie-chart", "title": "Pages",
     "position": {"x": 0, "y": 6, "w": 4, "h": 4},
     "dataSource": {"type": "top", "property": "page", "n": 5, **WIN}},
    {"id": "referrers", "type": "table", "title": "Referrers",
     "position": {"x": 4, "y": 6, "w": 4, "h": 4},
     "dataSource": {"type": "count", "eventType": "pageview", "groupBy": "referrer", **WIN}},
    {"id": "heat", "type": "heatmap", "title": "Activity",
     "position": {"x": 8, "y": 6, "w": 4, "h": 4},
     "dataSource": {"type": "aggregation", "aggregation": "count", **WIN}},
    {"id": "funnel", "type": "funnel", "title": "Checkout",
     "position": {"x": 0, "y": 10, "w": 6, "h": 4},
     "dataSource": {"type": "funnel", "steps": [{"eventType": "pageview"},
                                                {"eventType": "form_submit"},
                                                {"eventType": "purchase"}], **WIN}},
    {"id": "retention", "type": "heatmap", "title": "Retention",
     "position": {"x": 6, "y": 10, "w": 6, "h": 4},
     "dataSource": {"type": "retention", "entryEvent": "signup", "retentionEvent": "login",
                    "periods": 5, **WIN}},
    {"id": "errors", "type": "table", "title": "Errors",
     "position": {"x": 0, "y": 14, "w": 6, "h": 4},
     "dataSource": {"type": "aggregation", "eventType": "api_request", "metric": "duration",
                    "aggregation": "avg", "groupBy": "endpoint", "interval": "1d", **WIN}},
    {"id": "broken", "type": "counter", "title": "Bad metric",
     "position": {"x": 6, "y": 14, "w": 3, "h": 2},
     "dataSource": {"type": "aggregation", "eventType": "purchase", "metric": "amount",
                    "aggregation": "avg", "filters": [
                        {"property": "currency", "operator": "eq", "value": "EUR"}], **WIN}},
]
DASH = {"name": "Golden", "description": "every widget type", "refreshInterval": 30_000,
        "widgets": WIDGETS}
get(A, "templates", "/dashboards/templates")
post(A, "create.custom", "/dashboards", DASH, capture={"dash_c": "id"})
get(A, "data.custom", "/dashboards/{dash_c}/data")
get(A, "data.custom_tz", "/dashboards/{dash_c}/data", ("tz", "330"))
get(A, "get", "/dashboards/{dash_c}")
call(A, "put", "PUT", "/dashboards/{dash_c}", {**DASH, "name": "Golden v2",
                                               "widgets": WIDGETS[:3]})
get(A, "data.after_put", "/dashboards/{dash_c}/data")
post(A, "create.from_template", "/dashboards/template", {
    "template": "performance", "name": "Perf", "timeRange": "last_7d"},
     capture={"dash_t": "id"})
get(A, "get.from_template", "/dashboards/{dash_t}")
# Templates use relative ranges (last_7d, last_1h): these answers depend on the wall clock,
# but the data set is years old, so every value is 0 and every bucket time is `<now>`.
get(A, "data.from_template", "/dashboards/{dash_t}/data")
get(A, "data.from_template_1h", "/dashboards/{dash_t}/data", ("timeRange", "last_1h"),
    ("tz", "-300"))
post(A, "templates.register", "/dashboards/templates", {
    "template": "golden-tpl", "name": "Tpl", "description": "two widgets",
    "widgets": WIDGETS[:2]})
get(A, "templates.after_register", "/dashboards/templates")
post(A, "create.from_custom_template", "/dashboards/template", {"template": "golden-tpl"},
     capture={"dash_ct": "id"})
get(A, "data.from_custom_template", "/dashboards/{dash_ct}/data")
get(A, "list", "/dashboards")
call(A, "templates.delete", "DELETE", "/dashboards/templates/golden-tpl")
# errors
post(A, "err.no_name", "/dashboards", {"widgets": []})
post(A, "err.widget_type", "/dashboards", {"name": "x", "widgets": [
    {"type": "sparkline", "dataSource": {"type": "count"}}]})
post(A, "err.source_type", "/dashboards", {"name": "x", "widgets": [
    WIDGETS[0], {"type": "counter", "dataSource": {"type": "median"}}]})
post(A, "err.metric_missing", "/dashboards", {"name": "x", "widgets": [
    WIDGETS[0], {"type": "counter", "dataSource": {"type": "aggregation",
                                                   "aggregation": "sum"}}]})
post(A, "err.metric_unknown", "/dashboards", {"name": "x", "widgets": [
    WIDGETS[0], {"type": "counter", "dataSource": {"type": "aggregation",
                                                   "eventType": "purchase", "metric": "amont",
                                                   "aggregation": "sum"}}]},
     capture={"dash_warn": "id"})
post(A, "err.pie_aggregation", "/dashboards", {"name": "x", "widgets": [
    WIDGETS[0], {"type": "pie-chart", "dataSource": {"type": "aggregation", "metric": "x",
                                                     "aggregation": "sum"}}]})
post(A, "err.funnel_steps", "/dashboards", {"name": "x", "widgets": [
    WIDGETS[0], {"type": "funnel", "dataSource": {"type": "funnel",
                                                  "steps": [{"eventType": "a"}]}}]})
post(A, "err.time_range", "/dashboards", {"name": "x", "widgets": [
    WIDGETS[0], {"type": "counter", "dataSource": {"type": "count",
                                                   "timeRange": "fortnight"}}]})
post(A, "err.reversed", "/dashboards", {"name": "x", "widgets": [
    WIDGETS[0], {"type": "counter", "dataSource": {"type": "count", "startTime": E,
                                                   "endTime": S}}]})
post(A, "err.overlap", "/dashboards", {"name": "x", "widgets": [
    WIDGETS[0], {"type": "counter", "position": {"x": 1, "y": 1, "w": 3, "h": 2},
                 "dataSource": {"type": "count"}}]})
post(A, "err.position_width", "/dashboards", {"name": "x", "widgets": [
    {"type": "counter", "position": {"x": 11, "y": 3, "w": 2, "h": 2},
     "dataSource": {"type": "count"}}]})
post(A, "err.heatmap_measure", "/dashboards", {"name": "x", "widgets": [
    {"type": "heatmap", "dataSource": {"type": "aggregation", "aggregation": "p95",
                                       "metric": "duration"}}]})
post(A, "err.template_unknown", "/dashboards/template", {"template": "nope"})
post(A, "err.template_missing", "/dashboards/template", {})
post(A, "err.template_register_builtin", "/dashboards/templates", {
    "name": "overview", "dashboard": DASH})
call(A, "err.template_delete_builtin", "DELETE", "/dashboards/templates/overview")
call(A, "err.template_delete_unknown", "DELETE", "/dashboards/templates/golden-tpl")
get(A, "err.get_unknown", "/dashboards/nope")
get(A, "err.data_unknown", "/dashboards/nope/data")
get(A, "err.data_tz", "/dashboards/{dash_c}/data", ("tz", "east"))
get(A, "err.data_tz_range", "/dashboards/{dash_c}/data", ("tz", "900"))
get(A, "err.data_time_range", "/dashboards/{dash_c}/data", ("timeRange", "fortnight"))
call(A, "err.put_invalid", "PUT", "/dashboards/{dash_c}", {"name": "x", "widgets": "all"})
call(A, "err.put_unknown", "PUT", "/dashboards/nope", DASH)

# == CLI ==========================================================================================
# CLI start-up dominates (0.4-1.5 s a run), so read-only commands run in waves of concurrent
# processes: first every --json variant (distinct queries, so each one's `cached` is decided
# by the HTTP cases before them), then every table variant. Commands that change state, or
# whose answers count other requests (stats, health), run alone.
A = "cli"
SINCE = ("--since", S, "--until", E)
cli_raw(A, "stats.json", "stats", "--json")
cli_raw(A, "stats.table", "stats")
cli_raw(A, "health.json", "health", "--json")
cli_raw(A, "health.table", "health")
cli_raw(A, "config.show", "config", "show", "--json")
READ_ONLY: list[tuple[str, tuple[str, ...], bool]] = [
    ("events", ("events", *SINCE, "-n", "5"), True),
    ("events.filtered", ("events", *SINCE, "-t", "purchase", "-w", "amount>50", "-n", "3"), True),
    ("events.user_cursor", ("events", *SINCE, "-u", USER, "-n", "2", "--cursor",
                            "{raw_cursor1}"), False),
    ("query.aggregate", ("query", "aggregate", *SINCE, "-i", "1d", "-t", "signup"), True),
    ("query.aggregate.group", ("query", "aggregate", *SINCE, "-m", "duration", "-a", "p95",
                               "-t", "api_request", "-g", "endpoint", "-n", "3", "-i", "1d"),
     True),
    ("query.count", ("query", "count", *SINCE, "-g", "type"), True),
    ("query.count.where", ("query", "count", *SINCE, "-t", "pageview", "-w", "page=/pricing",
                           "-w", "referrer in google,bing"), False),
    ("query.unique", ("query", "unique", *SINCE, "-i", "1d"), True),
    ("query.unique.approx", ("query", "unique", *SINCE, "--approx"), False),
    ("query.top", ("query", "top", "page", *SINCE, "-n", "5"), True),
    ("query.funnel", ("query", "funnel", *SINCE, "--step", "pageview",
                      "--step", "click:category=products", "--step", "form_submit:form=checkout",
                      "--step", "purchase"), True),
    ("query.funnel.breakdown", ("query", "funnel", *SINCE, "--step", "pageview",
                                "--step", "purchase", "-b", "referrer", "-W", "1d",
                                "-x", "error"), True),
    ("query.cohort", ("query", "cohort", *SINCE, "-e", "signup", "-R", "login", "-p", "5"), True),
    ("query.abtest", ("query", "abtest", *SINCE, "-m", "purchase"), True),
    ("query.abtest.revenue", ("query", "abtest", *SINCE, "-m", "purchase",
                              "--metric-property", "amount", "--min-sample", "10",
                              "--confidence", "0.9"), False),
    ("query.segment", ("query", "segment", *SINCE, "-w", "plan=pro", "-P", "purchase",
                       "-n", "5"), True),
    ("alerts.list", ("alerts", "list"), True),
    ("alerts.show", ("alerts", "show", "{alert_a}"), True),
    ("alerts.history", ("alerts", "history"), True),
    ("alerts.test", ("alerts", "test", "{alert_a}", "--since", D1, "--until", D2), True),
    ("dashboards.list", ("dashboards", "list"), True),
    ("dashboards.templates", ("dashboards", "templates"), True),
    ("dashboards.show", ("dashboards", "show", "{dash_c}"), True),
    ("dashboards.show.definition", ("dashboards", "show", "{dash_c}", "--definition"), False),
    ("segment.list", ("segment", "list"), True),
    ("segment.show", ("segment", "show", "Pro Signups", "-n", "3"), True),
    ("token.list", ("token", "list"), True),
]
for name, args, _ in READ_ONLY:
    cli_raw(A, f"{name}.json", *args, "--json", wave="json")
for name, args, both in READ_ONLY:
    if both:
        cli_raw(A, f"{name}.table", *args, wave="table")
cli(A, "alerts.create", "alerts", "create", "-n", "CLI alert", "-t", "purchase",
    "--threshold", "100", "-w", "10m", capture={"alert_cli": "id"}, both=False)
cli(A, "alerts.delete", "alerts", "delete", "{alert_cli}", both=False)
cli(A, "dashboards.create", "dashboards", "create", "-t", "errors", "-n", "CLI errors",
    capture={"dash_cli": "id"}, both=False)
cli(A, "dashboards.delete", "dashboards", "delete", "{dash_cli}", both=False)
cli(A, "segment.create", "segment", "create", "CLI Pro", "-w", "plan=pro", "-d", "from the CLI",
    capture={"seg_cli": "id"}, both=False)
cli(A, "segment.delete", "segment", "delete", "{seg_cli}", both=False)
for fmt in ("csv", "json", "ndjson"):
    cli_raw(A, f"export.{fmt}.stdout", "export", "-o", "-", "-f", fmt, "-t", "purchase",
            *SINCE, "-n", "8", "-q", wave="export")
cli_raw(A, "export.csv.fields", "export", "-o", "-", "--fields",
        "timestamp,type,userId,properties.amount", "-t", "purchase", *SINCE, "-n", "5", "-q",
        wave="export")
for fmt in ("parquet", "xlsx"):
    cli_raw(A, f"export.{fmt}.file.json", "export", "-o", f"{{out}}/golden.{fmt}", "-t",
            "conversion", *SINCE, "-n", "12", "-q", "--json", output=f"golden.{fmt}",
            wave="export")
cli_raw(A, "export.ndjson.file.table", "export", "-o", "{out}/golden.ndjson", "-t", "signup",
        *SINCE, "-n", "6", "-q", output="golden.ndjson", wave="export")
# CLI errors: usage (2), rejected by the daemon (4), unreachable (3)
for name, args in [
        ("err.events_limit", ("events", "-n", "0")),
        ("err.events_since", ("events", "--since", "banana", "--json")),
        ("err.unknown_option", ("query", "count", "--bogus")),
        ("err.where_syntax", ("query", "count", "-w", "page", "--json")),
        ("err.funnel_one_step", ("query", "funnel", "--step", "pageview", "--json")),
        ("err.segment_unknown", ("query", "count", *SINCE, "--segment", "Nobody")),
        ("err.alerts_show_unknown", ("alerts", "show", "no-such-alert")),
        ("err.dashboards_template_unknown", ("dashboards", "create", "-t", "nope")),
        ("err.export_format", ("export", "-o", "-", "-f", "yaml")),
        ("err.unreachable", ("stats", "--server", "http://127.0.0.1:9", "--json"))]:
    cli_raw(A, name, *args, wave="errors")

# == tokens =======================================================================================
A = "tokens"
get(A, "list.empty", "/tokens")
post(A, "create.read", "/tokens", {"scope": "read", "name": "golden-read"},
     capture={"tok_read": "id", "tok_read_secret": "token", "tok_read_hint": "hint"})
post(A, "create.write", "/tokens", {"scope": "write", "name": "golden-write"},
     capture={"tok_write": "id", "tok_write_secret": "token", "tok_write_hint": "hint"})
post(A, "err.scope", "/tokens", {"scope": "root"})
post(A, "err.not_object", "/tokens", "admin")
get(A, "list", "/tokens")
cli_raw(A, "cli.list.table", "token", "list")
cli_raw(A, "cli.create.json", "token", "create", "--scope", "read", "--name", "golden-cli",
        "--json", capture={"tok_cli": "id", "tok_cli_secret": "token", "tok_cli_hint": "hint"})
cli_raw(A, "cli.revoke.json", "token", "revoke", "golden-cli", "--json")
# On loopback with auth `auto`, a presented token must be valid but its scope is not
# enforced (tokens are optional there), so a read token may write.
get(A, "use.read_ok", "/analytics/count", *RANGE,
    headers={"Authorization": "Bearer {tok_read_secret}"})
post(A, "use.read_token_writes", "/events", {"type": "x", "timestamp": APRIL},
     headers={"Authorization": "Bearer {tok_read_secret}"})
get(A, "use.write_token_lists", "/tokens", headers={"Authorization": "Bearer {tok_write_secret}"})
get(A, "use.bad_token", "/events", ("limit", "1"), headers={"Authorization": "Bearer rta_nope"})
call(A, "revoke.read", "DELETE", "/tokens/{tok_read}")
call(A, "revoke.write_by_name", "DELETE", "/tokens/golden-write")
call(A, "err.revoke_again", "DELETE", "/tokens/{tok_read}")
get(A, "use.revoked", "/events", ("limit", "1"),
    headers={"Authorization": "Bearer {tok_read_secret}"})
get(A, "list.after_revoke", "/tokens")

# == ingest (events in April 2024, outside every query's range) ===================================
A = "ingest"


def nd(*events: Any) -> str:
    """NDJSON text; "" stands for a blank line."""
    return "".join((json.dumps(e) if e != "" else "") + "\n" for e in events)


def ev(i: int, etype: str = "golden", **props: Any) -> dict[str, Any]:
    return {"id": f"golden-{i:04d}", "type": etype, "userId": f"g_user_{i % 3}",
            "sessionId": f"g_s_{i % 2}", "timestamp": APRIL + i * 60_000, "properties": props}


post(A, "one", "/events", ev(1, plan="pro", n=1))
post(A, "one.duplicate", "/events", ev(1, plan="pro", n=1))
post(A, "one.server_id", "/events", {"type": "golden", "userId": "g_user_x",
                                     "timestamp": APRIL + 5_000,
                                     "properties": {"nested": {"a": 1, "b": [1, 2]}}},
     capture={"ev_auto": "id"})
post(A, "one.iso_time", "/events", {**ev(2), "timestamp": "2024-04-01T00:02:00.5+02:00"})
post(A, "batch", "/events/batch", [ev(i, flag=i % 2 == 0, price=i * 1.5) for i in range(3, 8)])
post(A, "batch.duplicates", "/events/batch", [ev(3), ev(8)])
post(A, "batch.ids", "/events/batch", [{"type": "golden", "timestamp": APRIL + 9 * 60_000},
                                       {"type": "golden", "timestamp": APRIL + 10 * 60_000}],
     ("ids", "true"), capture={"ev_b0": "ids.0", "ev_b1": "ids.1"})
post(A, "batch.wrapped", "/events/batch", {"events": [ev(11), ev(12, "golden_other")]})
post(A, "batch.ndjson", "/events/batch", raw=nd(
    {"id": "golden-0013", "type": "golden", "timestamp": APRIL + 13 * 60_000}, "",
    {"id": "golden-0014", "type": "golden", "timestamp": APRIL + 14 * 60_000,
     "properties": {"k": "v"}}), headers={"Content-Type": "application/x-ndjson"})
post(A, "batch.gzip", "/events/batch", [ev(15), ev(16)], gzip=True)
post(A, "events.array", "/events", [ev(17), ev(18)])
post(A, "batch.partial", "/events/batch", [ev(19), {"type": ""}, ev(20), {"userId": "x"}],
     ("partial", "true"))
BAD = {"empty_type": {"type": ""}, "type_number": {"type": 5}, "no_type": {"userId": "u"},
       "time_text": {"type": "x", "timestamp": "later"},
       "time_future": {"type": "x", "timestamp": 4_102_444_800_000},
       "properties_list": {"type": "x", "properties": [1]}, "type_long": {"type": "x" * 201},
       "user_number": {"type": "x", "userId": 7}, "session_list": {"type": "x", "sessionId": ["s"]},
       "time_negative": {"type": "x", "timestamp": -1}, "not_object": "not an event",
       "property_null_key": {"type": "x", "properties": {"": 1}}}
post(A, "err.batch_invalid", "/events/batch", [ev(21), *BAD.values()])
for label, bad in BAD.items():
    post(A, f"err.one.{label}", "/events", bad)
# accepted although odd: an unknown top-level field, nested lists of objects in properties
post(A, "one.unknown_field", "/events", {**ev(23), "unknown": 1})
post(A, "one.nested_list", "/events", {**ev(24), "properties": {"a": {"b": [{"d": 1}]}}})
post(A, "err.bad_json", "/events", raw='{"type": "x",')
post(A, "err.bad_json_batch", "/events/batch", raw="[{]")
post(A, "err.ndjson_line", "/events/batch", raw='{"type":"a"}\n{nope}\n',
     headers={"Content-Type": "application/x-ndjson"})
post(A, "err.batch_not_array", "/events/batch", {"type": "x"})
post(A, "err.not_object", "/events", 42)
post(A, "err.media_type", "/events", raw="type=x",
     headers={"Content-Type": "multipart/form-data; boundary=x"})
post(A, "err.encoding", "/events", raw='{"type":"x"}', headers={"Content-Encoding": "br"})
post(A, "err.bad_gzip", "/events/batch", raw="not gzip",
     headers={"Content-Encoding": "gzip", "Content-Type": "application/json"})
post(A, "err.too_many_events", "/events/batch", [{"type": "x", "timestamp": APRIL}] * 10_001)
post(A, "err.event_too_large", "/events", {"type": "x", "timestamp": APRIL,
                                           "properties": {"blob": "y" * 40_000}})
post(A, "err.batch_too_large", "/events/batch", raw=b"[" + b" " * 10_485_760 + b"]",
     headers={"Content-Type": "application/json"})
post(A, "err.too_deep", "/events", raw='{"type":"x","properties":' + '{"a":' * 300 + "1"
     + "}" * 300 + "}")
post(A, "err.partial_value", "/events/batch", [ev(22)], ("partial", "perhaps"))
post(A, "err.too_many_properties", "/events", {"type": "x", "timestamp": APRIL, "properties": {
    f"k{i}": i for i in range(1001)}})
get(A, "stored", "/events", *APRIL_RANGE, ("limit", "100"))
get(A, "stored.count", "/analytics/count", *APRIL_RANGE, ("groupBy", "type"))
cli_raw(A, "cli.ingest.json", "ingest", "-", "--json", stdin=nd(
    {"id": "golden-0100", "type": "golden_cli", "timestamp": APRIL + 100 * 60_000},
    {"type": ""}, {"id": "golden-0101", "type": "golden_cli", "timestamp": APRIL + 101 * 60_000}))
cli_raw(A, "cli.ingest.table", "ingest", "-", stdin=json.dumps(
    [{"id": "golden-0102", "type": "golden_cli", "timestamp": APRIL + 102 * 60_000}]))
cli_raw(A, "cli.ingest.strict", "ingest", "-", "--strict", stdin=nd(
    {"id": "golden-0103", "type": "golden_cli", "timestamp": APRIL + 103 * 60_000}, {"type": 5}))
cli_raw(A, "cli.ingest.missing_file", "ingest", "/nonexistent/golden.ndjson")
get(A, "stored.after_cli", "/analytics/count", *APRIL_RANGE, ("type", "golden_cli"))

# == SDK routes (PostHog and Segment), April 2024 too =============================================
A = "sdk"
PH_TS = "2024-04-02T10:00:00Z"


def ph(event: str, i: int) -> dict[str, Any]:
    return {"event": event, "distinct_id": f"ph_user_{i}", "timestamp": PH_TS,
            "uuid": f"00000000-0000-4000-8000-{i:012d}",
            "properties": {"$current_url": "https://example.com/p", "n": i}}


for i, path in enumerate(("/batch", "/batch/", "/capture", "/capture/", "/e", "/e/",
                          "/i/v0/e", "/i/v0/e/")):
    if path.startswith("/batch"):
        post(A, f"posthog{path}", path, {"api_key": "phc_golden", "batch": [
            ph("$pageview", 10 * i), ph("signed_up", 10 * i + 1)]})
    else:
        post(A, f"posthog{path}", path, {"api_key": "phc_golden", **ph("$pageview", 10 * i)})
post(A, "posthog.err.no_event", "/capture", {"api_key": "phc_golden", "distinct_id": "x"})
post(A, "posthog.err.bad_json", "/capture", raw="{nope")
post(A, "posthog.err.bad_key", "/capture", {"api_key": "rta_wrong", **ph("x", 99)})
SEG_TS = "2024-04-03T10:00:00.000Z"
SEG_BASE = {"userId": "seg_user", "timestamp": SEG_TS}
post(A, "segment.track", "/v1/track", {**SEG_BASE, "event": "Order Completed",
                                       "messageId": "seg-0001",
                                       "properties": {"revenue": 12.5}})
post(A, "segment.page", "/v1/page", {**SEG_BASE, "name": "Home", "messageId": "seg-0002",
                                     "properties": {"path": "/"}})
post(A, "segment.screen", "/v1/screen", {**SEG_BASE, "name": "Main", "messageId": "seg-0003"})
post(A, "segment.identify", "/v1/identify", {**SEG_BASE, "messageId": "seg-0004",
                                             "traits": {"plan": "pro"}})
post(A, "segment.alias", "/v1/alias", {**SEG_BASE, "previousId": "anon-1",
                                       "messageId": "seg-0005"})
post(A, "segment.group", "/v1/group", {**SEG_BASE, "groupId": "acme", "messageId": "seg-0006",
                                       "traits": {"name": "Acme"}})
post(A, "segment.batch", "/v1/batch", {"batch": [
    {**SEG_BASE, "type": "track", "event": "Signed Up", "messageId": "seg-0007"},
    {**SEG_BASE, "type": "page", "name": "Pricing", "messageId": "seg-0008"}]})
post(A, "segment.import", "/v1/import", {"batch": [
    {**SEG_BASE, "type": "track", "event": "Imported", "messageId": "seg-0009"}]})
post(A, "segment.err.no_event", "/v1/track", {**SEG_BASE, "messageId": "seg-0010"})
post(A, "segment.err.no_user", "/v1/track", {"event": "x", "timestamp": SEG_TS})
post(A, "segment.err.batch_type", "/v1/batch", {"batch": "all"})
get(A, "stored.posthog", "/events", ("startTime", "2024-04-02T00:00:00Z"),
    ("endTime", "2024-04-02T23:59:59Z"), ("limit", "100"))
get(A, "stored.segment", "/events", ("startTime", "2024-04-03T00:00:00Z"),
    ("endTime", "2024-04-03T23:59:59Z"), ("limit", "100"))

# == clean-up deletes, then the final state =======================================================
A = "final"
call(A, "segments.delete", "DELETE", "/segments/{seg_buyers}")
call(A, "segments.delete_by_name", "DELETE", "/segments/Google or GitHub")
call(A, "segments.err.delete_again", "DELETE", "/segments/{seg_buyers}")
get(A, "segments.list", "/segments")
call(A, "alerts.delete", "DELETE", "/alerts/{alert_b}")
call(A, "alerts.err.delete_again", "DELETE", "/alerts/{alert_b}")
get(A, "alerts.list", "/alerts")
call(A, "dashboards.delete", "DELETE", "/dashboards/{dash_t}")
call(A, "dashboards.err.delete_again", "DELETE", "/dashboards/{dash_t}")
get(A, "dashboards.list", "/dashboards")
get(A, "stats", "/stats")
get(A, "health", "/health")
get(A, "all_time_count", "/analytics/count", ("groupBy", "type"))
