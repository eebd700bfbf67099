"""`rta ingest` of every file format, remote and --local, plus events/stats/health."""

from __future__ import annotations

import csv
import gzip
import json
import os
import pty
import re
import subprocess
import sys
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


# -- bad input, partial failures, --strict, stdin sniffing, progress -----------------------


def rta_bytes(*args: str, stdin: bytes) -> subprocess.CompletedProcess[str]:
    """`rta(...)` with binary stdin (gzip, Parquet)."""
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200"}
    proc = subprocess.run([sys.executable, "-m", "rta", *args], input=stdin,
                          capture_output=True, env=env, timeout=120, check=False)
    return subprocess.CompletedProcess(proc.args, proc.returncode, proc.stdout.decode(),
                                       proc.stderr.decode())


def one_error_line(r: subprocess.CompletedProcess[str], code: int, *words: str) -> None:
    """Exit `code`, nothing on stdout, one `error:` line on stderr naming `words`."""
    lines = [line for line in r.stderr.splitlines() if not line.startswith("loading into")]
    assert r.returncode == code, r.stderr
    assert r.stdout == "" and "Traceback" not in r.stderr, r.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    assert all(w in lines[0] for w in words), r.stderr


def ndjson(events: list[dict]) -> str:
    return "".join(json.dumps(e) + "\n" for e in events)


def test_unreadable_files_exit_4_with_one_line(daemon: ServeProcess, tmp_path: Path) -> None:
    fake_gz = tmp_path / "fake.ndjson.gz"
    fake_gz.write_text(ndjson(sample("fz", 2)))
    bad_pq = tmp_path / "bad.parquet"
    bad_pq.write_text("nope")
    truncated = tmp_path / "cut.ndjson.gz"
    truncated.write_bytes(gzip.compress(ndjson(sample("cut", 50)).encode())[:60])
    latin1 = tmp_path / "latin1.csv"
    latin1.write_bytes(b"type,page\nclick,caf\xe9\n")
    remote = ["--server", daemon.url]
    local = ["--local", "-d", str(tmp_path / "store")]
    for args, words in (
            ([str(tmp_path), *remote], (str(tmp_path), "is a directory")),
            ([str(fake_gz), *remote], ("fake.ndjson.gz", "not a gzip file")),
            ([str(fake_gz), *local], ("fake.ndjson.gz", "not a gzip file")),
            ([str(bad_pq), *remote], ("bad.parquet", "not a readable Parquet file")),
            ([str(bad_pq), *local], ("bad.parquet", "not a readable Parquet file")),
            ([str(truncated), *remote], ("cut.ndjson.gz", "damaged gzip data")),
            ([str(truncated), *local], ("cut.ndjson.gz", "damaged gzip data")),
            ([str(latin1), *remote], ("latin1.csv", "not UTF-8"))):
        one_error_line(rta("ingest", *args), 4, *words)
        one_error_line(rta("ingest", *args, "--json"), 4, *words)


def test_unusable_data_dir_is_an_error_not_a_traceback(tmp_path: Path) -> None:
    path = tmp_path / "e.ndjson"
    path.write_text(ndjson(sample("dd", 2)))
    in_the_way = tmp_path / "a-file"
    in_the_way.write_text("")
    for data_dir, words in (("/proc/rta-no-such-dir", ("No such file",)),
                            (str(in_the_way), ("not a directory",))):
        one_error_line(rta("ingest", "--local", "-d", data_dir, str(path)), 1,
                       "cannot use data directory", data_dir, *words)


