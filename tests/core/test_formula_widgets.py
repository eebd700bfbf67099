"""Dashboard widgets over named series and a formula: chart, table and counter views against
counts computed in Python; bad sources are 400s naming the widget's field."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from rta.core import dashboards as dash
from rta.core.config import EngineConfig
from rta.core.engine import Engine
from rta.core.errors import ValidationError
from rta.core.events import EventValidator
from rta.core.queries.timeparse import HOUR

NOW = 1_700_000_000_000 - 1_700_000_000_000 % HOUR + 30 * 60_000
SERIES = [{"name": "P", "eventType": "purchase"}, {"name": "S", "eventType": "signup"}]


def widget(wtype: str, **source: Any) -> dict[str, Any]:
    return {"type": wtype, "title": wtype, "dataSource": {"type": "aggregation",
                                                          "series": SERIES, **source}}


def events() -> list[dict[str, Any]]:
    out = []
    for h in range(6):  # hour h before NOW: h + 1 signups, 2 * (h + 1) purchases
        ts = NOW - h * HOUR - 60_000
        out += [{"type": "signup", "userId": f"s{h}-{i}", "timestamp": ts}
                for i in range(h + 1)]
        out += [{"type": "purchase", "userId": f"p{h}-{i}", "timestamp": ts,
                 "properties": {"plan": "pro" if i % 2 else "free"}}
                for i in range(2 * (h + 1))]
    return out


@pytest.fixture
def engine() -> Iterator[Engine]:
    eng = Engine(EngineConfig(data_dir=None))
    batch, rejected = EventValidator().validate_batch(events(), now=NOW)
    assert not rejected
    eng.store.append(batch)
    try:
        yield eng
    finally:
        eng.close()


def test_formula_widgets(engine: Engine) -> None:
    doc = dash.validate_dashboard({"name": "f", "timeRange": "last_6h", "widgets": [
        widget("line-chart", formula="P / S", interval="1h"),
        widget("counter", formula="P / S * 100"),
        widget("table", interval="1h"),
        widget("gauge", formula="P", filters=[{"property": "plan", "operator": "eq",
                                                "value": "pro"}]),
    ]})
    out = dash.resolve_dashboard(engine, doc, now=NOW)
    line, counter, table, gauge = (w["data"] for w in out["widgets"])
    assert all(w["error"] is None for w in out["widgets"]), out["widgets"]
    assert line["kind"] == "series" and line["series"][0]["name"] == "P / S"
    assert [v for v in line["series"][0]["values"] if v is not None] == [2.0] * 6
    assert counter == {"kind": "value", "value": 200.0}
    assert table["kind"] == "table"
    assert gauge["value"] == sum((2 * (h + 1)) // 2 for h in range(6))
    # the page's editor sends aggregation: count (its default) with any aggregation source
    again = dash.validate_dashboard({"name": "f", "widgets": [
        widget("counter", formula="P / S * 100", aggregation="count")]})
    assert "aggregation" not in again["widgets"][0]["dataSource"]


@pytest.mark.parametrize(("source", "wtype", "field"), [
    ({"formula": "P / X"}, "line-chart", "widgets[0].dataSource.formula"),
    ({"formula": "P /"}, "counter", "widgets[0].dataSource.formula"),
    ({"series": [{"name": "P", "where": 1}]}, "line-chart",
     "widgets[0].dataSource.series[0].where"),
    ({"metric": "amount"}, "line-chart", "widgets[0].dataSource.metric"),
    ({"formula": "P"}, "pie-chart", "widgets[0].dataSource.series"),
    ({"aggregation": "sum"}, "line-chart", "widgets[0].dataSource.aggregation"),
])
def test_bad_formula_sources(source: dict[str, Any], wtype: str, field: str) -> None:
    with pytest.raises(ValidationError) as info:
        dash.validate_dashboard({"name": "f", "widgets": [widget(wtype, **source)]})
    assert info.value.details[0]["field"] == field, info.value.details
    assert info.value.message.startswith(field)
