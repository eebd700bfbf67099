"""`rta ingest FILE` to a daemon sends Arrow batches (read by pyarrow), keeps line numbers in
its error report, and falls back to JSON against a daemon that answers Arrow with 415."""

from __future__ import annotations

import gzip
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.cli.conftest import rta
from tests.support import ServeProcess

TS = 1_700_000_000_000


def sample(tag: str, n: int = 40) -> list[dict[str, Any]]:
    return [{"id": f"{tag}-{i}", "type": "pageview" if i % 2 else "click",
             "userId": f"u{i % 4}", "sessionId": f"s{i % 5}", "timestamp": TS + i,
             "properties": {"page": f"/p{i % 3}", "n": i, "ok": i % 2 == 0,
                            "nested": {"depth": i % 7}}} for i in range(n)]


class Recorder:
    """A proxy in front of the daemon that records each batch's Content-Type; `old=True`
    answers Arrow bodies 415, as a daemon before Arrow batches does."""

    def __init__(self, target: str, old: bool) -> None:
        self.kinds: list[str] = []
        self.old = old
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                kind = self.headers["Content-Type"]
                recorder.kinds.append(kind)
                if old and "arrow" in kind:
                    status, answer = 415, json.dumps({"error": {
                        "code": "unsupported_media_type", "message": "no", "details": []}})
                    self._answer(status, answer.encode())
                    return
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() in ("content-type", "content-encoding")}
                r = httpx.post(target + self.path, content=body, headers=headers)
                self._answer(r.status_code, r.content)

            def _answer(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def recorder(daemon: ServeProcess, request: pytest.FixtureRequest) -> Iterator[Recorder]:
    proxy = Recorder(daemon.url, old=request.param)
    yield proxy
    proxy.close()


def stored(url: str, prefix: str) -> list[dict[str, Any]]:
    events = httpx.get(f"{url}/events", params={"limit": 10_000}).json()["events"]
    return sorted(({k: v for k, v in e.items() if k != "receivedAt"} for e in events
                   if e["id"].startswith(prefix + "-")), key=lambda e: e["id"])


def expected(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for e in events:
        props = dict(e["properties"])
        props.update({f"nested.{k}": v for k, v in props.pop("nested").items()})
        out.append({**e, "personId": e.get("userId"), "properties": props})
    return sorted(out, key=lambda e: e["id"])


@pytest.mark.parametrize("recorder", [False, True], ids=["arrow", "old-daemon"],
                         indirect=True)
def test_ndjson_gzip_and_parquet_arrive_whole(daemon: ServeProcess, recorder: Recorder,
                                              tmp_path: Path) -> None:
    tag = "old" if recorder.old else "new"
    events = sample(tag)
    nd = tmp_path / "events.ndjson.gz"
    nd.write_bytes(gzip.compress(("\n".join(json.dumps(e) for e in events[:25]) + "\n\n")
                                 .encode()))
    rows = [{**{k: v for k, v in e.items() if k != "properties"}, **{
        f"properties.{k}": v for k, v in e["properties"].items() if k != "nested"},
        "properties.nested.depth": e["properties"]["nested"]["depth"]} for e in events[25:]]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "events.parquet")
    r = rta("ingest", str(nd), str(tmp_path / "events.parquet"), "--server", recorder.url,
            "--json", "--batch-size", "10")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["accepted"] == 40
    assert stored(daemon.url, tag) == expected(events)
    arrow = [k for k in recorder.kinds if "arrow" in k]
    sent_json = [k for k in recorder.kinds if "arrow" not in k]
    if recorder.old:  # refused Arrow batches (at least the first) went again as JSON
        assert arrow and len(sent_json) == 5
    else:  # 25 NDJSON events in batches of 10, 15 Parquet rows: all as Arrow
        assert (len(arrow), sent_json) == (5, [])


@pytest.mark.parametrize("recorder", [False], indirect=True)
def test_rejected_events_keep_their_lines(daemon: ServeProcess, recorder: Recorder,
                                         tmp_path: Path) -> None:
    lines = [json.dumps(e) for e in sample("ln", 12)]
    lines[3] = json.dumps({"type": "", "id": "ln-bad-1"})
    lines[9] = json.dumps({"type": "x", "id": "ln-bad-2", "userId": "u" * 300})
    path = tmp_path / "bad.ndjson"
    path.write_text("\n".join(lines[:6]) + "\n\n" + "\n".join(lines[6:]) + "\n")
    r = rta("ingest", str(path), "--server", recorder.url, "--json", "--batch-size", "5")
    assert r.returncode == 4, r.stderr
    out = json.loads(r.stdout)
    assert (out["accepted"], out["rejected"]) == (10, 2)
    assert [(e["index"], e["line"]) for e in out["errors"]] == [(3, 4), (9, 11)]
    assert all("arrow" in k for k in recorder.kinds)
