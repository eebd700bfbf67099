"""GET /openapi.json: the API description, checked complete against the app's routes.

Operations are described here by hand (summaries, parameters, bodies); `build_spec`
walks the app's url map so a route without a description fails the test suite rather
than silently missing from the document.
"""

from __future__ import annotations

import re
from typing import Any

from quart import Blueprint, Response, current_app

from rta import __version__
from rta.core.alerts import CHANNELS as ALERT_CHANNELS
from rta.server.http import json_response

bp = Blueprint("openapi", __name__)

ERROR = {"$ref": "#/components/schemas/Error"}
OBJ: dict[str, Any] = {"type": "object", "additionalProperties": True}
TIME = {"oneOf": [{"type": "integer"}, {"type": "string"}],
        "description": "ms since epoch (0 to 9999-12-31), ISO-8601, or relative "
                       "(last_15m, last_24h, today)"}
COMPARE = {"enum": ["previous_period"], "description": "also answer the previous period: "
                                                    "its values, the change, a test"}
FILTER_PARAMS = ["type", "userId", "startTime", "endTime", "timeRange", "where", "segment"]
SCHEMAS: dict[str, Any] = {
    "Error": {"type": "object", "required": ["error"], "properties": {"error": {
        "type": "object", "required": ["code", "message", "details"],
        "properties": {"code": {"type": "string"}, "message": {"type": "string"},
                       "details": {"type": "array", "items": {}}}}}},
    "Event": {"type": "object", "required": ["type"], "properties": {
        "id": {"type": "string", "description": "client id for idempotency (UUID best)"},
        "type": {"type": "string", "minLength": 1, "maxLength": 200},
        "userId": {"type": ["string", "null"]}, "sessionId": {"type": ["string", "null"]},
        "timestamp": {"oneOf": [{"type": "integer"}, {"type": "string"}],
                      "description": "ms since epoch or ISO-8601 (naive times are UTC); "
                                     "default: when the server receives it"},
        "properties": {"type": "object", "additionalProperties": True,
                       "description": "scalars; nested objects flatten to dotted keys"}}},
    "Filter": {"type": "object", "additionalProperties": True, "properties": {
        "type": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
        "startTime": TIME, "endTime": TIME, "timeRange": {"type": "string"},
        "userId": {"oneOf": [{"type": "string"}, {"type": "array",
                                                   "items": {"type": "string"}}]},
        "where": {"type": "array", "items": {"$ref": "#/components/schemas/Predicate"}},
        "operator": {"enum": ["AND", "OR"]}, "segment": {"type": "string"}}},
    "Predicate": {"type": "object", "additionalProperties": True, "properties": {
        "property": {"type": "string"},
        "operator": {"enum": ["eq", "neq", "gt", "gte", "lt", "lte", "in", "not_in", "contains",
                              "not_contains", "starts_with", "ends_with", "exists",
                              "not_exists"]},
        "value": {}}},
    "Aggregate": {"type": "object", "additionalProperties": True, "properties": {
        "eventType": {"type": "string"}, "metric": {"type": "string",
                                                   "description": "numeric property"},
        "aggregation": {"enum": ["count", "sum", "avg", "min", "max", "p50", "p90", "p95",
                                 "p99", "unique_users"]},
        "interval": {"oneOf": [{"type": "integer", "minimum": 1}, {"type": "string"}],
                     "description": "ms or 1m/5m/1h/1d"},
        "groupBy": {"type": "string"}, "limit": {"type": "integer"},
        "tzOffset": {"type": "integer", "minimum": -840, "maximum": 840,
                     "description": "minutes east of UTC that buckets align to (default 0)"},
        "startTime": TIME, "endTime": TIME,
        "series": {"type": "array", "minItems": 1, "maxItems": 10, "items": OBJ,
                   "description": "named series ({name, eventType, where, aggregation, "
                                  "property}) sharing the range and buckets"},
        "formula": {"type": "string", "description": "arithmetic over the series names "
                                                     "(+ - * / ( ) numbers), e.g. A / B * 100"},
        "compare": COMPARE,
        "unit": {"type": "string", "description": "unique_users counts users (default) or "
                 "group:<type> (groups)"}}},
    "FunnelStep": {"type": "object", "required": ["eventType"], "properties": {
        "name": {"type": "string"}, "eventType": {"type": "string"},
        "filters": {"description": "{key: value} equality or a predicate list"}}},
    "Funnel": {"type": "object", "required": ["steps"], "additionalProperties": True,
               "properties": {
                   "steps": {"type": "array", "minItems": 2, "maxItems": 20,
                             "items": {"$ref": "#/components/schemas/FunnelStep"}},
                   "startTime": TIME, "endTime": TIME,
                   "timeLimit": {"type": "integer", "minimum": 1,
                                 "description": "conversion window in ms (default 14 days)"},
                   "order": {"enum": ["ordered", "strict", "any"]},
                   "breakdown": {"type": "string"},
                   "countBy": {"type": "string", "description": "users, sessions or "
                               "group:<type> (e.g. group:company: count groups)"},
                   "exclusions": {"type": "array", "items": OBJ}}},
    "Paths": {"type": "object", "additionalProperties": True, "properties": {
        "pathType": {"enum": ["events", "pages"],
                     "description": "pages: pageview (page) and $pageview ($pathname) events"},
        "startPoint": {"type": "string", "description": "event type (or page) paths start at"},
        "endPoint": {"type": "string", "description": "event type (or page) paths end at"},
        "steps": {"type": "integer", "minimum": 1, "maximum": 20, "default": 5},
        "unit": {"enum": ["users", "sessions"]},
        "windowMinutes": {"type": "integer", "minimum": 1, "default": 30,
                          "description": "a gap longer than this between events ends a path"},
        "topK": {"type": "integer", "minimum": 1, "maximum": 100, "default": 10,
                 "description": "names kept per step; the rest are grouped as $other"},
        "collapseRepeats": {"type": "boolean"}, "startTime": TIME, "endTime": TIME,
        "where": {"type": "array", "items": {"$ref": "#/components/schemas/Predicate"}},
        "segment": {"type": "string"}}},
    "PathsAnswer": {
        "type": "object", "description": "POST /queries/paths answers this (semantics: "
        "docs/statistics.md, Paths). Node ids are '<step>_<name>'; names outside a step's "
        "top K are grouped as '$other'. Links point forward in time: with endPoint "
        "(direction backward) step 1 is the end point and links go from step k + 1 to k.",
        "properties": {
            "pathType": {"enum": ["events", "pages"]}, "unit": {"enum": ["users", "sessions"]},
            "startPoint": {"type": ["string", "null"]}, "endPoint": {"type": ["string", "null"]},
            "direction": {"enum": ["forward", "backward"]}, "steps": {"type": "integer"},
            "windowMinutes": {"type": "integer"}, "topK": {"type": "integer"},
            "collapseRepeats": {"type": "boolean"},
            "startTime": {"type": ["integer", "null"]}, "endTime": {"type": ["integer", "null"]},
            "totalPaths": {"type": "integer", "description": "units with a path"},
            "nodes": {"type": "array", "items": {"type": "object", "properties": {
                "id": {"type": "string"}, "step": {"type": "integer", "minimum": 1},
                "name": {"type": "string"},
                "users": {"type": "integer", "description": "paths (users or sessions) "
                                                           "through this node"},
                "dropoff": {"type": "integer", "description": "paths that stop here"}}}},
            "links": {"type": "array", "items": {"type": "object", "properties": {
                "source": {"type": "string"}, "target": {"type": "string"},
                "users": {"type": "integer"}}}},
            "warnings": {"type": "array", "items": OBJ}}},
    "Cohort": {"type": "object", "additionalProperties": True,
               "description": "entryEvent is required unless entryFilters define the cohort",
               "properties": {
                   "name": {"type": "string"}, "entryEvent": {"type": "string"},
                   "retentionEvent": {"type": "string"}, "periods": {"type": "integer"},
                   "periodLength": {"type": "integer", "description": "ms"},
                   "retentionType": {"enum": ["first_time", "recurring"]},
                   "criterion": {"enum": ["on", "on_or_after"]},
                   "entryFilters": OBJ, "retentionFilters": OBJ,
                   "breakdown": {"type": "string"}, "breakdownLimit": {"type": "integer"},
                   "unit": {"type": "string", "description": "users (default) or "
                            "group:<type>: the grid counts groups"},
                   "startTime": TIME, "endTime": TIME}},
    "Stickiness": {"type": "object", "required": ["eventType"], "additionalProperties": True,
                   "properties": {
                       "name": {"type": "string"}, "eventType": {"type": "string"},
                       "interval": {"enum": ["day", "week"]}, "filters": OBJ,
                       "segment": {"type": "string"}, "startTime": TIME, "endTime": TIME,
                       "timeRange": {"type": "string"}}},
    "Lifecycle": {"type": "object", "required": ["eventType"], "additionalProperties": True,
                  "properties": {
                      "name": {"type": "string"}, "eventType": {"type": "string"},
                      "interval": {"enum": ["day", "week", "month"]}, "filters": OBJ,
                      "segment": {"type": "string"}, "startTime": TIME, "endTime": TIME,
                      "timeRange": {"type": "string"}}},
    "ABTest": {"type": "object", "required": ["eventType", "variantProperty", "metricEvent"],
               "additionalProperties": True, "properties": {
                   "name": {"type": "string"}, "eventType": {"type": "string"},
                   "variantProperty": {"type": "string"}, "metricEvent": {"type": "string"},
                   "metricProperty": {"type": "string"}, "control": {"type": "string"},
                   "minimumSampleSize": {"type": "integer"},
                   "startTime": TIME, "endTime": TIME}},
    "Alert": {"type": "object", "required": ["name", "condition"], "additionalProperties": True,
              "properties": {
                  "name": {"type": "string"}, "enabled": {"type": "boolean"},
                  "condition": {"type": "object", "properties": {
                      "type": {"enum": ["threshold", "anomaly"]}, "eventType": {"type": "string"},
                      "property": {"type": "string"},
                      "operator": {"enum": ["gt", "gte", "lt", "lte", "eq", "neq"]},
                      "threshold": {"type": "number"}, "timeWindow": {"type": "integer"},
                      "metric": {"type": "object", "additionalProperties": True,
                                 "description": "a query's value instead of a counter: kind "
                                                "funnel, formula, retention, unique_users, "
                                                "stickiness"},
                      "evaluateEvery": {"type": "integer",
                                        "description": "ms between metric evaluations"},
                      "sensitivity": {"type": "number"},
                      "direction": {"enum": ["both", "up", "down"]}}},
                  "notification": {"type": "object", "properties": {
                      "channels": {"type": "array", "items": {
                          "enum": ["websocket", "log", "webhook"]}},
                      "severity": {"type": "string"}, "message": {"type": "string"},
                      "webhookUrl": {"type": "string", "format": "uri"}}},
                  "cooldown": {"type": "integer", "description": "ms"},
                  "for": {"type": "integer", "description": "ms the condition must hold"}}},
    "Dashboard": {"type": "object", "required": ["name"], "additionalProperties": True,
                  "properties": {
                      "name": {"type": "string"}, "description": {"type": "string"},
                      "layout": OBJ, "refreshInterval": {"type": "integer"},
                      "widgets": {"type": "array", "items": {"type": "object", "properties": {
                          "type": {"enum": ["line-chart", "bar-chart", "pie-chart", "gauge",
                                            "counter", "table", "heatmap", "funnel",
                                            "sankey"]},
                          "title": {"type": "string"}, "position": OBJ, "config": OBJ,
                          "dataSource": OBJ}}}}},
    "Export": {"type": "object", "additionalProperties": True, "properties": {
        "format": {"enum": ["csv", "json", "ndjson", "parquet", "xlsx"]},
        "filter": {"$ref": "#/components/schemas/Filter"},
        "fields": {"type": "array", "items": {"type": "string"}},
        "limit": {"type": "integer", "minimum": 1}}},
}