def test_a_failed_ingest_reports_what_was_stored(daemon: ServeProcess, tmp_path: Path) -> None:
    """6,000 good lines then a broken one: the first batch of 5,000 is stored, and said so."""
    events = sample("part", 6000)
    path = tmp_path / "part.ndjson"
    path.write_text(ndjson(events) + "{broken\n")
    r = rta("ingest", str(path), "--server", daemon.url, "--json")
    assert r.returncode == 4, r.stderr
    assert "part.ndjson:6001: not valid JSON" in r.stderr
    assert "before the error: accepted 5,000 (stored)  duplicates 0  rejected 0" in r.stderr
    out = json.loads(r.stdout)
    assert (out["accepted"], out["duplicates"], out["rejected"]) == (5000, 0, 0)
    assert out["error"].startswith(f"{path}:6001: not valid JSON")
    assert len(stored(daemon.url, "part")) == 5000
    r = rta("ingest", str(path), "--server", daemon.url)  # again: duplicates, no data output
    assert r.returncode == 4 and r.stdout == ""
    assert "before the error: accepted 0 (stored)  duplicates 5,000" in r.stderr
    # Nothing sent before the error: no result on stdout, even with --json.
    first = tmp_path / "first.ndjson"
    first.write_text("{broken\n")
    one_error_line(rta("ingest", str(first), "--server", daemon.url, "--json"), 4,
                   "first.ndjson:1: not valid JSON")


def test_strict_over_http_and_websocket_names_the_cli_option(daemon: ServeProcess,
                                                             tmp_path: Path) -> None:
    path = tmp_path / "mixed.ndjson"
    path.write_text('{"type": "ok", "id": "sh-0"}\n\n{"type": ""}\n{"type": "ok", "id": "sh-2"}\n')
    for extra in ([], ["--stream"]):
        r = rta("ingest", str(path), "--strict", "--server", daemon.url, *extra)
        assert r.returncode == 4 and r.stdout == "", r.stderr
        assert "Traceback" not in r.stderr and "partial" not in r.stderr, r.stderr
        assert "1 of 3 events in a batch of" in r.stderr and "drop --strict" in r.stderr
        assert f"{path} line 3 (event 2): type is required" in r.stderr
        assert stored(daemon.url, "sh") == {}
    r = rta("ingest", str(path), "--strict", "--server", daemon.url, "--json")
    out = json.loads(r.stdout)
    assert (out["accepted"], out["rejected"]) == (0, 1) and "drop --strict" in out["error"]
    assert out["errors"] == [{"file": str(path), "index": 1, "line": 3,
                              "message": "type is required and must be a non-empty string"}]


def test_local_strict_stores_nothing_when_any_event_is_invalid(tmp_path: Path) -> None:
    store = str(tmp_path / "store")
    events = sample("ls", 30)
    events[25]["type"] = ""  # in the last batch of 10
    path = tmp_path / "ls.ndjson"
    path.write_text(ndjson(events))
    for args, stdin in (([str(path)], None), (["-"], path.read_text())):
        r = rta("ingest", "--local", "-d", store, "--strict", "--batch-size", "10", *args,
                stdin=stdin)
        assert r.returncode == 4 and r.stdout == "", r.stderr
        assert "1 of 30 events are invalid, so nothing was stored (drop --strict" in r.stderr
        assert "line 26 (event 26)" in r.stderr
    r = rta("ingest", "--local", "-d", store, str(path), "--json")  # without --strict
    out = json.loads(r.stdout)
    assert (out["accepted"], out["duplicates"], out["rejected"]) == (29, 0, 1)
    good = tmp_path / "good.ndjson"
    good.write_text(ndjson(sample("lg", 12)))
    r = rta("ingest", "--local", "-d", store, "--strict", "-", "--json", stdin=good.read_text())
    assert r.returncode == 0 and json.loads(r.stdout)["accepted"] == 12, r.stderr


def test_positions_are_one_based_for_humans(daemon: ServeProcess, tmp_path: Path) -> None:
    nd = tmp_path / "pos.ndjson"
    nd.write_text('{"type": "ok", "id": "pos-0"}\n\n{"type": ""}\n')
    cs = tmp_path / "pos.csv"
    cs.write_text('id,type,note\npos-1,ok,"two\nlines"\npos-2,,x\n')
    for path, where, index in ((nd, "line 3 (event 2)", 1), (cs, "line 4 (event 2)", 1)):
        r = rta("ingest", str(path), "--server", daemon.url)
        assert r.returncode == 4
        assert f"rejected {path} {where}: type is required" in r.stderr, r.stderr
        out = json.loads(rta("ingest", str(path), "--server", daemon.url, "--json").stdout)
        assert out["errors"][0]["index"] == index  # the API's 0-based index, unchanged
    local = rta("ingest", "--local", "-d", str(tmp_path / "store"), str(nd))  # columnar path
    assert f"rejected {nd} line 3 (event 2): type is required" in local.stderr, local.stderr


