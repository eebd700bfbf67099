"""Dashboards: JSON documents (metadata kind "dashboard") holding widgets on a 12-column grid.

Split by job: `model` (the grid, widget and data-source rules, validation), `storage`
(dashboards and custom templates in the metadata store), `widgets` (resolving every
widget's data into a view) and `templates` (the built-in templates). Callers import from
here. Each widget's `dataSource` is answered by the query engines and reshaped into a small
*view* the browser draws without further computation:

    value      {"kind": "value", "value": 12.5}                          counter, gauge
    series     {"kind": "series", "timestamps": [...], "series": [{"name", "values"}]}
    categories {"kind": "categories", "labels": [...], "values": [...]}  pie, bar
    table      {"kind": "table", "columns": [...], "rows": [[...]]}
    heatmap    {"kind": "heatmap", "xLabels", "yLabels", "values": [[...]] (rows = y)}
    funnel     {"kind": "funnel", "steps": [{"name", "count", "conversionRate", ...}]}

Any view may carry `note` (why it looks empty or thin, e.g. a weekday x hour heatmap over
less than a week) and `suggestedRange` (the range it is made for); the page shows both.

Thread rule: see each module: model is pure, storage runs on the event loop, widgets resolve
in a worker over one pinned backend view.
"""

from rta.core.dashboards.model import (
    AGGREGATIONS,
    COLUMNS,
    COMPATIBLE,
    DEFAULT_REFRESH_MS,
    DEFAULT_SIZE,
    DEFAULT_TIME_RANGE,
    HEATMAP_MEASURES,
    MAX_ROWS,
    MAX_WIDGET_HEIGHT,
    MAX_WIDGETS,
    MIN_REFRESH_MS,
    SOURCE_TYPES,
    WIDGET_TYPES,
    check_source_properties,
    check_widget_properties,
    normalise_source,
    validate_dashboard,
    widget_warnings,
)
from rta.core.dashboards.storage import (
    KIND,
    TEMPLATE_KIND,
    TEMPLATE_NAME,
    create_dashboard,
    create_from_template,
    delete_dashboard,
    delete_template,
    get_dashboard,
    get_template,
    list_dashboards,
    list_templates,
    register_template,
    update_dashboard,
)
from rta.core.dashboards.widgets import (
    AUTO_INTERVALS,
    WEEKDAYS,
    Pinned,
    Window,
    auto_interval,
    exact_aggregate,
    heatmap_view,
    pin,
    resolve_dashboard,
    resolve_widget,
)

__all__ = [
    "AGGREGATIONS", "AUTO_INTERVALS", "COLUMNS", "COMPATIBLE", "DEFAULT_REFRESH_MS",
    "DEFAULT_SIZE", "DEFAULT_TIME_RANGE", "HEATMAP_MEASURES", "KIND", "MAX_ROWS",
    "MAX_WIDGETS", "MAX_WIDGET_HEIGHT", "MIN_REFRESH_MS", "SOURCE_TYPES", "TEMPLATE_KIND",
    "TEMPLATE_NAME", "WEEKDAYS", "WIDGET_TYPES", "Pinned", "Window", "auto_interval",
    "check_source_properties", "check_widget_properties", "create_dashboard",
    "create_from_template", "delete_dashboard", "delete_template", "exact_aggregate",
    "get_dashboard", "get_template", "heatmap_view", "list_dashboards",
    "list_templates", "normalise_source", "pin", "register_template",
    "resolve_dashboard", "resolve_widget", "update_dashboard", "validate_dashboard",
    "widget_warnings",
]
