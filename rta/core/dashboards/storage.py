"""Dashboards and custom templates kept in the engine's metadata store (kinds "dashboard"
and "dashboard_template"); every document written has passed `model.validate_dashboard`'s
structural checks. Property checks against the stored data come back as `warnings` on the
create/update answer (never stored, never a refusal).

Thread rule: event loop (the metadata store serialises its own access).
"""

from __future__ import annotations

import copy
import re
from typing import TYPE_CHECKING, Any

from rta.core.dashboards import templates as dashboard_templates
from rta.core.dashboards.model import (
    DEFAULT_REFRESH_MS,
    DEFAULT_TIME_RANGE,
    property_warnings,
    validate_dashboard,
)
from rta.core.errors import ConflictError, NotFoundError, ValidationError, field_error

if TYPE_CHECKING:
    from rta.core.engine import Engine

KIND = "dashboard"
TEMPLATE_KIND = "dashboard_template"
TEMPLATE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def _with_warnings(engine: Engine, saved: dict[str, Any]) -> dict[str, Any]:
    """The saved document plus `warnings` (not stored) when the stored data says a widget
    reads a property no event of its type carries: saving never depends on the data."""
    from rta.core import query_services

    warnings = property_warnings(query_services.context(engine).backend,
                                 saved.get("widgets", []))
    return {**saved, "warnings": warnings} if warnings else saved


def create_dashboard(engine: Engine, body: Any) -> dict[str, Any]:
    doc = validate_dashboard(body)
    return _with_warnings(engine, engine.metadata.create(KIND, doc))


def update_dashboard(engine: Engine, dashboard_id: str, body: Any) -> dict[str, Any]:
    current = engine.metadata.get(KIND, dashboard_id)
    # PUT with a partial body keeps the rest of the document.
    merged = {**current, **body} if isinstance(body, dict) else body
    doc = validate_dashboard(merged)
    if current.get("template") and "template" not in doc:
        doc["template"] = current["template"]
    return _with_warnings(engine, engine.metadata.put(KIND, dashboard_id, doc))


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
    doc = validate_dashboard({**body, "name": body.get("name") or name})
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
    doc = validate_dashboard(doc)
    return _with_warnings(engine, engine.metadata.create(KIND, doc))