def test_stdin_is_sniffed(daemon: ServeProcess, tmp_path: Path) -> None:
    def send(data: bytes, *extra: str) -> subprocess.CompletedProcess[str]:
        return rta_bytes("ingest", "-", "--server", daemon.url, "--json", *extra, stdin=data)

    gz = send(gzip.compress(ndjson(sample("sg", 7)).encode()))
    assert gz.returncode == 0 and json.loads(gz.stdout)["accepted"] == 7, gz.stderr
    gz_array = send(gzip.compress(json.dumps(sample("sa2", 4)).encode()))
    assert json.loads(gz_array.stdout)["accepted"] == 4, gz_array.stderr
    events = sample("spq", 6)
    table = pa.table({k: [e[k] for e in events] for k in ("id", "type", "userId", "timestamp")})
    buf = pa.BufferOutputStream()
    pq.write_table(table, buf)
    parquet = send(buf.getvalue().to_pybytes())
    assert json.loads(parquet.stdout)["accepted"] == 6, parquet.stderr
    text = "id,type,userId,timestamp\n" + "".join(
        f"scv-{i},click,u1,{TS + i}\n" for i in range(3))
    one_error_line(send(text.encode()), 4, "stdin is not JSON", "--format csv")
    csv_ok = send(gzip.compress(text.encode()), "--format", "csv")
    assert json.loads(csv_ok.stdout)["accepted"] == 3, csv_ok.stderr
    check_same(daemon.url, "scv", [{"id": f"scv-{i}", "type": "click", "userId": "u1",
                                    "sessionId": None, "timestamp": TS + i, "properties": {}}
                                   for i in range(3)])
    for empty in (b"", b"\n\n"):
        r = send(empty)
        assert r.returncode == 0 and "warning: no events in stdin" in r.stderr, r.stderr
        assert json.loads(r.stdout)["accepted"] == 0
    r = rta("ingest", "-", "--server", daemon.url, stdin="")
    assert r.returncode == 0 and "accepted 0" in r.stdout and "warning: no events" in r.stderr


def test_progress_on_a_terminal_counts_events_and_bytes(daemon: ServeProcess,
                                                        tmp_path: Path) -> None:
    """stderr on a pseudo-terminal: the bar ends at 100% with the events sent counted."""
    path = tmp_path / "progress.ndjson"
    path.write_text(ndjson(sample("prog", 12_000)))
    master, slave = pty.openpty()
    env = {**os.environ, "COLUMNS": "160", "NO_COLOR": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "rta", "ingest", str(path), "--server",
                             daemon.url], stdout=subprocess.PIPE, stderr=slave, env=env)
    os.close(slave)
    screen = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        screen += chunk
    os.close(master)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0 and "accepted 12,000" in out.decode()
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen.decode(errors="replace"))
    assert "100% 12,000 events" in text, text[-500:]  # (it used to stay at "0 events")


def test_ctrl_c_says_what_was_stored(daemon: ServeProcess, tmp_path: Path) -> None:
    """Ctrl-C mid-ingest reports the events acknowledged so far (they stay stored), exit 1."""
    import signal
    import time

    path = tmp_path / "long.ndjson"
    path.write_text("".join(json.dumps({"type": "interrupt_probe", "userId": f"u{i % 50}"})
                            + "\n" for i in range(200_000)))
    proc = subprocess.Popen([sys.executable, "-m", "rta", "ingest", str(path), "--server",
                             daemon.url, "--batch-size", "200"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "NO_COLOR": "1"})

    def probes() -> int:
        return int(httpx.get(f"{daemon.url}/analytics/count",
                             params={"type": "interrupt_probe"}).json()["count"])

    deadline = time.monotonic() + 60
    while probes() == 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, err
    assert "interrupted" in err and "Traceback" not in err, err
    said = int(re.search(r"accepted ([\d,]+) \(stored\)", err).group(1).replace(",", ""))
    assert 0 < said < 200_000
    assert 0 <= probes() - said <= 200  # (at most the one batch in flight at the interrupt)
