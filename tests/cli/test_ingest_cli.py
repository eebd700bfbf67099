"""`rta ingest` of every file format, remote and --local, plus events/stats/health."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.cli.conftest import rta
from tests.support import ServeProcess

TS = 1_700_000_000_000


def sample(tag: str, n: int = 30) -> list[dict]:
    return [{"id": f"{tag}-{i}", "type": "pageview" if i % 2 else "click", "userId": f"u{i % 4}",
             "sessionId": f"s{i % 5}", "timestamp": TS + i,
             "properties": {"page": f"/p{i % 3}", "n": i, "ratio": i / 4, "ok": i % 2 == 0}}
            for i in range(n)]


def stored(url: str, prefix: str) -> dict[str, dict]:
    events = httpx.get(f"{url}/events", params={"limit": 10_000}).json()["events"]
    return {e["id"]: e for e in events if e["id"].startswith(prefix + "-")}


def check_same(url: str, tag: str, events: list[dict]) -> None:
    got = stored(url, tag)
    assert set(got) == {e["id"] for e in events}
    for e in events:
        g = got[e["id"]]
        assert (g["type"], g["userId"], g["sessionId"], g["timestamp"]) == (
            e["type"], e["userId"], e["sessionId"], e["timestamp"])
        assert g["properties"] == e["properties"]


def test_ingest_ndjson(daemon: ServeProcess, tmp_path: Path) -> None:
    events = sample("nd")
    path = tmp_path / "events.ndjson"
    path.write_text("\n".join(json.dumps(e) for e in events) + "\n")
    r = rta("ingest", str(path), "--server", daemon.url, "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["accepted"] == 30
    check_same(daemon.url, "nd", events)
    again = rta("ingest", str(path), "--server", daemon.url, "--json")
    assert json.loads(again.stdout)["duplicates"] == 30


def test_ingest_json_array_and_stdin(daemon: ServeProcess, tmp_path: Path) -> None:
    events = sample("ja")
    path = tmp_path / "events.json"
    path.write_text(json.dumps(events))
    r = rta("ingest", str(path), "--server", daemon.url)
    assert r.returncode == 0, r.stderr
    assert "accepted 30" in r.stdout
    check_same(daemon.url, "ja", events)
    piped = sample("st", 5)
    r = rta("ingest", "-", "--server", daemon.url, "--json",
            stdin="\n".join(json.dumps(e) for e in piped))
    assert json.loads(r.stdout)["accepted"] == 5
    r = rta("ingest", "-", "--server", daemon.url, "--json", stdin=json.dumps(sample("sa", 3)))
    assert json.loads(r.stdout)["accepted"] == 3


def test_ingest_csv(daemon: ServeProcess, tmp_path: Path) -> None:
    events = sample("cs")
    path = tmp_path / "events.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "type", "userId", "sessionId", "timestamp", "properties.page",
                    "properties.n", "properties.ratio", "properties.ok"])
        for e in events:
            p = e["properties"]
            w.writerow([e["id"], e["type"], e["userId"], e["sessionId"], e["timestamp"],
                        p["page"], p["n"], p["ratio"], str(p["ok"]).lower()])
    r = rta("ingest", str(path), "--server", daemon.url, "--json")
    assert r.returncode == 0, r.stderr
    # CSV carries no types: 0.0 comes back as the integer 0, which is the honest reading
    for e in events:
        if e["properties"]["ratio"] == int(e["properties"]["ratio"]):
            e["properties"]["ratio"] = int(e["properties"]["ratio"])
    check_same(daemon.url, "cs", events)


def test_ingest_parquet(daemon: ServeProcess, tmp_path: Path) -> None:
    events = sample("pq")
    table = pa.table({
        "id": [e["id"] for e in events], "type": [e["type"] for e in events],
        "userId": [e["userId"] for e in events], "sessionId": [e["sessionId"] for e in events],
        "timestamp": [e["timestamp"] for e in events],
        "properties.page": [e["properties"]["page"] for e in events],
        "properties.n": [e["properties"]["n"] for e in events],
        "properties.ratio": [e["properties"]["ratio"] for e in events],
        "properties.ok": [e["properties"]["ok"] for e in events]})
    path = tmp_path / "events.parquet"
    pq.write_table(table, path)
    r = rta("ingest", str(path), "--server", daemon.url, "--json")
    assert r.returncode == 0, r.stderr
    check_same(daemon.url, "pq", events)


def test_rejected_events_are_reported_with_their_position(daemon: ServeProcess,
                                                          tmp_path: Path) -> None:
    path = tmp_path / "bad.ndjson"
    path.write_text('{"type": "ok", "id": "bad-0"}\n{"type": ""}\n{"type": "ok", "id": "bad-2"}\n')
    r = rta("ingest", str(path), "--server", daemon.url, "--json")
    assert r.returncode == 4
    out = json.loads(r.stdout)
    assert (out["accepted"], out["rejected"]) == (2, 1)
    assert out["errors"][0]["index"] == 1 and "type" in out["errors"][0]["message"]


def test_unreadable_input_and_unreachable_daemon(daemon: ServeProcess, tmp_path: Path) -> None:
    path = tmp_path / "broken.ndjson"
    path.write_text('{"type": "ok"}\n{broken\n')
    r = rta("ingest", str(path), "--server", daemon.url)
    assert r.returncode == 4 and "broken.ndjson:2" in r.stderr
    path.write_text('[{"type": "ok"},\n {"type": "ok", "properties": {"v": Infinity}}]')
    r = rta("ingest", str(path), "--server", daemon.url, "--format", "json")
    assert r.returncode == 4 and "broken.ndjson:2: not valid JSON: Infinity" in r.stderr
    r = rta("ingest", str(tmp_path / "missing.ndjson"), "--server", daemon.url)
    assert r.returncode == 4 and "no such file" in r.stderr
    r = rta("stats", "--server", "http://127.0.0.1:9")
    assert r.returncode == 3 and "cannot reach" in r.stderr


def test_local_ingest_refused_while_daemon_runs_then_works(daemon: ServeProcess,
                                                           tmp_path: Path) -> None:
    path = tmp_path / "events.ndjson"
    events = sample("lo")
    path.write_text("\n".join(json.dumps(e) for e in events))
    r = rta("ingest", "--local", "--data-dir", daemon.data_dir, str(path))
    assert r.returncode == 1 and "in use" in r.stderr
    other = tmp_path / "other"
    r = rta("ingest", "--local", "--data-dir", str(other), str(path), "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["accepted"] == 30
    proc = ServeProcess(str(other))
    url = proc.start()
    try:
        check_same(url, "lo", events)
    finally:
        proc.stop()


@pytest.mark.parametrize("command", [["stats"], ["health"], ["events", "--limit", "3"]])
def test_read_commands_json_and_table(daemon: ServeProcess, command: list[str]) -> None:
    r = rta(*command, "--server", daemon.url, "--json")
    assert r.returncode == 0, r.stderr
    json.loads(r.stdout)
    r = rta(*command, "--server", daemon.url)
    assert r.returncode == 0 and r.stdout.strip()
    assert "\x1b[" not in r.stdout  # NO_COLOR honoured


def test_ingest_parquet_timestamp_type_and_stream(daemon: ServeProcess, tmp_path: Path) -> None:
    events = sample("pt", 5)
    table = pa.table({
        "id": [e["id"] for e in events], "type": [e["type"] for e in events],
        "timestamp": pa.array([e["timestamp"] for e in events], pa.int64()).cast(
            pa.timestamp("ms"))})
    path = tmp_path / "ts.parquet"
    pq.write_table(table, path)
    r = rta("ingest", str(path), "--server", daemon.url, "--json")
    assert r.returncode == 0, r.stderr
    got = stored(daemon.url, "pt")
    assert {g["id"]: g["timestamp"] for g in got.values()} == {
        e["id"]: e["timestamp"] for e in events}
    streamed = sample("ws", 12)
    nd = tmp_path / "ws.ndjson"
    nd.write_text("\n".join(json.dumps(e) for e in streamed))
    r = rta("ingest", "--stream", str(nd), "--server", daemon.url, "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["accepted"] == 12
    check_same(daemon.url, "ws", streamed)
