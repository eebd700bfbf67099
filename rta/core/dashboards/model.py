"""Dashboard model and validation: the grid, widget and data-source rules, and the checks of
the properties a data source reads against the stored events.

Structural validation is strict and names the widget index and field
(`widgets[2].dataSource.metric`), so a malformed dashboard is refused at the door. What the
stored data says about the properties a widget reads is a warning (`property_warnings`),
never a refusal: saving must not depend on which data happens to exist. Pure functions over
a body (and, for the property checks, a query backend): no persistence, no queries.

Thread rule: pure validation; any thread (property checks ask one backend view: a worker).
"""

from __future__ import annotations

from typing import Any

from rta.core.errors import ValidationError, field_error
from rta.core.queries.backend import Backend
from rta.core.queries.filters import parse_where
from rta.core.queries.timeparse import DAY, parse_duration, parse_time_range
from rta.core.queries.web_specs import DIMENSIONS as WEB_DIMENSIONS

COLUMNS = 12
MAX_ROWS = 200
MAX_WIDGET_HEIGHT = 24
MAX_WIDGETS = 60
DEFAULT_REFRESH_MS = 30_000
MIN_REFRESH_MS = 1_000
DEFAULT_TIME_RANGE = "last_24h"

WIDGET_TYPES = ("line-chart", "bar-chart", "pie-chart", "gauge", "counter", "table", "heatmap",
                "funnel", "sankey")
SOURCE_TYPES = ("aggregation", "count", "unique_users", "top", "funnel", "retention", "paths",
                "web", "web_breakdown")
# `web`: one headline figure of the web analytics (with the previous period's), or visitors
# now; `web_breakdown`: one web dimension's top values (docs/web.md)
WEB_MEASURES = ("visitors", "visits", "pageviews", "views_per_visit", "bounce_rate",
                "visit_duration", "realtime")
AGGREGATIONS = ("count", "sum", "avg", "min", "max", "p50", "p90", "p95", "p99", "unique_users")
# Which data sources each widget type can draw.
COMPATIBLE: dict[str, tuple[str, ...]] = {
    "line-chart": ("aggregation", "count", "unique_users"),
    "bar-chart": ("aggregation", "count", "unique_users", "top", "funnel", "web_breakdown"),
    "pie-chart": ("count", "top", "web_breakdown"),
    "gauge": ("aggregation", "count", "unique_users"),
    "counter": ("aggregation", "count", "unique_users", "web"),
    "table": tuple(s for s in SOURCE_TYPES if s != "paths"),
    "heatmap": ("count", "unique_users", "aggregation", "retention"),
    "funnel": ("funnel",),
    "sankey": ("paths",),  # rta/core/dashboards/paths_widget.py
}
DEFAULT_SIZE = {"counter": (3, 2), "gauge": (3, 2), "line-chart": (6, 4), "bar-chart": (6, 4),
                "pie-chart": (4, 4), "table": (6, 4), "heatmap": (12, 4), "funnel": (6, 4),
                "sankey": (12, 5)}


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


COMPARE_MODES = ("previous_period",)
COMPARE_SOURCES = ("aggregation", "count", "unique_users")


def normalise_source(spec: Any, path: str, wtype: str | None = None) -> dict[str, Any]:
    """A validated copy of a widget's data source, with defaults filled in (`wtype`: the
    widget showing it, for checks only some widgets need). `compare: "previous_period"`
    (counters only) is checked here and kept beside the rest."""
    if not isinstance(spec, dict) or "compare" not in spec:
        return _normalise_source(spec, path, wtype)
    mode = spec["compare"]
    if mode in (None, False, "none", ""):
        return _normalise_source({k: v for k, v in spec.items() if k != "compare"}, path, wtype)
    if mode not in COMPARE_MODES:
        raise field_error(f"{path}.compare", "must be previous_period (or null)", value=mode,
                          allowed=list(COMPARE_MODES))
    if wtype not in (None, "counter"):
        raise field_error(f"{path}.compare", "the previous period's change is shown by "
                          "counter widgets", value=wtype)
    src = _normalise_source({k: v for k, v in spec.items() if k != "compare"}, path, wtype)
    if src["type"] not in COMPARE_SOURCES:
        raise field_error(f"{path}.compare", "is available for "
                          + ", ".join(COMPARE_SOURCES) + " sources", value=src["type"])
    return {**src, "compare": mode}


def _normalise_source(spec: Any, path: str, wtype: str | None = None) -> dict[str, Any]:
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
    if stype == "aggregation" and "series" in src:  # named series and a formula
        from rta.core.dashboards import formula_source

        return formula_source.check(src, path, wtype)
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
    elif stype == "paths":
        from rta.core.dashboards import paths_widget
        paths_widget.normalise(src, path)
    elif stype in ("web", "web_breakdown"):
        _web_source(src, path)
    elif stype == "retention":
        _require_str(src.get("entryEvent"), f"{path}.entryEvent")
        _require_str(src.get("retentionEvent"), f"{path}.retentionEvent")
        src["periods"] = _int_in(src.get("periods", 7), f"{path}.periods", 1, 90)
        src["periodLength"] = parse_duration(src.get("periodLength", DAY),
                                             f"{path}.periodLength")
    return src