def ref(name: str) -> dict[str, Any]:
    return body({"$ref": f"#/components/schemas/{name}"})


def body(schema: Any, required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": {"application/json": {"schema": schema}}}


def op(summary: str, tag: str, *, query: list[str] | None = None, request: Any = None,
       ok: int = 200, content: str = "application/json") -> dict[str, Any]:
    out: dict[str, Any] = {"summary": summary, "tags": [tag], "responses": {
        str(ok): {"description": "OK", "content": {content: {"schema": OBJ if
                                                           content == "application/json"
                                                           else {"type": "string"}}}},
        "4XX": {"description": "bad request", "content": {"application/json": {
            "schema": ERROR}}}}}
    if query:
        out["parameters"] = [{"name": q, "in": "query", "required": False,
                              "schema": {"type": "string"}} for q in query]
    if request is not None:
        out["requestBody"] = request
    return out


SDK_BODY = body(OBJ)
OPERATIONS: dict[tuple[str, str], dict[str, Any]] = {
    ("GET", "/health"): op("Liveness, version, uptime and store state", "system"),
    ("GET", "/stats"): op("Ingestion, store, alert and WebSocket statistics", "system"),
    ("GET", "/metrics"): op("Prometheus metrics", "system", content="text/plain"),
    ("GET", "/openapi.json"): op("This document", "system"),
    ("POST", "/events"): op("Ingest one event", "events", ok=202,
                            request=body({"$ref": "#/components/schemas/Event"})),
    ("POST", "/events/batch"): op(
        "Ingest a batch (JSON array, NDJSON or an Arrow IPC stream; gzip accepted)",
        "events", ok=202,
        query=["partial", "ids"],
        request={"required": True, "content": {
            "application/json": {"schema": {"type": "array",
                                            "items": {"$ref": "#/components/schemas/Event"}}},
            "application/x-ndjson": {"schema": {"type": "string"}},
            "application/vnd.apache.arrow.stream": {"schema": {"type": "string",
                                                               "format": "binary"}}}}),
    ("GET", "/events"): op("Recent events, newest first (equal timestamps: last to arrive "
                           "first), cursor paging", "events",
                           query=[*FILTER_PARAMS, "sessionId", "limit", "cursor"]),
    ("POST", "/analytics/aggregate"): op("Time-series aggregation", "analytics",
                                         request=ref("Aggregate")),
    ("GET", "/analytics/aggregate"): op("Time-series aggregation from query arguments",
                                        "analytics", query=[*FILTER_PARAMS, "metric",
                                                            "aggregation", "interval",
                                                            "groupBy", "limit",
                                                            "tzOffset", "compare", "unit"]),
    ("GET", "/analytics/count"): op("Count events, optionally grouped", "analytics",
                                    query=[*FILTER_PARAMS, "groupBy", "limit", "compare"]),
    ("POST", "/analytics/count"): op("Count events (JSON body)", "analytics",
                                     request=body(OBJ)),
    ("GET", "/analytics/unique-users"): op("Unique users (exact or HyperLogLog)", "analytics",
                                           query=[*FILTER_PARAMS, "interval", "approximate",
                                                  "tzOffset", "compare", "unit"]),
    ("POST", "/analytics/unique-users"): op("Unique users (JSON body)", "analytics",
                                            request=body(OBJ)),
    ("GET", "/analytics/top"): op("Top-N values of a property", "analytics",
                                  query=[*FILTER_PARAMS, "property", "n", "sort"]),
    ("POST", "/analytics/top"): op("Top-N values (JSON body)", "analytics", request=body(OBJ)),
    ("GET", "/analytics/web"): op(
        "Web analytics: visitors, visits, pageviews, views per visit, bounce rate and visit "
        "duration with the previous period's values, and visitors now (docs/web.md)",
        "analytics", query=[*FILTER_PARAMS, "bots"]),
    ("GET", "/analytics/web/{dimension}"): op(
        "One web dimension (pages, entry-pages, exit-pages, sources, channels, utm-sources, "
        "utm-mediums, utm-campaigns, countries, browsers, os, devices): visitors, visits, "
        "pageviews, bounce rate and share per value; or realtime", "analytics",
        query=[*FILTER_PARAMS, "bots", "limit"]),
    ("POST", "/queries/funnel"): op("Funnel analysis", "queries", request=ref("Funnel")),
    ("POST", "/queries/cohort"): op("Cohort retention", "queries", request=ref("Cohort")),
    ("POST", "/queries/abtest"): op("A/B test statistics", "queries", request=ref("ABTest")),
    ("POST", "/queries/segment"): op("Evaluate a user segment", "queries", request=body(OBJ)),
    ("POST", "/queries/paths"): op("Most frequent paths from a start or to an end point "
                                   "(answer: PathsAnswer)", "queries",
                                   request=ref("Paths")),
    ("POST", "/queries/execute"): op("Run a query by type (segment, funnel, cohort, abtest, "
                                     "paths, stickiness, lifecycle)", "queries",
                                     request=body(OBJ)),
    ("POST", "/queries/stickiness"): op("Users by how many days or weeks they did an event",
                                        "queries", request=ref("Stickiness")),
    ("POST", "/queries/lifecycle"): op("New, returning, resurrecting and dormant users per "
                                       "period", "queries", request=ref("Lifecycle")),
    ("GET", "/segments"): op("Saved segments", "segments"),
    ("POST", "/segments"): op("Save a segment", "segments", ok=201, request=body(OBJ)),
    ("GET", "/segments/{ref}"): op("One saved segment", "segments"),
    ("DELETE", "/segments/{ref}"): op("Delete a saved segment", "segments"),
    ("GET", "/alerts"): op("Alert rules", "alerts"),
    ("POST", "/alerts"): op("Create an alert rule", "alerts", ok=201, request=ref("Alert")),
    ("GET", "/alerts/history"): op("Alert notifications, newest first", "alerts",
                                   query=["limit", "alertId"]),
    ("GET", "/alerts/{alert_id}"): op("One alert rule with its state", "alerts"),
    ("PUT", "/alerts/{alert_id}"): op("Replace an alert rule", "alerts", request=ref("Alert")),
    ("PATCH", "/alerts/{alert_id}"): op("Change part of an alert rule", "alerts",
                                        request=body(OBJ)),
    ("DELETE", "/alerts/{alert_id}"): op("Delete an alert rule", "alerts"),
    ("POST", "/alerts/{alert_id}/test"): op("Backtest a rule over stored data", "alerts",
                                            request=body(OBJ, required=False)),
    ("POST", "/export"): op("Streamed export (csv, json, ndjson, parquet, xlsx)", "export",
                            request=ref("Export"), content="application/octet-stream"),
    ("GET", "/dashboards"): op("Dashboards", "dashboards"),
    ("POST", "/dashboards"): op("Create a dashboard", "dashboards", ok=201,
                                request=ref("Dashboard")),
    ("POST", "/dashboards/template"): op("Create a dashboard from a template", "dashboards",
                                         ok=201, request=body(OBJ)),
    ("GET", "/dashboards/templates"): op("Available templates", "dashboards"),
    ("POST", "/dashboards/templates"): op("Register a custom template", "dashboards", ok=201,
                                          request=body(OBJ)),
    ("DELETE", "/dashboards/templates/{name}"): op("Remove a custom template", "dashboards"),
    ("GET", "/dashboards/{dashboard_id}"): op("One dashboard", "dashboards"),
    ("PUT", "/dashboards/{dashboard_id}"): op("Replace a dashboard", "dashboards",
                                              request=body(OBJ)),
    ("DELETE", "/dashboards/{dashboard_id}"): op("Delete a dashboard", "dashboards"),
    ("GET", "/dashboards/{dashboard_id}/data"): op("Every widget's data", "dashboards",
                                                   query=["timeRange", "tz"]),
    ("GET", "/tokens"): op("API tokens (admin)", "tokens"),
    ("POST", "/tokens"): op("Create an API token (admin)", "tokens", ok=201,
                            request=body(OBJ)),
    ("DELETE", "/tokens/{ref}"): op("Revoke an API token (admin)", "tokens"),
    ("POST", "/persons/merge"): op("Merge distinct ids into one person: {distinctIds: [target, "
                                   "...], force} (admin; 409 for an identified person unless "
                                   "force)", "persons", request=body(OBJ)),
    ("GET", "/persons"): op("Persons ordered by person id, with their properties: search "
                            "(in distinct ids and property values), limit (1-1000), cursor",
                            "persons", query=["search", "limit", "cursor"]),
    # (summary as recorded by the golden test; the profile keys are in docs/people.md)
    ("GET", "/persons/{person_id}"): op("The person a distinct id or person id belongs to: "
                                        "personId, distinctIds, identified", "persons"),
    ("GET", "/groups"): op("Group types (at most 5, PostHog's limit) in index order, with "
                           "their identified groups", "groups"),
    ("GET", "/groups/{group_type}"): op("Groups of a type: key, properties, firstSeen, "
                                        "lastSeen, eventCount; search, limit (1-1000), "
                                        "cursor (the previous page's next)", "groups",
                                        query=["search", "limit", "cursor"]),
    ("GET", "/groups/{group_type}/{key}"): op("One group: key, properties, firstSeen, "
                                              "lastSeen, eventCount (404 if unknown)",
                                              "groups"),
    ("POST", "/persons/{person_id}/properties"): op(
        "Update a person's properties: {$set: {...}, $set_once: {...}, $unset: [...]} "
        "(write; 404 for an unknown id)", "persons", request=body(OBJ)),
    ("DELETE", "/persons/{person_id}"): op(
        "Erase a person (admin): every event of all its distinct ids, its links and the "
        "strings only it used, from memory and disk (docs/people.md); answers the receipt "
        "{personId, distinctIds, distinctIdsErased, eventsRemoved, segmentsRewritten, "
        "segmentsDropped, tookMs, phasesMs, erasedAt}; 404 for an unknown id", "persons"),
    ("GET", "/ws"): op("WebSocket: subscribe to metrics, events, alerts, dashboard:<id>; "
                       "send events", "live", ok=101),
    ("GET", "/"): op("The browser dashboard", "web", content="text/html"),
}
# Scheduled reports and alert silences (#21)
SCHEMAS["Report"] = {"type": "object", "additionalProperties": False, "properties": {
    "name": {"type": "string"}, "dashboardId": {"type": "string"},
    "schedule": {"type": "string", "description": "five-field cron, e.g. '0 9 * * 1'"},
    "tz": {"type": "string", "description": "IANA time zone (default UTC)"},
    "to": {"type": "array", "items": {"type": "string"},
           "description": "email:<address> or slack:<incoming-webhook URL>"},
    "enabled": {"type": "boolean"},
    "timeRange": {"type": "string", "description": "default: the dashboard's"}}}
SCHEMAS["Silence"] = {"type": "object", "properties": {
    "for": {"oneOf": [{"type": "integer"}, {"type": "string"}], "description": "e.g. '2h'"},
    "until": TIME, "startsAt": TIME, "reason": {"type": "string"},
    "alertId": {"type": ["string", "null"],
                "description": "/alerts/silences only; absent or null: every alert"}}}
REPORT, SILENCE = ref("Report"), ref("Silence")
_NOTE = SCHEMAS["Alert"]["properties"]["notification"]["properties"]
_NOTE["channels"]["items"]["enum"] = list(ALERT_CHANNELS)
_NOTE.update(emailTo={"type": "array", "items": {"type": "string", "format": "email"},
                      "description": "addresses of the email channel"},
             slackUrl={"type": "string", "format": "uri",
                       "description": "Slack incoming-webhook URL of the slack channel"},
             dashboardId={"type": "string", "description": "linked from email and Slack"})
OPERATIONS.update({
    ("GET", "/reports"): op("Scheduled reports", "reports"),
    ("POST", "/reports"): op("Schedule a dashboard report", "reports", ok=201, request=REPORT),
    ("GET", "/reports/{report_id}"): op("One report with its next run", "reports"),
    ("PATCH", "/reports/{report_id}"): op("Change a report", "reports", request=body(OBJ)),
    ("DELETE", "/reports/{report_id}"): op("Delete a report", "reports"),
    ("POST", "/reports/{report_id}/send"): op("Send a report now", "reports"),
    ("GET", "/reports/{report_id}/history"): op("Delivery attempts, newest first", "reports",
                                                query=["limit"]),
    ("POST", "/alerts/{alert_id}/silence"): op("Mute an alert for a while", "alerts", ok=201,
                                               request=SILENCE),
    ("POST", "/alerts/silences"): op("Mute one alert or every alert", "alerts", ok=201,
                                     request=SILENCE),
    ("GET", "/alerts/silences"): op("Silences", "alerts", query=["active", "alertId"]),
    ("DELETE", "/alerts/silences/{silence_id}"): op("End a silence", "alerts"),
})
for _path in ("/batch", "/capture", "/e", "/i/v0/e"):
    for _p in (_path, _path + "/"):
        OPERATIONS[("POST", _p)] = op("PostHog capture API", "sdk", request=SDK_BODY)
for _kind in ("batch", "import", "track", "page", "screen", "identify", "alias", "group"):
    OPERATIONS[("POST", f"/v1/{_kind}")] = op(f"Segment tracking API: {_kind}", "sdk",
                                              request=SDK_BODY)
for _path in ("/flags", "/decide"):  # PostHog SDK configuration (no flags), #19
    for _p in (_path, _path + "/"):
        for _m in ("GET", "POST"):
            OPERATIONS[(_m, _p)] = op("PostHog SDK flags and config: no feature flags", "sdk")
OPERATIONS[("GET", "/array/{token}/config")] = op("posthog-js remote config", "sdk")
OPERATIONS[("GET", "/array/{token}/config.js")] = op(
    "posthog-js remote config as a script", "sdk", content="text/javascript")
OPERATIONS[("POST", "/api/event")] = op(
    "One event from the first-party script /js/rta.js (visitor id derived server-side)",
    "web", ok=202, request=SDK_BODY)
OPERATIONS.update({  # annotations and share links (issue 21)
    ("POST", "/annotations"): op("Create an annotation (write)", "annotations", ok=201,
                                 request=body(OBJ)),
    ("GET", "/annotations"): op("Annotations, oldest first", "annotations",
                                query=["from", "to", "dashboard"]),
    ("GET", "/annotations/{annotation_id}"): op("One annotation", "annotations"),
    ("DELETE", "/annotations/{annotation_id}"): op("Delete an annotation (admin)",
                                                   "annotations"),
    ("POST", "/dashboards/{dashboard_id}/share"): op(
        "Make a read-only share link (admin)", "dashboards", ok=201,
        request=body(OBJ, required=False)),
    ("GET", "/dashboards/{dashboard_id}/share"): op("A dashboard's share links (admin)",
                                                    "dashboards"),
    ("DELETE", "/dashboards/{dashboard_id}/share"): op("Revoke every share link of a "
                                                       "dashboard (admin)", "dashboards"),
    ("DELETE", "/dashboards/{dashboard_id}/share/{link_id}"): op(
        "Revoke one share link (admin)", "dashboards"),
    ("GET", "/share/{token}"): op("A shared dashboard, read-only (public; ?embed=1 for an "
                                  "iframe)", "web", content="text/html"),
})
# Static files of the dashboard are not API operations.
STATIC_ENDPOINTS = ("web.static_file", "web.index_file", "web.favicon", "static")


def openapi_path(rule: str) -> str:
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule)


