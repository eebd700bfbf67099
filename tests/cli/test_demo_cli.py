"""`rta demo generate` and `rta serve --demo`, run as a user would."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from rta.cli.demo import DEMO_EVENTS
from rta.core.events import EventValidator
from tests.cli.conftest import rta
from tests.support import ServeProcess

END = "2026-06-01T00:00:00Z"


def test_generate_is_byte_identical_for_a_seed(tmp_path: Path) -> None:
    a, b, c = (tmp_path / n for n in ("a.ndjson", "b.ndjson", "c.ndjson"))
    for path, seed in ((a, "4"), (b, "4"), (c, "5")):
        r = rta("demo", "generate", "--events", "3000", "-o", str(path), "--seed", seed,
                "--days", "7", "--end", END)
        assert r.returncode == 0, r.stderr
        assert "wrote 3,000 demo events" in r.stderr and r.stdout == ""
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()
    events = [json.loads(line) for line in a.read_text().splitlines()]
    assert len(events) == 3000
    _, rejected = EventValidator().validate_batch(events, now=events[-1]["timestamp"])
    assert rejected == []


def test_formats_json_summary_and_stdout(tmp_path: Path) -> None:
    out = tmp_path / "e.parquet"
    r = rta("demo", "generate", "-n", "500", "-o", str(out), "--end", END, "--json")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["events"] == 500 and summary["format"] == "parquet"
    assert pq.read_table(out).num_rows == 500
    csv_path = tmp_path / "e.csv"
    assert rta("demo", "generate", "-n", "200", "-o", str(csv_path), "--end", END
               ).returncode == 0
    table = pacsv.read_csv(csv_path)
    assert table.num_rows == 200 and "properties.page" in table.column_names
    r = rta("demo", "generate", "-n", "5", "-o", "-", "--end", END)
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 5
    assert all(json.loads(line)["userId"] for line in r.stdout.splitlines())


def test_bad_arguments_exit_with_bad_input(tmp_path: Path) -> None:
    r = rta("demo", "generate", "-n", "5", "-o", str(tmp_path / "x"), "--format", "xml")
    assert r.returncode == 2 and "unknown format" in r.stderr
    r = rta("demo", "generate", "-n", "5", "-o", str(tmp_path / "x"), "--end", "whenever")
    assert r.returncode == 2
    assert rta("demo", "generate", "-n", "-1", "-o", "x").returncode == 2


def test_serve_demo_loads_data_and_keeps_a_trickle(tmp_path: Path) -> None:
    proc = ServeProcess(str(tmp_path / "data"), "--demo")
    proc.start(timeout=60)
    try:
        with httpx.Client(base_url=proc.url, timeout=30) as http:
            first = http.get("/stats").json()["store"]["events"]
            assert first >= DEMO_EVENTS
            # The trickle sends its first event at once, then at the history's own hourly
            # rate (a quiet hour may wait minutes: tests/cli/test_demo_trickle.py checks the
            # rate on a mock clock), so one event past the history shows it is running.
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                now = http.get("/stats").json()["store"]["events"]
                if now > DEMO_EVENTS:
                    break
                time.sleep(0.3)
            assert now > DEMO_EVENTS, "the live trickle added no events"
            recent = http.get("/events", params={"limit": 5}).json()
            assert recent["events"] and recent["events"][0]["type"]
            boards = http.get("/dashboards").json()["dashboards"]
            assert [b["name"] for b in boards] == ["Overview"]
            data = http.get(f"/dashboards/{boards[0]['id']}/data").json()
            assert data["widgets"] and not any(w.get("error") for w in data["widgets"])
    finally:
        assert proc.stop() == 0
    # A restart with data present does not load the demo set again.
    again = ServeProcess(str(tmp_path / "data"), "--demo")
    again.start(timeout=60)
    try:
        count = httpx.get(again.url + "/stats").json()["store"]["events"]
        assert first <= count < first + 1000
        assert len(httpx.get(again.url + "/dashboards").json()["dashboards"]) == 1
    finally:
        again.stop()


def test_generate_when_the_cut_falls_between_a_purchase_and_its_conversion(
        tmp_path: Path) -> None:
    """These arguments once crashed every format with a numpy shape mismatch (the last
    session was cut to exactly -n events right after its purchase)."""
    args = ["-n", "500", "--seed", "7", "--users", "50", "--days", "1", "--end",
            "1790000000000"]
    for name in ("e.ndjson", "e.csv", "e.parquet"):
        r = rta("demo", "generate", *args, "-o", str(tmp_path / name))
        assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
        assert "wrote 500 demo events" in r.stderr
    events = [json.loads(line) for line in (tmp_path / "e.ndjson").read_text().splitlines()]
    _, rejected = EventValidator().validate_batch(events, now=1_790_000_000_000)
    assert len(events) == 500 and rejected == []