def _web_source(src: dict[str, Any], path: str) -> None:
    """`web` {measure, bots} or `web_breakdown` {dimension, n, bots}, defaults filled in."""
    if src["type"] == "web":
        measure = src.setdefault("measure", "visitors")
        if measure not in WEB_MEASURES:
            raise field_error(f"{path}.measure", f"must be one of {', '.join(WEB_MEASURES)}",
                              value=measure, allowed=list(WEB_MEASURES))
    else:
        dimension = src.get("dimension")
        if dimension not in WEB_DIMENSIONS:
            raise field_error(f"{path}.dimension",
                              f"must be one of {', '.join(WEB_DIMENSIONS)}", value=dimension,
                              allowed=list(WEB_DIMENSIONS))
        src["n"] = _int_in(src.get("n", 10), f"{path}.n", 1, 100)
    if not isinstance(src.get("bots", False), bool):
        raise field_error(f"{path}.bots", "must be true or false", value=src.get("bots"))


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


def validate_dashboard(body: Any) -> dict[str, Any]:
    """The normalised dashboard document, or a ValidationError naming widget and field.

    Structural checks only: saving never depends on what data exists. What the stored events
    say about the widgets' properties is `check_source_properties` (strict) or
    `widget_warnings` (what saving reports).
    """
    if not isinstance(body, dict):
        raise ValidationError("dashboard must be a JSON object", [{"field": ""}])
    doc: dict[str, Any] = {k: v for k, v in body.items()
                           if k not in ("id", "createdAt", "updatedAt", "warnings")}
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


def check_source_properties(backend: Backend, widgets: list[dict[str, Any]]) -> None:
    """Strict mode: 400 for the first data source reading a property no stored event of its
    type carries (or a non-numeric one it aggregates). Saving uses `property_warnings`."""
    for i, widget in enumerate(widgets):
        check_widget_properties(backend, widget, i)


def property_warnings(backend: Backend, widgets: list[dict[str, Any]]) -> list[dict[str, str]]:
    """What the stored data says about the properties the widgets read, as `{field,
    message}` warnings: saving never depends on what data happens to exist."""
    return [{"field": w["field"], "message": w["message"]}
            for i, widget in enumerate(widgets) for w in _property_notes(backend, widget, i)]


def widget_warnings(backend: Backend, widget: dict[str, Any], index: int) -> list[dict[str, str]]:
    """One widget's property warnings (why it shows no data), `{field, message}`."""
    return [{"field": w["field"], "message": w["message"]}
            for w in _property_notes(backend, widget, index)]


def check_widget_properties(backend: Backend, widget: dict[str, Any], index: int,
                            missing_ok: bool = False) -> None:
    """400 for a property a widget cannot use. `missing_ok` (when rendering): a property no
    event carries yet is not an error, the widget shows no data (a template's widgets often
    read properties that only some deployments send)."""
    for note in _property_notes(backend, widget, index):
        if missing_ok and note["missing"]:
            continue
        extra = {"known": note["known"]} if note["missing"] else {}
        raise _widget_error(note["field"], note["message"], index, value=note["value"],
                            **extra)


def _property_notes(backend: Backend, widget: dict[str, Any], index: int) -> list[dict[str, Any]]:
    """Each property the widget reads that no event of its type carries (`missing`), or
    that it aggregates but is not numeric: field, message, value, missing, known."""
    src = widget["dataSource"]
    etype = src.get("eventType")
    etype = etype if isinstance(etype, str) else None
    notes: list[dict[str, Any]] = []
    for fieldname, key in _source_properties(src):
        numeric = fieldname == "metric" and src.get("aggregation") not in ("count",
                                                                            "unique_users")
        kinds = backend.property_kinds(etype, key, numeric)
        if kinds is None:
            break  # no events of that type yet: nothing to check against
        path = f"widgets[{index}].dataSource.{fieldname}"
        where = f"{etype!r} events" if etype else "stored events"
        if not kinds:
            known = sorted(backend.known_properties(etype) or {})
            listing = ", ".join(known[:30]) or "none"
            notes.append({"field": path, "value": key, "missing": True, "known": known[:100],
                          "message": f"no {where} carry property {key!r}; known: {listing}"})
        elif numeric and not kinds & {"i", "f"}:
            notes.append({"field": path, "value": key, "missing": False, "known": [],
                          "message": f"property {key!r} of {where} is not numeric, so it "
                                     f"cannot be aggregated with {src.get('aggregation')}"})
    return notes
