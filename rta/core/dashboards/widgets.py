"""Dashboards: model, validation, templates and resolving every widget's data.

A dashboard is a JSON document (metadata kind "dashboard") holding widgets on a 12-column
grid. Each widget names a `dataSource` that is answered by the query engines (analytics and
behaviour modules) and reshaped into a small *view* the browser draws without further
computation:

    value      {"kind": "value", "value": 12.5}                          counter, gauge
    series     {"kind": "series", "timestamps": [...], "series": [{"name", "values"}]}
    categories {"kind": "categories", "labels": [...], "values": [...]}  pie, bar
    table      {"kind": "table", "columns": [...], "rows": [[...]]}
    heatmap    {"kind": "heatmap", "xLabels", "yLabels", "values": [[...]] (rows = y)}
    funnel     {"kind": "funnel", "steps": [{"name", "count", "conversionRate", ...}]}

Validation is strict and names the widget index and field (`widgets[2].dataSource.metric`), so
a bad dashboard is refused at the door; a widget that still fails at query time (data changed,
a backend error) carries its own `error` while the rest of the dashboard resolves.
"""

from __future__ import annotations

import copy
import importlib
import logging
import re
import time
from collections import Counter
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from rta.core import dashboard_templates
from rta.core.embedded.store.block import NULL_DTYPES
from rta.core.embedded.store.snapshot import Snapshot
from rta.core.errors import (
    ConflictError,
    NotFoundError,
    RtaError,
    ValidationError,
    field_error,
)
from rta.core.queries.filters import parse_filter, parse_where
from rta.core.queries.timeparse import DAY, HOUR, MINUTE, now_ms, parse_duration, parse_time_range

if TYPE_CHECKING:
    from rta.core.engine import Engine

log = logging.getLogger("rta.dashboards")

KIND = "dashboard"
TEMPLATE_KIND = "dashboard_template"
COLUMNS = 12
MAX_ROWS = 200
MAX_WIDGET_HEIGHT = 24
MAX_WIDGETS = 60
DEFAULT_REFRESH_MS = 30_000
MIN_REFRESH_MS = 1_000
DEFAULT_TIME_RANGE = "last_24h"

WIDGET_TYPES = ("line-chart", "bar-chart", "pie-chart", "gauge", "counter", "table", "heatmap",
                "funnel")
SOURCE_TYPES = ("aggregation", "count", "unique_users", "top", "funnel", "retention")
AGGREGATIONS = ("count", "sum", "avg", "min", "max", "p50", "p90", "p95", "p99", "unique_users")
# Which data sources each widget type can draw.
COMPATIBLE: dict[str, tuple[str, ...]] = {
    "line-chart": ("aggregation", "count", "unique_users"),
    "bar-chart": ("aggregation", "count", "unique_users", "top", "funnel"),
    "pie-chart": ("count", "top"),
    "gauge": ("aggregation", "count", "unique_users"),
    "counter": ("aggregation", "count", "unique_users"),
    "table": SOURCE_TYPES,
    "heatmap": ("count", "unique_users", "aggregation", "retention"),
    "funnel": ("funnel",),
}
DEFAULT_SIZE = {"counter": (3, 2), "gauge": (3, 2), "line-chart": (6, 4), "bar-chart": (6, 4),
                "pie-chart": (4, 4), "table": (6, 4), "heatmap": (12, 4), "funnel": (6, 4)}
TEMPLATE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
# Candidate bucket widths for charts without an explicit interval: the first that gives at
# most ~120 points over the range wins.
AUTO_INTERVALS = (MINUTE, 5 * MINUTE, 15 * MINUTE, HOUR, 3 * HOUR, 6 * HOUR, 12 * HOUR, DAY,
                  7 * DAY)


# -- validation ---------------------------------------------------------------------------------


def _require_str(value: Any, path: str, required: bool = True) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise field_error(path, "must be a non-empty string", value=value)
    return value


