"""The `paths` data source of dashboards (drawn by the `sankey` widget): its validation when
a dashboard is saved and its view when one renders.

A source is a paths request (POST /queries/paths: pathType, startPoint or endPoint, steps,
unit, windowMinutes, topK, collapseRepeats, filters) without its own time range, which the
dashboard's window supplies. Errors name the field under the source's path
(`widgets[2].dataSource.steps`). The view is the answer itself, kind `sankey`.

Thread rule: pure parsing; `view` in the dashboard's worker thread over its pinned context.
"""

from __future__ import annotations

from typing import Any

from rta.core.errors import ValidationError
from rta.core.queries import behaviour
from rta.core.queries.paths_results import PathsResult
from rta.core.queries.paths_specs import PathsQuery, parse_paths

SOURCE = "paths"
WIDGET = "sankey"
_TIME_KEYS = ("startTime", "endTime", "timeRange")


def _body(src: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in src.items() if k != "type" and k not in _TIME_KEYS}


def _parse(body: dict[str, Any], now: int | None, path: str) -> PathsQuery:
    try:
        return parse_paths(body, now)
    except ValidationError as exc:
        for d in exc.details:
            if isinstance(d, dict) and isinstance(d.get("field"), str):
                d["field"] = f"{path}.{d['field']}"
        raise


def normalise(src: dict[str, Any], path: str) -> dict[str, Any]:
    """Check a paths source (400 naming `path.field`); the source is kept as given."""
    _parse(_body(src), None, path)
    return src


def view(ctx: Any, src: dict[str, Any], start: int, end: int, now: int) -> dict[str, Any]:
    """The widget's data: the paths answer over [start, end), kind `sankey`."""
    body = {**_body(src), "startTime": start, "endTime": end - 1}
    result = behaviour.execute(_parse(body, now, "dataSource"), ctx)
    if not isinstance(result, PathsResult):
        raise LookupError(f"the query answered a {type(result).__name__}, not paths")
    return {"kind": "sankey", **result.to_json()}