def build_spec(app: Any) -> tuple[dict[str, Any], list[str]]:
    """The document, and the routes it does not describe (should be none)."""
    paths: dict[str, dict[str, Any]] = {}
    missing: list[str] = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint in STATIC_ENDPOINTS:
            continue
        path = openapi_path(rule.rule)
        methods = ["GET"] if getattr(rule, "websocket", False) else sorted(
            rule.methods - {"HEAD", "OPTIONS"})
        for method in methods:
            operation = OPERATIONS.get((method, path))
            if operation is None:
                missing.append(f"{method} {path}")
                continue
            entry = dict(operation)
            params = [{"name": n, "in": "path", "required": True, "schema": {"type": "string"}}
                      for n in re.findall(r"{([^}]+)}", path)]
            if params:
                entry["parameters"] = params + entry.get("parameters", [])
            paths.setdefault(path, {})[method.lower()] = entry
    spec = {"openapi": "3.1.0",
            "info": {"title": "rta", "version": __version__,
                     "description": "Self-hosted real-time product analytics."},
            "paths": dict(sorted(paths.items())),
            "components": {"schemas": SCHEMAS, "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"}}},
            "security": [{}, {"bearer": []}]}
    return spec, missing


@bp.get("/openapi.json")
async def openapi_json() -> Response:
    spec, _ = build_spec(current_app)
    return json_response(spec)
