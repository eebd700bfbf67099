"""Exports from ClickHouse equal exports of the embedded store: the same bytes for CSV,
JSON and NDJSON, the same table for Parquet and the same cells for XLSX, under filters,
field lists and limits, on logs with tied timestamps and mixed-kind properties."""

from __future__ import annotations

import io
from typing import Any

import openpyxl
import pyarrow.parquet as pq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rta.core.export import Export, parse_export
from rta.core.export_clickhouse import ClickHouseExport
from tests.clickhouse.event_logs import NOW, T0, Log, event_logs
from tests.clickhouse.harness import Pair

BODIES = st.fixed_dictionaries({"format": st.sampled_from(("csv", "json", "ndjson", "parquet",
                                                           "xlsx"))}, optional={
    "filter": st.sampled_from(({"type": "pageview"}, {"where": [
        {"property": "mixed", "operator": "exists"}]}, {"startTime": T0 + 86_400_000,
                                                         "endTime": NOW})),
    "fields": st.sampled_from((["id", "timestamp", "properties.page"],
                               ["type", "properties", "userId"], ["properties.mixed"])),
    "limit": st.integers(1, 40),
})


def _rendered(fmt: str, data: bytes) -> Any:
    if fmt == "parquet":
        return pq.read_table(io.BytesIO(data)).to_pylist()
    if fmt == "xlsx":
        book = openpyxl.load_workbook(io.BytesIO(data))
        return [[list(r) for r in ws.iter_rows(values_only=True)] for ws in book.worksheets]
    return data.decode()


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(log=event_logs(), bodies=st.lists(BODIES, min_size=1, max_size=4))
def test_exports_match(log: Log, bodies: list[dict[str, Any]]) -> None:
    pair = Pair.create()
    try:
        for batch in log:
            pair.ingest(batch, NOW)
        for body in bodies:
            spec = parse_export(body, NOW)
            try:
                ours = Export(pair.engine.snapshot(), spec, now=0)
            except Exception as exc:  # a field no event has: both refuse alike
                try:
                    ClickHouseExport(pair.ch, spec, now=0)
                except Exception as other:
                    assert str(other) == str(exc)
                    continue
                raise AssertionError(f"only the embedded export refused {body}: {exc}") from exc
            theirs = ClickHouseExport(pair.ch, spec, now=0)
            assert theirs.rows == ours.rows and theirs.columns == ours.columns, body
            a, b = io.BytesIO(), io.BytesIO()
            ours.write_to(a)
            theirs.write_to(b)
            assert _rendered(spec.format, b.getvalue()) == _rendered(spec.format, a.getvalue()), \
                body
    finally:
        pair.close()