def _int_in(value: Any, path: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
        raise field_error(path, f"must be an integer between {lo} and {hi}", value=value)
    if not lo <= int(value) <= hi:
        raise field_error(path, f"must be between {lo} and {hi}", value=value)
    return int(value)


def _event_types(value: Any, path: str) -> str | list[str] | None:
    if value is None:
        return None
    if isinstance(value, str) and value.strip():
        return value
    if isinstance(value, list) and value and all(isinstance(v, str) and v for v in value):
        return list(value)
    raise field_error(path, "must be an event type or a non-empty list of event types",
                      value=value)


HEATMAP_MEASURES = ("count", "sum", "avg", "min", "max", "unique_users")


def _check_times(src: dict[str, Any], path: str) -> None:
    """startTime / endTime / timeRange of a source, checked now rather than at every render
    (a range that cannot be read, or that ends before it starts), errors under `path`."""
    if src.get("startTime") is None and src.get("endTime") is None and \
            src.get("timeRange") is None:
        return
    parse_time_range(src.get("startTime"), src.get("endTime"), None, f"{path}.startTime",
                     f"{path}.endTime", time_range=src.get("timeRange"),
                     range_field=f"{path}.timeRange")


def normalise_source(spec: Any, path: str, wtype: str | None = None) -> dict[str, Any]:
    """A validated copy of a widget's data source, with defaults filled in (`wtype`: the
    widget showing it, for checks only some widgets need)."""
    if not isinstance(spec, dict):
        raise field_error(path, "must be an object with a `type`", allowed=list(SOURCE_TYPES))
    src = dict(spec)
    stype = src.get("type")
    if stype not in SOURCE_TYPES:
        raise field_error(f"{path}.type", f"must be one of {', '.join(SOURCE_TYPES)}",
                          value=stype, allowed=list(SOURCE_TYPES))
    if "eventType" in src:
        src["eventType"] = _event_types(src["eventType"], f"{path}.eventType")
    _check_times(src, path)
    filters = src.pop("where", None) if "filters" not in src else src.get("filters")
    if filters is not None:
        parse_where(filters, f"{path}.filters")
        src["filters"] = filters
    if src.get("interval") is not None:
        parse_duration(src["interval"], f"{path}.interval")
    if stype == "aggregation":
        agg = src.setdefault("aggregation", "count")
        if agg not in AGGREGATIONS:
            raise field_error(f"{path}.aggregation", f"must be one of {', '.join(AGGREGATIONS)}",
                              value=agg, allowed=list(AGGREGATIONS))
        if agg not in ("count", "unique_users"):
            _require_str(src.get("metric"), f"{path}.metric")
        else:
            _require_str(src.get("metric"), f"{path}.metric", required=False)
        _require_str(src.get("groupBy"), f"{path}.groupBy", required=False)
        if wtype == "heatmap" and agg not in HEATMAP_MEASURES:
            raise field_error(f"{path}.aggregation", "a heatmap shows "
                              f"{', '.join(HEATMAP_MEASURES)} per cell", value=agg,
                              allowed=list(HEATMAP_MEASURES))
    elif stype == "count":
        _require_str(src.get("groupBy"), f"{path}.groupBy", required=False)
    elif stype == "top":
        _require_str(src.get("property"), f"{path}.property")
        src["n"] = _int_in(src.get("n", 10), f"{path}.n", 1, 100)
    elif stype == "funnel":
        steps = src.get("steps")
        if not isinstance(steps, list) or not 2 <= len(steps) <= 20:
            raise field_error(f"{path}.steps", "must be a list of 2 to 20 steps",
                              count=len(steps) if isinstance(steps, list) else None)
        for j, step in enumerate(steps):
            spath = f"{path}.steps[{j}]"
            if not isinstance(step, dict):
                raise field_error(spath, "must be an object with an eventType")
            _require_str(step.get("eventType"), f"{spath}.eventType")
            _require_str(step.get("name"), f"{spath}.name", required=False)
            if step.get("filters") is not None:
                parse_where(step["filters"], f"{spath}.filters")
        if src.get("timeLimit") is not None:
            parse_duration(src["timeLimit"], f"{path}.timeLimit")
    elif stype == "retention":
        _require_str(src.get("entryEvent"), f"{path}.entryEvent")
        _require_str(src.get("retentionEvent"), f"{path}.retentionEvent")
        src["periods"] = _int_in(src.get("periods", 7), f"{path}.periods", 1, 90)
        src["periodLength"] = parse_duration(src.get("periodLength", DAY),
                                             f"{path}.periodLength")
    return src


def _position(spec: Any, path: str, wtype: str) -> dict[str, int] | None:
    """The checked {x, y, w, h}; only {w, h} when neither x nor y is given (a size, placed
    in the first free slot); None for no position at all (default size, placed)."""
    if spec is None:
        return None
    if not isinstance(spec, dict):
        raise field_error(path, "must be an object {x, y, w, h}")
    dw, dh = DEFAULT_SIZE[wtype]
    pos = {"x": spec.get("x", 0), "y": spec.get("y", 0), "w": spec.get("w", dw),
           "h": spec.get("h", dh)}
    for key in ("x", "y", "w", "h"):
        v = pos[key]
        if isinstance(v, bool) or not isinstance(v, int | float) or v != int(v):
            raise field_error(f"{path}.{key}", "must be an integer", value=v)
        pos[key] = int(v)
    if pos["w"] < 1 or pos["h"] < 1:
        raise field_error(f"{path}.{'w' if pos['w'] < 1 else 'h'}", "must be at least 1",
                          value=pos["w"] if pos["w"] < 1 else pos["h"])
    if pos["x"] < 0 or pos["y"] < 0:
        raise field_error(f"{path}.{'x' if pos['x'] < 0 else 'y'}", "must not be negative")
    if pos["x"] + pos["w"] > COLUMNS:
        raise field_error(f"{path}.w" if pos["x"] < COLUMNS else f"{path}.x",
                          f"the widget spans columns {pos['x']}..{pos['x'] + pos['w'] - 1}; "
                          f"the grid has {COLUMNS} columns (x + w must be <= {COLUMNS})",
                          x=pos["x"], w=pos["w"])
    if pos["h"] > MAX_WIDGET_HEIGHT:
        raise field_error(f"{path}.h", f"must be at most {MAX_WIDGET_HEIGHT} rows", value=pos["h"])
    if pos["y"] + pos["h"] > MAX_ROWS:
        raise field_error(f"{path}.y", f"the grid has at most {MAX_ROWS} rows", value=pos["y"])
    if "x" not in spec and "y" not in spec:
        return {"w": pos["w"], "h": pos["h"]}
    return pos


def _overlaps(a: dict[str, int], b: dict[str, int]) -> bool:
    return (a["x"] < b["x"] + b["w"] and b["x"] < a["x"] + a["w"]
            and a["y"] < b["y"] + b["h"] and b["y"] < a["y"] + a["h"])


def _place(pos_list: list[dict[str, int] | None], wtypes: list[str]) -> list[dict[str, int]]:
    """Give widgets without a position (or with only a size) the first free slot, scanning
    rows top-down."""
    placed = [p for p in pos_list if p is not None and "x" in p]
    out: list[dict[str, int]] = []
    for pos, wtype in zip(pos_list, wtypes, strict=True):
        if pos is None or "x" not in pos:
            w, h = DEFAULT_SIZE[wtype] if pos is None else (pos["w"], pos["h"])
            y = 0
            found = None
            while found is None:
                for x in range(0, COLUMNS - w + 1):
                    cand = {"x": x, "y": y, "w": w, "h": h}
                    if not any(_overlaps(cand, p) for p in placed):
                        found = cand
                        break
                y += 1
            placed.append(found)
            pos = found
        out.append(pos)
    return out


def validate_dashboard(body: Any, engine: Engine | None = None,
                       check_properties: bool = True) -> dict[str, Any]:
    """The normalised dashboard document, or a ValidationError naming widget and field.

    With an engine, property names in data sources are checked against the stored events
    (an event type with no events yet cannot be checked and is accepted).
    """
    if not isinstance(body, dict):
        raise ValidationError("dashboard must be a JSON object", [{"field": ""}])
    doc: dict[str, Any] = {k: v for k, v in body.items()
                           if k not in ("id", "createdAt", "updatedAt")}
    doc["name"] = _require_str(body.get("name"), "name")
    doc["name"] = doc["name"].strip()[:200]
    desc = body.get("description", "")
    if not isinstance(desc, str):
        raise field_error("description", "must be a string")
    doc["description"] = desc
    layout = body.get("layout") or {}
    if not isinstance(layout, dict):
        raise field_error("layout", "must be an object such as {\"type\": \"grid\", "
                          "\"columns\": 12, \"gap\": 16}")
    if layout.get("type", "grid") != "grid":
        raise field_error("layout.type", "must be 'grid'", value=layout.get("type"))
    if layout.get("columns", COLUMNS) != COLUMNS:
        raise field_error("layout.columns", f"the grid has {COLUMNS} columns",
                          value=layout.get("columns"))
    gap = layout.get("gap", 16)
    doc["layout"] = {**layout, "type": "grid", "columns": COLUMNS,
                     "gap": _int_in(gap, "layout.gap", 0, 64)}
    refresh = body.get("refreshInterval", DEFAULT_REFRESH_MS)
    refresh = parse_duration(refresh, "refreshInterval")
    if refresh < MIN_REFRESH_MS:
        raise field_error("refreshInterval", f"must be at least {MIN_REFRESH_MS} ms",
                          value=refresh)
    doc["refreshInterval"] = refresh
    time_range = body.get("timeRange", DEFAULT_TIME_RANGE)
    parse_time_range(None, None, None, time_range=time_range)
    doc["timeRange"] = time_range
    widgets = body.get("widgets", [])
    if not isinstance(widgets, list):
        raise field_error("widgets", "must be a list of widgets")
    if len(widgets) > MAX_WIDGETS:
        raise field_error("widgets", f"at most {MAX_WIDGETS} widgets", count=len(widgets))
    out: list[dict[str, Any]] = []
    positions: list[dict[str, int] | None] = []
    seen_ids: set[str] = set()
    # ids given explicitly: a widget without one gets the first free `w<n>` (from its
    # position on), so adding a widget after removing another never clashes
    given = {spec["id"] for spec in widgets if isinstance(spec, dict)
             and isinstance(spec.get("id"), str) and spec["id"]}
    for i, spec in enumerate(widgets):
        path = f"widgets[{i}]"
        if not isinstance(spec, dict):
            raise field_error(path, "must be an object", widget=i)
        wtype = spec.get("type")
        if wtype not in WIDGET_TYPES:
            raise _widget_error(path + ".type", f"unknown widget type {wtype!r}; must be one of "
                                f"{', '.join(WIDGET_TYPES)}", i, value=wtype,
                                allowed=list(WIDGET_TYPES))
        title = spec.get("title", "")
        if not isinstance(title, str):
            raise _widget_error(path + ".title", "must be a string", i)
        config = spec.get("config", {})
        if not isinstance(config, dict):
            raise _widget_error(path + ".config", "must be an object", i)
        try:
            source = normalise_source(spec.get("dataSource"), path + ".dataSource", wtype)
            positions.append(_position(spec.get("position"), path + ".position", wtype))
        except ValidationError as exc:
            raise _with_widget(exc, i) from None
        if source["type"] not in COMPATIBLE[wtype]:
            raise _widget_error(
                path + ".dataSource.type",
                f"a {wtype} cannot show a {source['type']} data source; use one of "
                f"{', '.join(COMPATIBLE[wtype])}", i, value=source["type"],
                allowed=list(COMPATIBLE[wtype]))
        wid = spec.get("id")
        if wid is None or wid == "":
            n = i + 1
            while f"w{n}" in given or f"w{n}" in seen_ids:
                n += 1
            wid = f"w{n}"
        if not isinstance(wid, str) or wid in seen_ids:
            raise _widget_error(path + ".id", "widget ids must be unique strings", i, value=wid)
        seen_ids.add(wid)
        out.append({**spec, "id": wid, "type": wtype, "title": title or wtype, "config": config,
                    "dataSource": source})
    placed = _place(positions, [w["type"] for w in out])
    for i, pos in enumerate(placed):
        for j in range(i):
            if _overlaps(pos, placed[j]):
                raise _widget_error(
                    f"widgets[{i}].position",
                    f"overlaps widget {j} ({out[j]['title']!r}) at x={placed[j]['x']}, "
                    f"y={placed[j]['y']}, w={placed[j]['w']}, h={placed[j]['h']}", i,
                    other=j)
        out[i]["position"] = pos
    doc["widgets"] = out
    if engine is not None and check_properties:
        check_source_properties(engine.snapshot(), out)
    return doc


def _widget_error(path: str, message: str, index: int, **extra: Any) -> ValidationError:
    return ValidationError(f"{path}: {message}",
                           [{"field": path, "message": message, "widget": index, **extra}])


def _with_widget(exc: ValidationError, index: int) -> ValidationError:
    for d in exc.details:
        d.setdefault("widget", index)
    return exc


def _source_properties(src: dict[str, Any]) -> list[tuple[str, str]]:
    """(field name, property key) pairs a data source reads."""
    out = []
    stype = src["type"]
    if stype == "aggregation" and src.get("metric"):
        out.append(("metric", src["metric"]))
    if stype in ("aggregation", "count") and src.get("groupBy") not in (None, "type",
                                                                        "eventType"):
        out.append(("groupBy", src["groupBy"]))
    if stype == "top":
        out.append(("property", src["property"]))
    return [(f, _strip_prefix(p)) for f, p in out]


def _strip_prefix(key: str) -> str:
    return key[len("properties."):] if key.startswith("properties.") else key


def check_source_properties(snap: Snapshot, widgets: list[dict[str, Any]]) -> None:
    """400 when a data source reads a property no stored event of its type carries."""
    for i, widget in enumerate(widgets):
        check_widget_properties(snap, widget, i)


def check_widget_properties(snap: Snapshot, widget: dict[str, Any], index: int,
                            missing_ok: bool = False) -> None:
    """400 for a property a widget cannot use. `missing_ok` (when rendering): a property no
    event carries yet is not an error, the widget shows no data (a template's widgets often
    read properties that only some deployments send)."""
    src = widget["dataSource"]
    etype = src.get("eventType")
    etype = etype if isinstance(etype, str) else None
    for fieldname, key in _source_properties(src):
        numeric = fieldname == "metric" and src.get("aggregation") not in ("count",
                                                                            "unique_users")
        kinds = property_kinds(snap, etype, key, numeric)
        if kinds is None:
            return  # no events of that type yet: nothing to check against
        path = f"widgets[{index}].dataSource.{fieldname}"
        where = f"{etype!r} events" if etype else "stored events"
        if not kinds:
            if missing_ok:
                continue
            known = sorted(known_properties(snap, etype) or {})
            listing = ", ".join(known[:30]) or "none"
            raise _widget_error(path, f"no {where} carry property {key!r}; known: {listing}",
                                index, value=key, known=known[:100])
        if numeric and not kinds & {"i", "f"}:
            raise _widget_error(path, f"property {key!r} of {where} is not numeric, so it "
                                f"cannot be aggregated with {src.get('aggregation')}", index,
                                value=key)


def property_kinds(snap: Snapshot, event_type: str | None, key: str,
                   numeric: bool = False) -> set[str] | None:
    """Value kinds of `key` seen on `event_type` events (any event if None): None when there
    are no such events, an empty set when none carries the key. Stops at the first block that
    settles the question, so the check costs about one column scan, not a table scan."""
    code = -1
    if event_type is not None:
        code = snap.dicts.types.lookup(event_type)
        if code < 0:
            return None
    found = False
    kinds: set[str] = set()
    for block in snap.blocks:
        if not block.n:
            continue
        if event_type is not None:
            counts = block.type_counts
            if code >= len(counts) or not counts[code]:
                continue
        found = True
        rows: np.ndarray | None = None
        for kind in block.property_keys.get(key, ()):
            if kind in kinds:
                continue
            if event_type is None:
                kinds.add(kind)
                continue
            if rows is None:
                rows = block.type == code
            col = block.props[kind + ":" + key][rows]
            present = ~np.isnan(col) if kind == "f" else col != NULL_DTYPES[kind][1]
            if bool(present.any()):
                kinds.add(kind)
        if kinds and (not numeric or kinds & {"i", "f"}):
            break
    return kinds if found else None


def known_properties(snap: Snapshot, event_type: str | None) -> dict[str, set[str]] | None:
    """Property key -> value kinds seen on `event_type` (or on any event); None when there
    are no such events yet, so nothing can be known."""
    keys: dict[str, set[str]] = {}
    found = False
    code = -1
    if event_type is not None:
        code = snap.dicts.types.lookup(event_type)
        if code < 0:
            return None
    for block in snap.blocks:
        if not block.n:
            continue
        if event_type is None:
            found = True
            for key, kinds in block.property_keys.items():
                keys.setdefault(key, set()).update(kinds)
            continue
        counts = block.type_counts
        if code >= len(counts) or not counts[code]:
            continue
        found = True
        # (sparse keys stay sparse: a pass over the values present, not keys x rows)
        rows = np.flatnonzero(block.type == code)
        for name in block.prop_columns.select(rows).names_with_values():
            keys.setdefault(name[2:], set()).add(name[0])
    return keys if found else None


# -- persistence --------------------------------------------------------------------------------


def create_dashboard(engine: Engine, body: Any) -> dict[str, Any]:
    doc = validate_dashboard(body, engine)
    return engine.metadata.create(KIND, doc)


def update_dashboard(engine: Engine, dashboard_id: str, body: Any) -> dict[str, Any]:
    current = engine.metadata.get(KIND, dashboard_id)
    # PUT with a partial body keeps the rest of the document.
    merged = {**current, **body} if isinstance(body, dict) else body
    doc = validate_dashboard(merged, engine)
    if current.get("template") and "template" not in doc:
        doc["template"] = current["template"]
    return engine.metadata.put(KIND, dashboard_id, doc)


def get_dashboard(engine: Engine, dashboard_id: str) -> dict[str, Any]:
    return engine.metadata.get(KIND, dashboard_id)


def list_dashboards(engine: Engine) -> list[dict[str, Any]]:
    return engine.metadata.list(KIND)


def delete_dashboard(engine: Engine, dashboard_id: str) -> None:
    engine.metadata.delete(KIND, dashboard_id)


def list_templates(engine: Engine) -> list[dict[str, Any]]:
    """Built-in and registered templates, summarised."""
    out = []
    for name, tpl in dashboard_templates.BUILTIN_TEMPLATES.items():
        out.append(_template_summary(name, tpl, builtin=True))
    for doc in engine.metadata.list(TEMPLATE_KIND):
        out.append(_template_summary(doc["id"], doc, builtin=False))
    return out


def _template_summary(name: str, tpl: dict[str, Any], builtin: bool) -> dict[str, Any]:
    return {"name": name, "title": tpl.get("name", name),
            "description": tpl.get("description", ""), "builtin": builtin,
            "widgets": len(tpl.get("widgets", [])),
            "widgetTypes": sorted({w.get("type") for w in tpl.get("widgets", [])}),
            "timeRange": tpl.get("timeRange", DEFAULT_TIME_RANGE),
            "refreshInterval": tpl.get("refreshInterval", DEFAULT_REFRESH_MS)}


def get_template(engine: Engine, name: Any) -> dict[str, Any]:
    if not isinstance(name, str) or not name:
        raise field_error("template", "must be a template name", allowed=_template_names(engine))
    tpl = dashboard_templates.builtin(name)
    if tpl is not None:
        return tpl
    try:
        doc = engine.metadata.get(TEMPLATE_KIND, name)
    except NotFoundError:
        names = _template_names(engine)
        raise field_error("template", f"unknown template {name!r}; available: "
                          f"{', '.join(names)}", value=name, allowed=names) from None
    return {k: v for k, v in doc.items() if k not in ("id", "createdAt", "updatedAt")}


def _template_names(engine: Engine) -> list[str]:
    return [*dashboard_templates.BUILTIN_TEMPLATES,
            *(d["id"] for d in engine.metadata.list(TEMPLATE_KIND))]


def register_template(engine: Engine, body: Any) -> dict[str, Any]:
    """Persist a custom template: a dashboard body plus a `template` (or `id`) name."""
    if not isinstance(body, dict):
        raise ValidationError("template must be a JSON object", [{"field": ""}])
    name = body.get("template") or body.get("id") or body.get("name")
    if not isinstance(name, str) or not TEMPLATE_NAME.match(name):
        raise field_error("template", "must be a name of letters, digits, '_', '-' or '.' "
                          "(at most 64)", value=name)
    if name in dashboard_templates.BUILTIN_TEMPLATES:
        raise field_error("template", f"{name!r} is a built-in template", value=name)
    if name in _template_names(engine):
        raise ConflictError(f"template {name!r} exists: delete it first "
                            f"(DELETE /dashboards/templates/{name}) or choose another name",
                            [{"field": "template", "value": name}])
    doc = validate_dashboard({**body, "name": body.get("name") or name}, engine,
                             check_properties=False)
    doc.pop("template", None)
    return {**engine.metadata.create(TEMPLATE_KIND, doc, doc_id=name), "template": name}


def delete_template(engine: Engine, name: str) -> None:
    if name in dashboard_templates.BUILTIN_TEMPLATES:
        raise field_error("template", "built-in templates cannot be deleted", value=name)
    engine.metadata.delete(TEMPLATE_KIND, name)


def create_from_template(engine: Engine, body: Any) -> dict[str, Any]:
    """`{"template": "overview", "name"?: ..., "timeRange"?: ..., "refreshInterval"?: ...}`."""
    if not isinstance(body, dict):
        raise ValidationError("body must be a JSON object", [{"field": ""}])
    tpl = get_template(engine, body.get("template"))
    doc = copy.deepcopy(tpl)
    for key in ("name", "description", "timeRange", "refreshInterval"):
        if body.get(key) is not None:
            doc[key] = body[key]
    doc["template"] = body["template"]
    doc = validate_dashboard(doc, engine, check_properties=False)
    return engine.metadata.create(KIND, doc)


# -- resolving data -----------------------------------------------------------------------------


@dataclass
class Window:
    start: int
    end: int  # exclusive
    now: int
    time_range: str | None


def _window(src: dict[str, Any], dashboard: dict[str, Any], override: str | None,
            now: int) -> Window:
    """The widget's time window: the picker's override, else its own, else the dashboard's."""
    rng = override or src.get("timeRange") or dashboard.get("timeRange") or DEFAULT_TIME_RANGE
    if src.get("startTime") is not None and override is None:
        lo, hi = parse_time_range(src.get("startTime"), src.get("endTime"), now)
        return Window(lo if lo is not None else 0, hi if hi is not None else now + 1, now, None)
    lo, hi = parse_time_range(None, None, now, time_range=rng)
    assert lo is not None and hi is not None
    return Window(lo, hi, now, rng)


def auto_interval(span_ms: int, target: int = 120) -> int:
    for step in AUTO_INTERVALS:
        if span_ms / step <= target:
            return step
    return AUTO_INTERVALS[-1]


def resolve_dashboard(engine: Engine | PinnedEngine, dashboard: dict[str, Any],
                      time_range: str | None = None, tz_offset_min: int = 0,
                      now: int | None = None) -> dict[str, Any]:
    """Every widget's data in one response; a failing widget carries its own `error`.

    All widgets read one snapshot. Pure reads with no result cache: with a `PinnedEngine`
    made on the event-loop thread, this may run in a worker thread.
    """
    if time_range is not None:
        parse_time_range(None, None, None, time_range=time_range)
    current = now_ms() if now is None else now
    t0 = time.perf_counter()
    pinned: Any = engine if isinstance(engine, PinnedEngine) else PinnedEngine(engine)
    widgets = []
    for i, widget in enumerate(dashboard.get("widgets", [])):
        widgets.append(resolve_widget(pinned, dashboard, widget, i, time_range, tz_offset_min,
                                      current))
    return {"dashboardId": dashboard.get("id"), "name": dashboard.get("name"),
            "updatedAt": dashboard.get("updatedAt"), "generatedAt": current,
            "timeRange": time_range or dashboard.get("timeRange"),
            "refreshInterval": dashboard.get("refreshInterval", DEFAULT_REFRESH_MS),
            "tookMs": round((time.perf_counter() - t0) * 1000, 2), "widgets": widgets}


def resolve_widget(engine: Engine, dashboard: dict[str, Any], widget: dict[str, Any], index: int,
                   time_range: str | None = None, tz_offset_min: int = 0,
                   now: int | None = None) -> dict[str, Any]:
    current = now_ms() if now is None else now
    out: dict[str, Any] = {"id": widget.get("id", f"w{index + 1}"), "index": index,
                           "type": widget.get("type"), "title": widget.get("title"),
                           "data": None, "error": None}
    t0 = time.perf_counter()
    try:
        src = widget["dataSource"]
        win = _window(src, dashboard, time_range, current)
        out["window"] = {"start": win.start, "end": win.end, "timeRange": win.time_range}
        out["data"] = _widget_view(engine, widget, index, src, win, tz_offset_min)
    except RtaError as exc:
        out["error"] = exc.to_dict()["error"]
    except Exception as exc:  # one broken widget must not take the dashboard down
        log.exception("dashboard widget %s failed", out["id"])
        out["error"] = {"code": "internal_error", "message": f"widget failed: {exc}",
                        "details": [{"type": type(exc).__name__}]}
    out["tookMs"] = round((time.perf_counter() - t0) * 1000, 2)
    return out


def _widget_view(engine: Engine, widget: dict[str, Any], index: int, src: dict[str, Any],
                 win: Window, tz_offset_min: int) -> dict[str, Any]:
    wtype = widget["type"]
    stype = src["type"]
    check_widget_properties(engine.snapshot(), widget, index, missing_ok=True)
    if wtype == "heatmap":
        if stype == "retention":
            return _retention_view(_run_retention(engine, src, win), as_heatmap=True)
        return heatmap_view(engine, src, win, tz_offset_min)
    if wtype in ("counter", "gauge"):
        return {"kind": "value", "value": _scalar(engine, src, win)}
    if wtype == "funnel" or stype == "funnel":
        view = _funnel_view(_run_funnel(engine, src, win))
        if wtype == "table":
            return _table_from_funnel(view)
        if wtype == "bar-chart":
            return {"kind": "categories", "labels": [s["name"] for s in view["steps"]],
                    "values": [s["count"] for s in view["steps"]]}
        return view
    if stype == "retention":
        return _retention_view(_run_retention(engine, src, win), as_heatmap=False)
    if wtype == "line-chart" or (wtype == "bar-chart" and stype in ("aggregation",
                                                                    "unique_users")):
        return _series(engine, src, win, tz_offset_min)
    if wtype == "table" and stype in ("aggregation", "unique_users"):
        return _table_from_series(_series(engine, src, win, tz_offset_min))
    # categories: pie, bar (count/top), table (count/top)
    view = _categories(engine, src, win)
    return _table_from_categories(view, src) if wtype == "table" else view


# -- adapters onto the query engines ------------------------------------------------------------


def _engine_module(name: str, what: str) -> Any:
    """The query module, imported late so dashboards load even in a partial build."""
    try:
        return importlib.import_module(name)
    except ImportError:  # pragma: no cover - both modules ship with the package
        raise RtaError(f"{what} queries are not available in this build",
                       code="not_available") from None


def _analytics(kind: str, engine: Engine, params: dict[str, Any]) -> dict[str, Any]:
    """An analytics query computed directly (no result cache): the cache belongs to the
    event-loop thread, and dashboards resolve in a worker thread over a pinned snapshot."""
    module = _engine_module("rta.core.queries.analytics", "analytics")
    result: dict[str, Any] = module.prepare(kind, engine, params).compute()
    return result


def _behaviour() -> Any:
    return _engine_module("rta.core.queries.behaviour", "behavioural")


class PinnedEngine:
    """The engine seen through one snapshot, so every widget of a dashboard reads the same
    data and a worker thread never asks the live store for a snapshot while ingest runs."""

    def __init__(self, engine: Engine, snap: Snapshot | None = None) -> None:
        self._engine = engine
        self._snap = snap if snap is not None else engine.snapshot()

    def snapshot(self) -> Snapshot:
        return self._snap

    def __getattr__(self, name: str) -> Any:
        return getattr(self._engine, name)


def _common(src: dict[str, Any], win: Window) -> dict[str, Any]:
    body: dict[str, Any] = {"startTime": win.start, "endTime": win.end - 1}
    if src.get("eventType") is not None:
        body["eventType"] = src["eventType"]
    if src.get("filters") is not None:
        body["where"] = src["filters"]
    if src.get("segment") is not None:
        body["segment"] = src["segment"]
    return body


def _params(src: dict[str, Any], win: Window) -> dict[str, Any]:
    """Query-string style parameters for the GET-shaped analytics calls."""
    params = _common(src, win)
    if "eventType" in params:
        etype = params.pop("eventType")
        params["type"] = etype if isinstance(etype, str) else ",".join(etype)
    return params


def _interval(src: dict[str, Any], win: Window) -> int:
    if src.get("interval") is not None:
        return parse_duration(src["interval"], "interval")
    return auto_interval(win.end - win.start)


def _scalar(engine: Engine, src: dict[str, Any], win: Window) -> float | None:
    stype = src["type"]
    if stype == "count":
        res = _analytics("count", engine, _params(src, win))
        return _num(_pick(res, "count", "total", "value"))
    if stype == "unique_users":
        res = _analytics("unique-users", engine, _params(src, win))
        return _num(_pick(res, "uniqueUsers", "count", "total", "value"))
    return exact_aggregate(engine, src, win)


def exact_aggregate(engine: Engine, src: dict[str, Any], win: Window) -> float | None:
    """One aggregation over exactly [start, end): a single bucket of the time-series kernel.

    The analytics API widens ranges to epoch-aligned buckets (right for charts); a counter
    saying "revenue, last 24h" must cover exactly the last 24 hours.
    """
    ts_mod = _engine_module("rta.core.embedded.timeseries", "analytics")
    agg = src.get("aggregation", "count")
    metric = _strip_prefix(src["metric"]) if src.get("metric") else None
    flt = _event_filter(engine, src, win)
    snap = engine.snapshot()
    buckets = ts_mod.Buckets(win.start, max(1, win.end - win.start), 1)
    res = ts_mod.timeseries(flt, snap, buckets, agg, metric)
    value = float(res.total_value)
    if value != value or value in (float("inf"), float("-inf")):
        return 0.0 if agg in ("count", "sum", "unique_users") else None
    return value


def _event_filter(engine: Engine, src: dict[str, Any], win: Window) -> Any:
    spec: dict[str, Any] = {"startTime": win.start, "endTime": win.end - 1}
    for key in ("eventType", "segment"):
        if src.get(key) is not None:
            spec[key] = src[key]
    if src.get("filters") is not None:
        spec["where"] = src["filters"]
    return parse_filter(spec, "dataSource", win.now,
                        segments=engine.extensions.get("segment_resolver"))


def _series(engine: Engine, src: dict[str, Any], win: Window,
            tz_offset_min: int = 0) -> dict[str, Any]:
    """A chart's series: buckets follow the viewer's time zone (daily ones start at local
    midnight), and a rolling window starts at a bucket boundary, so the first bucket of
    "last 7 days by day" is a whole day, not the sliver of one that a window starting now
    minus 7 days would cut."""
    interval = _interval(src, win)
    offset = int(tz_offset_min) * MINUTE
    if interval >= HOUR and win.time_range not in ("today", "yesterday"):
        win = replace(win, start=win.start - (win.start + offset) % interval)
    zone = {"tzOffset": int(tz_offset_min)}
    if src["type"] == "unique_users":
        res = _analytics("unique-users", engine, {**_params(src, win), "interval": interval,
                                                  **zone})
        name = "unique users"
    else:
        agg = src.get("aggregation", "count") if src["type"] == "aggregation" else "count"
        body = {**_common(src, win), "aggregation": agg, "interval": interval, **zone}
        if src.get("metric"):
            body["metric"] = src["metric"]
        if src.get("groupBy"):
            body["groupBy"] = src["groupBy"]
            body["limit"] = src.get("limit", 8)
        res = _analytics("aggregate", engine, body)
        name = agg if not src.get("metric") else f"{agg}({src['metric']})"
    return _series_view(res, name, interval)


def _categories(engine: Engine, src: dict[str, Any], win: Window) -> dict[str, Any]:
    if src["type"] == "top":
        params = {**_params(src, win), "property": src["property"], "n": src.get("n", 10)}
        res = _analytics("top", engine, params)
        rows = _pick(res, "values", "top", "results", "items") or []
        keys, values, extra = [], [], []
        for r in rows:
            keys.append(_pick(r, "value", "key", "name"))
            values.append(_num(_pick(r, "count", "total")) or 0)
            extra.append({k: r[k] for k in ("uniqueUsers", "share", "percentage") if k in r})
        return {"kind": "categories", "labels": _labels(keys), "values": values,
                "extra": extra, "total": _num(_pick(res, "total"))}
    params = _params(src, win)
    if src.get("groupBy"):
        params["groupBy"] = src["groupBy"]
    if src["type"] == "unique_users":
        res = _analytics("unique-users", engine, params)
        return {"kind": "categories", "labels": ["users"],
                "values": [_num(_pick(res, "uniqueUsers", "count", "total")) or 0]}
    res = _analytics("count", engine, params)
    groups = _pick(res, "groups", "counts", "byGroup", "values")
    if isinstance(groups, dict):
        items = list(groups.items())
    elif isinstance(groups, list):
        items = [(_pick(g, "value", "key", "group", "type", "name"), _pick(g, "count", "total"))
                 for g in groups]
    else:
        items = [("total", _pick(res, "total", "count"))]
    items.sort(key=lambda kv: -(_num(kv[1]) or 0))
    labels = _labels([k for k, _ in items])
    values = [_num(v) or 0 for _, v in items]
    return {"kind": "categories", "labels": labels, "values": values,
            "total": _num(_pick(res, "total", "count"))}


def _run_funnel(engine: Engine, src: dict[str, Any], win: Window) -> dict[str, Any]:
    body: dict[str, Any] = {"steps": src["steps"], "startTime": win.start,
                            "endTime": win.end - 1}
    for key in ("timeLimit", "order", "countBy"):
        if src.get(key) is not None:
            body[key] = src[key]
    snap = engine.snapshot()
    funnel = _engine_module("rta.core.embedded.funnel", "behavioural")
    query = funnel.parse(body, win.now, engine, snap)  # segments resolve over all the data
    res: dict[str, Any] = funnel.answer(snap, query)  # answer() prunes to the window itself
    return res


def _run_retention(engine: Engine, src: dict[str, Any], win: Window) -> dict[str, Any]:
    body: dict[str, Any] = {"entryEvent": src["entryEvent"],
                            "retentionEvent": src["retentionEvent"],
                            "periods": src.get("periods", 7),
                            "periodLength": src.get("periodLength", DAY),
                            "startTime": win.start, "endTime": win.end - 1}
    for key in ("retentionType", "criterion"):
        if src.get(key) is not None:
            body[key] = src[key]
    res: dict[str, Any] = _behaviour().run_cohort(engine, body, win.now, engine.snapshot())
    return res


# -- reshaping engine answers into views --------------------------------------------------------


def _pick(obj: Any, *keys: str) -> Any:
    if not isinstance(obj, dict):
        return None
    for key in keys:
        if key in obj:
            return obj[key]
    return None


def _num(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if f == f else None


def _label(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"  # (as the value is written in JSON)
    return "(none)" if value is None else str(value)


def _labels(keys: list[Any]) -> list[str]:
    """Category labels, distinct: a text value that reads like another value of the same key
    (200 and "200", true and "true") is shown quoted, so no two slices share a label."""
    plain = [_label(k) for k in keys]
    seen = Counter(plain)
    return [f'"{k}"' if isinstance(k, str) and seen[p] > 1 else p
            for k, p in zip(keys, plain, strict=True)]


def _buckets(res: Any) -> list[dict[str, Any]]:
    pts = _pick(res, "buckets", "data", "points", "timeseries", "series")
    return pts if isinstance(pts, list) and (not pts or isinstance(pts[0], dict)) else []


def _series_view(res: Any, name: str, interval: int) -> dict[str, Any]:
    """Time series in either shape: one list of buckets, or several named series."""
    series_list = _pick(res, "series", "groups")
    timestamps: list[int] = []
    out_series: list[dict[str, Any]] = []
    if isinstance(series_list, list) and series_list and isinstance(series_list[0], dict) \
            and any(k in series_list[0] for k in ("buckets", "data", "points", "values")):
        names = _labels([_pick(s, "name", "group", "value", "key") for s in series_list])
        for s, series_name in zip(series_list, names, strict=True):
            pts = _pick(s, "buckets", "data", "points", "values") or []
            if not timestamps:
                timestamps = [int(_pick(p, "timestamp", "start", "t", "time") or 0) for p in pts]
            out_series.append({"name": series_name,
                               "values": [_num(_pick(p, "value", "count")) for p in pts]})
    else:
        pts = _buckets(res)
        timestamps = [int(_pick(p, "timestamp", "start", "t", "time") or 0) for p in pts]
        out_series.append({"name": name,
                           "values": [_num(_pick(p, "value", "count", "uniqueUsers"))
                                      for p in pts]})
    return {"kind": "series", "interval": interval, "timestamps": timestamps,
            "series": out_series}


def _funnel_view(res: dict[str, Any]) -> dict[str, Any]:
    steps = []
    for s in res.get("steps", []):
        steps.append({"name": s.get("name"), "count": s.get("count", 0),
                      "conversionRate": s.get("conversionRate"),
                      "dropoffRate": s.get("dropoffRate")})
    return {"kind": "funnel", "steps": steps, "totalEntered": res.get("totalEntered"),
            "totalCompleted": res.get("totalCompleted"),
            "overallConversionRate": res.get("overallConversionRate")}


def _retention_view(res: dict[str, Any], as_heatmap: bool) -> dict[str, Any]:
    cohorts = _pick(res, "cohorts", "rows") or []
    periods = 0
    rows_pct: list[list[float | None]] = []
    labels: list[str] = []
    sizes: list[float] = []
    for c in cohorts:
        pct = _pick(c, "percentages", "retention", "rates") or []
        counts = _pick(c, "counts", "retained") or []
        size = _num(_pick(c, "size", "users", "count")) or 0
        if not pct and counts and size:
            pct = [100.0 * (_num(v) or 0) / size for v in counts]
        periods = max(periods, len(pct))
        rows_pct.append([_num(v) for v in pct])
        start = _pick(c, "startTime", "cohortStart", "date", "cohort", "name")
        labels.append(_date_label(start))
        sizes.append(size)
    x_labels = [f"P{p}" for p in range(periods)]
    if as_heatmap:
        return {"kind": "heatmap", "xLabels": x_labels, "yLabels": labels, "values": rows_pct,
                "unit": "%", "rowTotals": sizes}
    columns = ["Cohort", "Users", *x_labels]
    rows = [[lab, size, *[None if v is None else round(v, 1) for v in vals]]
            for lab, size, vals in zip(labels, sizes, rows_pct, strict=True)]
    return {"kind": "table", "columns": columns, "rows": rows}


def _date_label(value: Any) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 10**11:
        return time.strftime("%Y-%m-%d", time.gmtime(value / 1000))
    return _label(value)


def _table_from_categories(view: dict[str, Any], src: dict[str, Any]) -> dict[str, Any]:
    key = src.get("property") or src.get("groupBy") or "value"
    total = view.get("total") or sum(v for v in view["values"] if v) or 0
    rows = []
    for label, value in zip(view["labels"], view["values"], strict=True):
        share = round(100.0 * value / total, 1) if total else None
        rows.append([label, value, share])
    return {"kind": "table", "columns": [str(key), "Count", "Share %"], "rows": rows}


def _table_from_series(view: dict[str, Any]) -> dict[str, Any]:
    names = [s["name"] for s in view["series"]]
    rows = []
    for i, ts in enumerate(view["timestamps"]):
        rows.append([ts, *[s["values"][i] for s in view["series"]]])
    return {"kind": "table", "columns": ["Time", *names], "rows": rows, "timeColumn": 0}


def _table_from_funnel(view: dict[str, Any]) -> dict[str, Any]:
    rows = [[s["name"], s["count"], s["conversionRate"], s["dropoffRate"]]
            for s in view["steps"]]
    return {"kind": "table", "columns": ["Step", "Users", "Conversion %", "Drop-off %"],
            "rows": rows}


# -- heatmap: events by weekday x hour of day (vectorised) -------------------------------------


def _hour_cell_counts(ts: np.ndarray, offset: int) -> np.ndarray:
    """Events per heatmap cell for time-sorted `ts`: binary search on the local hour
    boundaries instead of bucketing every event (a day of events spans ~25 hours)."""
    first = (int(ts[0]) + offset) // HOUR
    last = (int(ts[-1]) + offset) // HOUR
    hours = np.arange(first, last + 2, dtype=np.int64)  # local hour indexes, one past the end
    edges = np.searchsorted(ts, hours * HOUR - offset, "left")
    per_hour = np.diff(edges).astype(np.float64)
    h = hours[:-1]
    cell = ((h // 24 + 3) % 7) * 24 + h % 24  # 1970-01-01 was a Thursday (Mon = 0)
    return np.bincount(cell, weights=per_hour, minlength=168)


def heatmap_view(engine: Engine, src: dict[str, Any], win: Window,
                 tz_offset_min: int = 0) -> dict[str, Any]:
    """7 x 24 matrix (Mon..Sun x 00..23, local to `tz_offset_min`) of the source's measure.

    count: events per cell; unique_users: distinct users per cell; aggregation: the metric's
    sum/avg/min/max (or count) per cell. One pass of numpy per block, no per-event Python.
    """
    flt = _event_filter(engine, src, win)
    measure = "count"
    metric = None
    if src["type"] == "unique_users":
        measure = "unique_users"
    elif src["type"] == "aggregation":
        measure = src.get("aggregation", "count")
        metric = _strip_prefix(src["metric"]) if src.get("metric") else None
        if measure not in HEATMAP_MEASURES:  # (refused when the widget is saved)
            raise field_error("dataSource.aggregation", "a heatmap shows "
                              f"{', '.join(HEATMAP_MEASURES)} per cell", value=measure)
    snap = engine.snapshot()
    offset = int(tz_offset_min) * MINUTE
    counts = np.zeros(168, dtype=np.float64)
    sums = np.zeros(168, dtype=np.float64)
    mins = np.full(168, np.inf)
    maxs = np.full(168, -np.inf)
    pairs: list[np.ndarray] = []
    for block, sl, mask in flt.select(snap):
        ts = block.ts[sl]
        if mask is None and metric is None and measure != "unique_users" and len(ts):
            counts += _hour_cell_counts(ts, offset)
            continue
        if mask is not None:
            ts = ts[mask]
        local = ts + offset
        days = np.floor_divide(local, DAY)
        hour = np.floor_divide(local - days * DAY, HOUR)
        cell = ((days + 3) % 7) * 24 + hour  # 1970-01-01 was a Thursday (Mon = 0)
        if measure == "unique_users":
            users = block.user[sl] if mask is None else block.user[sl][mask]
            ok = users >= 0
            pairs.append(cell[ok] * (1 << 32) + users[ok].astype(np.int64))
            continue
        if metric is None:
            counts += np.bincount(cell, minlength=168)
            continue
        vals = block.numeric(metric)[sl]
        if mask is not None:
            vals = vals[mask]
        ok = ~np.isnan(vals)
        c, v = cell[ok], vals[ok]
        counts += np.bincount(c, minlength=168)
        sums += np.bincount(c, weights=v, minlength=168)
        if measure in ("min", "max") and len(c):
            np.minimum.at(mins, c, v)
            np.maximum.at(maxs, c, v)
    values: np.ndarray
    if measure == "unique_users":
        uniq = np.unique(np.concatenate(pairs)) if pairs else np.zeros(0, np.int64)
        values = np.bincount(uniq >> 32, minlength=168).astype(np.float64)
    elif measure == "sum":
        values = sums
    elif measure == "avg":
        with np.errstate(invalid="ignore", divide="ignore"):
            values = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    elif measure == "min":
        values = np.where(np.isfinite(mins), mins, np.nan)
    elif measure == "max":
        values = np.where(np.isfinite(maxs), maxs, np.nan)
    else:
        values = counts
    grid = values.reshape(7, 24)
    rows = [[None if v != v else (int(v) if float(v).is_integer() else round(float(v), 3))
             for v in row] for row in grid.tolist()]
    finite = values[~np.isnan(values)]
    return {"kind": "heatmap", "xLabels": [f"{h:02d}" for h in range(24)],
            "yLabels": list(WEEKDAYS), "values": rows,
            "max": float(finite.max()) if len(finite) else 0.0,
            "total": float(finite.sum()) if measure in ("count", "sum") else None,
            "measure": measure, "tzOffsetMinutes": int(tz_offset_min)}
