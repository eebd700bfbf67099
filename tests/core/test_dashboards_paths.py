"""Dashboards' `paths` source and `sankey` widget: validation names the source's field, the
widget/source pairing is checked, and a rendered widget is the paths answer itself."""

from __future__ import annotations

from typing import Any

import pytest

from rta.core.dashboards import paths_widget, widgets
from rta.core.dashboards.model import validate_dashboard
from rta.core.errors import ValidationError
from tests.core.test_paths import _engine
from tests.paths_data import NOW, T0


def _doc(wtype: str, src: dict[str, Any]) -> dict[str, Any]:
    return {"name": "d", "widgets": [{"type": wtype, "title": "t", "dataSource": src}]}


@pytest.mark.parametrize(("wtype", "src", "field"), [
    ("sankey", {"type": "paths", "steps": 0}, "widgets[0].dataSource.steps"),
    ("sankey", {"type": "paths", "startPoint": "a", "endPoint": "b"},
     "widgets[0].dataSource.endPoint"),
    ("sankey", {"type": "paths", "where": [{"property": "x", "operator": "nope"}]},
     "widgets[0].dataSource.filters[0].operator"),
    ("sankey", {"type": "count"}, "widgets[0].dataSource.type"),
    ("table", {"type": "paths"}, "widgets[0].dataSource.type"),
])
def test_bad_sources_name_the_field(wtype: str, src: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as err:
        validate_dashboard(_doc(wtype, src))
    assert err.value.details[0]["field"] == field


def test_widget_view_is_the_paths_answer() -> None:
    doc = validate_dashboard(_doc("sankey", {"type": "paths", "startPoint": "a",
                                             "timeRange": "last_24h"}))
    assert doc["widgets"][0]["position"]["w"] == 12
    log = [[{"type": t, "userId": "u", "timestamp": T0 + i * 1000}
            for i, t in enumerate(("a", "b", "c"))]]
    eng = _engine(log, None)
    try:
        pinned = widgets.pin(eng, NOW)
        view = paths_widget.view(pinned.ctx, doc["widgets"][0]["dataSource"], T0, NOW, NOW)
    finally:
        eng.close()
    assert view["kind"] == "sankey" and view["totalPaths"] == 1
    assert [link["target"] for link in view["links"]] == ["2_b", "3_c"]
