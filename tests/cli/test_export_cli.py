"""`rta export` against a real daemon: formats from suffixes, stdout, filters, errors, and the
NDJSON / Parquet round trip through `rta ingest --local` into an identical store."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pyarrow.parquet as pq
import pytest

from rta.core.embedded.render import render_events
from rta.core.embedded.store import ColumnStore, StoreConfig
from tests.cli.conftest import rta
from tests.support import ServeProcess

TS = 1_700_000_000_000


def sample(n: int = 50) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        props: dict[str, Any] = {"page": ["/a,b", 'q"t', "l\nf", "ü✓", ""][i % 5], "n": i}
        if i % 3 == 0:
            props["v"] = [1, 1.0, "one", True][(i // 3) % 4]  # a key whose type varies
        if i % 4 == 0:
            props["ratio"] = i / 8
        out.append({"id": f"cli-{i:03d}", "type": "pageview" if i % 2 else "signup",
                    "userId": f"u{i % 6}" if i % 5 else None,
                    "sessionId": f"s{i % 3}", "timestamp": TS + (i * 31) % 50,
                    "properties": props})
    return out


@pytest.fixture(scope="module")
def loaded(daemon: ServeProcess) -> ServeProcess:
    r = httpx.post(daemon.url + "/events/batch", json=sample())
    assert r.status_code == 202, r.text
    return daemon


def test_format_from_suffix_and_summary(loaded: ServeProcess, tmp_path: Path) -> None:
    out = tmp_path / "events.csv"
    r = rta("export", "-o", str(out), "--server", loaded.url, "--json")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["rows"] == 50 and summary["format"] == "csv"
    assert summary["bytes"] == out.stat().st_size
    rows = list(csv.DictReader(io.StringIO(out.read_text(), newline="")))
    assert len(rows) == 50
    assert [int(r["timestamp"]) for r in rows] == sorted(e["timestamp"] for e in sample())
    assert not (tmp_path / "events.csv.part").exists()


def test_stdout_filters_fields_and_limit(loaded: ServeProcess) -> None:
    r = rta("export", "-o", "-", "--format", "ndjson", "--type", "pageview",
            "--where", "n>=10", "--fields", "id,timestamp,properties.page", "--limit", "7",
            "--since", str(TS), "--server", loaded.url)
    assert r.returncode == 0, r.stderr
    got = [json.loads(line) for line in r.stdout.split("\n") if line]
    want = sorted((e for e in sample() if e["type"] == "pageview" and e["properties"]["n"] >= 10),
                  key=lambda e: (e["timestamp"]))[:7]
    assert [g["timestamp"] for g in got] == [w["timestamp"] for w in want]
    assert all(set(g) == {"id", "timestamp", "properties"} for g in got)
    assert "exported 7 events" in r.stderr


def test_xlsx_and_jsonl_suffixes(loaded: ServeProcess, tmp_path: Path) -> None:
    import openpyxl

    for name in ("e.xlsx", "e.jsonl"):
        r = rta("export", "-o", str(tmp_path / name), "-q", "--server", loaded.url)
        assert r.returncode == 0, r.stderr
    wb = openpyxl.load_workbook(tmp_path / "e.xlsx", read_only=True)
    assert wb.worksheets[0].max_row == 51
    wb.close()
    assert len((tmp_path / "e.jsonl").read_text().strip().split("\n")) == 50


def test_errors_and_exit_codes(loaded: ServeProcess, tmp_path: Path) -> None:
    r = rta("export", "-o", str(tmp_path / "x.txt"), "--server", loaded.url)
    assert r.returncode == 2 and "--format" in r.stderr
    r = rta("export", "-o", "-", "--format", "pdf", "--server", loaded.url)
    assert r.returncode == 2
    r = rta("export", "-o", str(tmp_path / "x.csv"), "--fields", "id,bogus",
            "--server", loaded.url)
    assert r.returncode == 4 and "fields[1]" in r.stderr
    assert not (tmp_path / "x.csv").exists() and not (tmp_path / "x.csv.part").exists()
    r = rta("export", "-o", str(tmp_path / "y.csv"), "--server", "http://127.0.0.1:9")
    assert r.returncode == 3


def _canonical(data_dir: str) -> list[Any]:
    store = ColumnStore(data_dir, StoreConfig(fsync=False))
    try:
        snap = store.snapshot()
        events = []
        for block in snap.blocks:
            events += render_events(block, np.arange(block.n), snap.dicts)
    finally:
        store.close()
    for e in events:
        del e["receivedAt"]
        e["properties"] = {k: (type(v).__name__, v) for k, v in e["properties"].items()}
    return sorted(events, key=lambda e: e["id"])


@pytest.mark.parametrize("suffix", ["ndjson", "parquet"])
def test_round_trip_through_rta_ingest_is_identical(loaded: ServeProcess, tmp_path: Path,
                                                    suffix: str) -> None:
    out = tmp_path / f"all.{suffix}"
    r = rta("export", "-o", str(out), "-q", "--server", loaded.url)
    assert r.returncode == 0, r.stderr
    if suffix == "parquet":
        assert pq.read_metadata(out).num_rows == 50
    copy = str(tmp_path / "copy")
    r = rta("ingest", str(out), "--local", "--data-dir", copy, "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["accepted"] == 50
    # the daemon's store, read through the API, against the re-ingested copy
    events = httpx.get(loaded.url + "/events", params={"limit": 10_000}).json()["events"]
    original = sorted(({**{k: v for k, v in e.items() if k != "receivedAt"},
                        "properties": {k: (type(v).__name__, v)
                                       for k, v in e["properties"].items()}}
                       for e in events), key=lambda e: e["id"])
    assert _canonical(copy) == original
