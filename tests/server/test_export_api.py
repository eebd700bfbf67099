"""POST /export over a real server: formats, headers, streaming, errors, disconnects, RSS."""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import openpyxl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import trio

from rta.core.config import EngineConfig
from tests.core.test_export_support import write_store
from tests.support import LiveServer, ServeProcess, live_server

TS = 1_700_000_000_000
WEIRD = ["a,b", 'q"uote', "new\nline", "ünï ✓", "", "<x>&"]


def ndjson_lines(data: bytes) -> list[str]:
    """NDJSON rows split on LF only (str.splitlines would also split on U+0085, U+2028)."""
    return [line for line in data.decode().split("\n") if line]



def events() -> list[dict[str, Any]]:
    out = []
    for i in range(60):
        props: dict[str, Any] = {"page": WEIRD[i % len(WEIRD)], "n": i}
        if i % 4 == 0:
            props["v"] = [7, 7.5, "seven", False][(i // 4) % 4]
        out.append({"id": f"e-{i:03d}", "type": "pageview" if i % 3 else "click",
                    "userId": f"u{i % 5}" if i % 7 else None, "sessionId": f"s{i % 2}",
                    "timestamp": TS + (i * 7919) % 60, "properties": props})
    return out


async def load(http: httpx.AsyncClient) -> list[dict[str, Any]]:
    evs = events()
    r = await http.post("/events/batch", json=evs)
    assert r.status_code == 202, r.text
    return sorted(evs, key=lambda e: (e["timestamp"], e["id"]))


def same_events(got: list[dict[str, Any]], want: list[dict[str, Any]]) -> None:
    assert [g["id"] for g in got] == [w["id"] for w in want] or sorted(
        g["timestamp"] for g in got) == [w["timestamp"] for w in want]
    by_id = {w["id"]: w for w in want}
    for g in got:
        w = by_id[g["id"]]
        for key in ("type", "userId", "sessionId", "timestamp"):
            assert g[key] == w.get(key)
        assert {k: (type(v), v) for k, v in g["properties"].items()} == {
            k: (type(v), v) for k, v in w["properties"].items()}
    ts = [g["timestamp"] for g in got]
    assert ts == sorted(ts)


async def test_ndjson_and_json_exports(http: httpx.AsyncClient) -> None:
    want = await load(http)
    r = await http.post("/export", json={"format": "ndjson"})
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/x-ndjson"
    assert r.headers["transfer-encoding"] == "chunked"
    assert r.headers["x-export-rows"] == "60"
    disposition = r.headers["content-disposition"]
    assert disposition.startswith('attachment; filename="events-')
    assert disposition.endswith('.ndjson"')
    same_events([json.loads(line) for line in ndjson_lines(r.content)], want)
    r = await http.post("/export", json={"format": "json"})
    assert r.headers["content-type"] == "application/json"
    same_events(r.json(), want)


async def test_seed_example_csv(http: httpx.AsyncClient) -> None:
    want = [e for e in await load(http) if e["type"] == "pageview"][:25]
    body = {"format": "csv", "filter": {"type": "pageview", "startTime": TS,
                                        "endTime": TS + 86_400_000},
            "fields": ["id", "type", "userId", "timestamp", "properties.page"], "limit": 25}
    r = await http.post("/export", json=body)
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/csv; charset=utf-8"
    assert r.headers["content-disposition"].endswith('.csv"')
    rows = list(csv.DictReader(io.StringIO(r.text, newline="")))
    assert list(rows[0]) == body["fields"]
    assert [int(row["timestamp"]) for row in rows] == [e["timestamp"] for e in want]
    by_id = {e["id"]: e for e in want}
    assert len(rows) == 25
    for row in rows:
        e = by_id[row["id"]]
        assert row["properties.page"] == e["properties"]["page"]
        assert row["userId"] == (e["userId"] or "")


async def test_parquet_and_xlsx_exports(http: httpx.AsyncClient) -> None:
    want = await load(http)
    r = await http.post("/export", json={"format": "parquet"})
    assert r.headers["content-type"] == "application/vnd.apache.parquet"
    table = pq.read_table(io.BytesIO(r.content))
    assert table.schema.field("timestamp").type == pa.timestamp("ms", tz="UTC")
    ms = table.column("timestamp").cast(pa.int64())
    table = table.set_column(table.column_names.index("timestamp"), "timestamp", ms)
    rows = table.to_pylist()
    got = []
    for row in rows:
        props = {k[11:]: v for k, v in row.items() if k.startswith("properties.")
                 and v is not None}
        props.update(json.loads(row["properties"]) if row["properties"] else {})
        got.append({**row, "properties": props})
    same_events(got, want)
    r = await http.post("/export", json={"format": "xlsx", "fields": ["id", "properties.v"]})
    assert r.headers["content-type"].endswith("spreadsheetml.sheet")
    wb = openpyxl.load_workbook(io.BytesIO(r.content), read_only=True)
    cells = list(wb.worksheets[0].iter_rows(values_only=True))
    assert cells[0] == ("id", "properties.v")
    values = {row[0]: row[1] for row in cells[1:]}
    for e in want:
        v = e["properties"].get("v")
        assert (type(values[e["id"]]), values[e["id"]]) == (type(v), v)
    wb.close()


async def test_streams_are_not_gzipped(http: httpx.AsyncClient) -> None:
    await load(http)
    r = await http.post("/export", json={"format": "ndjson"},
                        headers={"Accept-Encoding": "gzip"})
    assert "content-encoding" not in r.headers
    assert len(ndjson_lines(r.content)) == 60


@pytest.mark.parametrize("body,field", [
    ({"format": "pdf"}, "format"),
    ({"format": "csv", "fields": ["id", "colour"]}, "fields[1]"),
    ({"format": "csv", "fields": ["properties.never"]}, "fields[0]"),
    ({"format": "csv", "limit": 0}, "limit"),
    ({"format": "csv", "limit": "ten"}, "limit"),
    ({"format": "csv", "filter": {"endTime": "whenever"}}, "filter.endTime"),
    ({"format": "csv", "filter": {"segment": "nope"}}, "filter.segment"),
])
async def test_bad_input_is_a_400_naming_the_field(http: httpx.AsyncClient,
                                                   body: dict[str, Any], field: str) -> None:
    r = await http.post("/export", json=body)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["details"][0]["field"] == field
    assert err["message"]


async def test_body_must_be_an_object(http: httpx.AsyncClient) -> None:
    r = await http.post("/export", json=["csv"])
    assert r.status_code == 400
    r = await http.post("/export", content=b"{nope", headers={"Content-Type": "application/json"})
    assert r.status_code == 400


@pytest.fixture
async def big_server(engine_config: EngineConfig) -> AsyncIterator[LiveServer]:
    """A server whose store holds 300k events in sealed segments."""
    assert engine_config.data_dir is not None
    write_store(engine_config.data_dir, 300_000, per_segment=100_000)
    async with live_server(engine_config) as srv:
        yield srv


async def test_disconnect_frees_the_export_and_server_stays_responsive(
        big_server: LiveServer) -> None:
    """A raw socket reads the first bytes of a 300k-event export and hangs up."""
    host, port = big_server.url.removeprefix("http://").split(":")
    body = json.dumps({"format": "ndjson"}).encode()
    stream = await trio.open_tcp_stream(host, int(port))
    await stream.send_all(b"POST /export HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json"
                          b"\r\nContent-Length: %d\r\n\r\n%s" % (host.encode(), len(body), body))
    head = b""
    while b'"properties"' not in head:
        head += await stream.receive_some(65536)
    assert head.startswith(b"HTTP/1.1 200") and b"x-export-rows: 300000" in head.lower()
    async with httpx.AsyncClient(base_url=big_server.url, timeout=30) as client:
        t0 = time.monotonic()
        health = await client.get("/health")
        assert health.status_code == 200
        assert time.monotonic() - t0 < 5  # answered between chunks, not after the export
        assert (await client.get("/stats")).json()["export"]["activeExports"] == 1
        await stream.aclose()
        with trio.fail_after(5):
            while True:
                stats = (await client.get("/stats")).json()["export"]
                if stats["activeExports"] == 0:
                    break
                await trio.sleep(0.02)
        assert stats["exportsAborted"] == 1
        assert stats["rowsExported"] < 300_000


def _rss_anon(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no RssAnon")


@pytest.mark.slow
def test_million_event_export_keeps_server_rss_bounded(tmp_path: Path) -> None:
    """1M events as NDJSON (~190 MB on the wire, more than the bound) from a real `rta serve`
    process whose anonymous RSS is sampled throughout.

    Measured on the second of two exports: the first also loads what stays loaded for every
    later query (the dictionaries of user and session ids, the time column in the query
    cache: ~60 MiB here), which is store state, not the export's buffering."""
    n = 1_000_000
    data_dir = str(tmp_path / "data")
    write_store(data_dir, n)
    proc = ServeProcess(data_dir)
    proc.start()
    assert proc.proc is not None
    try:
        for attempt in ("warm", "measured"):
            base = _rss_anon(proc.proc.pid)
            peak = base
            lines = 0
            size = 0
            last = b""
            with httpx.stream("POST", proc.url + "/export", json={"format": "ndjson"},
                              timeout=120) as r:
                assert r.status_code == 200
                assert r.headers["x-export-rows"] == str(n)
                for data in r.iter_raw():
                    lines += data.count(b"\n")
                    size += len(data)
                    last = (last + data)[-4096:]
                    peak = max(peak, _rss_anon(proc.proc.pid))
            assert lines == n, attempt
            json.loads(last.rstrip(b"\n").rsplit(b"\n", 1)[-1])  # ends on a whole row
        growth = peak - base
        assert size > 150 * 2**20
        assert growth < 112 * 2**20, f"server RSS grew {growth / 2**20:.0f} MiB"
    finally:
        proc.stop()

