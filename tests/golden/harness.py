"""The golden harness: the fixed data set, a real `rta serve`, the case runner, the normaliser.

Shared by `python -m tests.golden.record` (writes `answers/*.json`) and `test_golden.py`
(compares with them). Every case runs, in list order, against one fresh daemon loaded with
the same demo events, so answers depend only on the product, never on the machine or clock,
except for the values `normalise` replaces (documented there).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.golden.cases import CASES, Case, Cli, Http
from tests.support import ServeProcess

ANSWERS = Path(__file__).parent / "answers"

# -- the fixed data set --------------------------------------------------------------------------
DATA_EVENTS = 30_000
DATA_USERS = 1_500
DATA_DAYS = 14
DATA_SEED = 16
DATA_END_MS = 1_717_200_000_000  # 2024-06-01T00:00:00Z: every event is years before "now"
LOAD_BATCH = 7_500  # events per POST /events/batch when loading (ids included, in order)


def data_events() -> list[dict[str, Any]]:
    """The golden data set: DATA_EVENTS demo events (ids, users, sessions, timestamps fixed)."""
    from rta.core.demo import generate_arrow, table_events

    table = generate_arrow(DATA_EVENTS, users=DATA_USERS, days=DATA_DAYS, seed=DATA_SEED,
                           end_ms=DATA_END_MS)
    return list(table_events(table))


# -- the daemon and the environment --------------------------------------------------------------
# Settings pinned for the daemon and the CLI: nothing from the user's config file or RTA_*
# environment leaks in. A long result-cache TTL makes `cached` depend on case order only
# (with the default 30 s, a slow machine could see a repeated query miss the cache). The
# alert evaluator ticks once at start-up (no rules yet) and then not for an hour, so rule
# states and /stats' alert counters cannot depend on how fast the cases run.
PINNED_ENV = {"RTA_CACHE_TTL_MS": "3600000", "RTA_ALERT_INTERVAL_MS": "3600000",
              "NO_COLOR": "1", "COLUMNS": "200", "TZ": "UTC", "LC_ALL": "C.UTF-8"}


def clean_env(home: str) -> dict[str, str]:
    """The process environment minus RTA_* and the user's config, plus PINNED_ENV."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("RTA_", "XDG_")) and k not in
           ("PORT", "MAX_EVENTS", "RETENTION_DAYS", "ENABLE_COMPRESSION", "FORCE_COLOR")}
    env.update(PINNED_ENV, HOME=home, RTA_CONFIG=os.path.join(home, "config.toml"),
               XDG_CONFIG_HOME=os.path.join(home, ".config"),
               XDG_DATA_HOME=os.path.join(home, ".local", "share"))
    return env


@dataclass
class Daemon:
    """A running `rta serve` with the golden data set loaded, and a scratch directory."""

    url: str
    tmp: str
    env: dict[str, str]
    proc: ServeProcess
    started_ms: int


@contextmanager
def golden_daemon(*extra: str, settle: Callable[[httpx.Client], None] | None = None
                  ) -> Iterator[Daemon]:
    """Start `rta serve` (with `extra` arguments) on a fresh data dir and load the data set
    through POST /events/batch; `settle(client)` then waits for whatever must happen before
    the cases run (ClickHouse shipping)."""
    started = int(time.time() * 1000)
    tmp = tempfile.mkdtemp(prefix="rta-golden-")
    home = os.path.join(tmp, "home")
    os.makedirs(home)
    env = clean_env(home)
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)  # ServeProcess starts from os.environ
    try:
        proc = ServeProcess(os.path.join(tmp, "data"), *[e.replace("{tmp}", tmp)
                                                          for e in extra])
        proc.start(timeout=60)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    try:
        events = data_events()
        with httpx.Client(base_url=proc.url, timeout=120) as client:
            for i in range(0, len(events), LOAD_BATCH):
                r = client.post("/events/batch", json=events[i:i + LOAD_BATCH])
                assert r.status_code == 202 and r.json()["accepted"] == len(
                    events[i:i + LOAD_BATCH]), r.text
            if settle is not None:
                settle(client)
        yield Daemon(proc.url, tmp, env, proc, started)
    finally:
        if proc.proc is not None and proc.proc.poll() is None:
            proc.stop()
        shutil.rmtree(tmp, ignore_errors=True)


# -- running cases -------------------------------------------------------------------------------
@dataclass
class Run:
    """Everything one pass over CASES produced: normalised answers by area, then case name."""

    answers: dict[str, dict[str, Any]] = field(default_factory=dict)
    seconds: float = 0.0


def run_cases(daemon: Daemon) -> Run:
    """Run every case in order (a wave of CLI cases concurrently); captured values feed
    later cases' paths, bodies and args."""
    t0 = time.monotonic()
    run = Run()
    ids: dict[str, str] = {}
    norm = Normaliser(daemon, ids)
    results: list[tuple[Case, dict[str, Any]]] = []
    with httpx.Client(base_url=daemon.url, timeout=60) as client, \
            ThreadPoolExecutor(WAVE_WORKERS) as pool:
        i = 0
        while i < len(CASES):
            case = CASES[i]
            if isinstance(case, Cli) and case.wave:
                wave = [case]
                while i + len(wave) < len(CASES) and isinstance(nxt := CASES[i + len(wave)], Cli) \
                        and nxt.wave == case.wave:
                    wave.append(nxt)
                assert not any(c.capture for c in wave), "no captures inside a wave"
                answers = pool.map(lambda c: run_cli(daemon, c, ids)[0], wave)
                results += zip(wave, answers, strict=True)
                i += len(wave)
                continue
            answer, payload = (run_http(client, case, ids) if isinstance(case, Http)
                               else run_cli(daemon, case, ids))
            for var, pointer in case.capture.items():
                value = lookup(payload, pointer)
                if isinstance(value, str) and value:  # (an unexpected error captures nothing)
                    ids[var] = value
            results.append((case, answer))
            i += 1
    for case, answer in results:  # after the run: every captured value is known
        area = run.answers.setdefault(case.area, {})
        assert case.name not in area, f"duplicate case name {case.area}/{case.name}"
        area[case.name] = norm(answer)
    run.seconds = time.monotonic() - t0
    return run


WAVE_WORKERS = 4


def fill(value: Any, ids: dict[str, str]) -> Any:
    """Substitute `{var}` placeholders (captured values) in strings, lists and dicts."""
    if isinstance(value, str):
        return re.sub(r"\{(\w+)\}", lambda m: ids.get(m.group(1), m.group(0)), value)
    if isinstance(value, list):
        return [fill(v, ids) for v in value]
    if isinstance(value, tuple):
        return tuple(fill(v, ids) for v in value)
    if isinstance(value, dict):
        return {fill(k, ids): fill(v, ids) for k, v in value.items()}
    return value


def lookup(payload: Any, pointer: str) -> Any:
    """`a.b.0.c` into nested dicts and lists; None where the path does not exist."""
    for part in pointer.split("."):
        try:
            payload = payload[int(part)] if isinstance(payload, list) else payload[part]
        except (KeyError, IndexError, TypeError, ValueError):
            return None
    return payload


KEPT_HEADERS = ("content-type", "location", "content-disposition", "x-export-rows",
                "x-export-format", "allow", "retry-after")


def run_http(client: httpx.Client, case: Http, ids: dict[str, str]) -> tuple[dict[str, Any], Any]:
    headers = dict(fill(case.headers, ids))
    content: bytes | None = None
    if case.raw is not None:
        content = case.raw if isinstance(case.raw, bytes) else case.raw.encode()
    elif case.body is not None:
        content = json.dumps(fill(case.body, ids)).encode()
        headers.setdefault("Content-Type", "application/json")
    if case.gzip and content is not None:
        content = gzip.compress(content, mtime=0)
        headers["Content-Encoding"] = "gzip"
    params = [(k, fill(v, ids)) for k, v in case.params]
    r = client.request(case.method, fill(case.path, ids), params=params, content=content,
                       headers=headers)
    answer: dict[str, Any] = {"status": r.status_code,
                              "headers": {k: r.headers[k] for k in KEPT_HEADERS
                                          if k in r.headers}}
    payload = decode(r.content, case.decode or _kind(r.headers.get("content-type", "")))
    answer["body"] = payload
    return answer, payload


def _kind(content_type: str) -> str:
    if "json" in content_type:
        return "json"
    if content_type.startswith("text/"):
        return "text"
    return "sha256"


def decode(data: bytes, kind: str) -> Any:
    """A body or file as comparable data: parsed JSON, rows for CSV/NDJSON/Parquet/XLSX."""
    if kind == "json":
        try:
            return json.loads(data)
        except ValueError:
            return {"notJson": data.decode(errors="replace")}
    if kind == "ndjson":
        return [json.loads(line) for line in data.decode().splitlines() if line.strip()]
    if kind in ("text", "csv"):
        return data.decode(errors="replace")
    if kind == "metrics":  # values are counters and timings: only which metrics exist
        return sorted({line.split()[2] for line in data.decode().splitlines()
                       if line.startswith("# TYPE")})
    if kind == "parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(io.BytesIO(data))
        return {"schema": [f"{f.name}: {f.type}" for f in table.schema],
                "rows": [{k: v.isoformat() if hasattr(v, "isoformat") else v
                          for k, v in row.items()} for row in table.to_pylist()]}
    if kind == "xlsx":
        import openpyxl

        book = openpyxl.load_workbook(io.BytesIO(data), read_only=True)
        return {ws.title: [list(row) for row in ws.iter_rows(values_only=True)]
                for ws in book.worksheets}
    return {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}


def run_cli(daemon: Daemon, case: Cli, ids: dict[str, str]) -> tuple[dict[str, Any], Any]:
    out_dir = os.path.join(daemon.tmp, "out")
    os.makedirs(out_dir, exist_ok=True)
    args = [a.replace("{out}", out_dir) for a in fill(list(case.args), ids)]
    proc = subprocess.run([sys.executable, "-m", "rta", *args], input=case.stdin, text=True,
                          capture_output=True, env={**daemon.env, "RTA_SERVER": daemon.url},
                          timeout=120, check=False, cwd=daemon.tmp)
    stdout: Any = proc.stdout
    payload: Any = None
    if "--json" in args and proc.stdout.strip():
        stdout = decode(proc.stdout.encode(), "ndjson" if case.decode == "ndjson" else "json")
        payload = stdout
    answer: dict[str, Any] = {"exit": proc.returncode, "stdout": stdout,
                              "stderr": proc.stderr}
    if case.output:
        path = os.path.join(out_dir, case.output)
        kind = case.output.rsplit(".", 1)[-1]
        if os.path.exists(path):
            with open(path, "rb") as f:
                answer["file"] = decode(f.read(), kind)
            os.remove(path)
        else:
            answer["file"] = None
    return answer, payload


# -- the normaliser ------------------------------------------------------------------------------
# Keys whose values are the daemon's own measurements or clock readings, never query results.
VOLATILE_KEYS = frozenset({
    "createdAt", "updatedAt",   # metadata documents (alerts, dashboards, segments, tokens)
    "uptime", "startedAt",      # /health
    "took", "tookMs", "queryTimeMs", "durationMs", "elapsedMs",  # how long a query ran
    "seconds", "eventsPerSecond",  # CLI ingest/export summaries
    "version",                  # the package version (and store version counters)
    "lastEvaluated", "lastEvaluatedAt", "evaluatedAt", "lastCheck",  # alert evaluator ticks
    "generatedAt", "computedAt", "resolvedAt", "asOf",  # "as of now" stamps
    # bytes of compressed exports (XLSX, Parquet) vary with the receivedAt column (ingest
    # time, the wall clock), so the running total of exported bytes in /stats does too
    "bytesExported",
    # memory held by the store: differs between identical runs once the ingest cases ran
    "bytesInMemory",
})
COMPRESSED_FORMATS = ("xlsx", "parquet")


class Normaliser:
    """Replace only what is truly volatile; everything else is compared exactly.

    1. captured values (server-generated document ids, token secrets and hints) -> `<var>`,
       wherever they appear (JSON or table text); event ids the daemon generates (UUIDv8:
       a per-process random prefix and a counter) -> `<server-id-N>`, N by first appearance;
    2. the daemon's URL -> `<server>`, the scratch directory -> `<tmp>`;
    3. values of VOLATILE_KEYS -> `<volatile>` (when not null), in JSON and in the CLI's
       key/value tables;
    4. clock readings: epoch-ms integers, ISO-8601 / `YYYY-MM-DD HH:MM` / `YYYYMMDD-HHMMSS`
       texts from 35 days before the run (relative ranges such as last_30d) to 3 days after
       it -> `<now>` (the data set ends 2024-06-01, so no query result can be that recent);
    5. in CLI text only: how long a command took (`in 0.25s`, `(1,234/s)`), and trailing
       blanks (rich pads a key/value row to the widest value, volatile ones included);
    6. `bytes` of a compressed (XLSX, Parquet) export and /stats' `bytesExported`: they
       depend on the receivedAt column (the ingest wall clock); the decoded rows are compared.
    """

    def __init__(self, daemon: Daemon, ids: dict[str, str]) -> None:
        self.daemon = daemon
        self.ids = ids
        self.server_ids: dict[str, str] = {}
        self.lo = daemon.started_ms - 35 * 86_400_000  # (relative ranges up to last_30d)
        self.hi = int(time.time() * 1000) + 3 * 86_400_000

    def __call__(self, value: Any, key: str | None = None) -> Any:
        if key in VOLATILE_KEYS and value is not None:
            return "<volatile>"
        if isinstance(value, dict):
            out = {k: self(v, k) for k, v in value.items()}
            if out.get("format") in COMPRESSED_FORMATS and isinstance(out.get("bytes"), int):
                out["bytes"] = "<volatile>"  # `rta export --json` of a compressed format
            return out
        if isinstance(value, list):
            return [self(v) for v in value]
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and self.lo <= value <= self.hi:
            return "<now>"
        if isinstance(value, str):
            return self.text(value)
        return value

    def text(self, s: str) -> str:
        for var, value in sorted(self.ids.items(), key=lambda kv: -len(kv[1])):
            if len(value) >= 6 and not var.startswith("raw_"):
                s = s.replace(value, f"<{var}>")
        s = _UUID8.sub(self._server_id, s)
        s = s.replace(self.daemon.url, "<server>").replace(self.daemon.tmp, "<tmp>")
        s = _ISO.sub(lambda m: "<now>" if self._recent(m.group(0)) else m.group(0), s)
        s = _COMPACT.sub(lambda m: "<now>" if self._recent(m.group(0)) else m.group(0), s)
        s = _MS.sub(lambda m: "<now>" if self.lo <= int(m.group(0)) <= self.hi
                    else m.group(0), s)
        if "\n" in s:  # CLI text
            s = _TOOK.sub(r"\1<s>s", s)
            s = _RATE.sub("(<n>/s)", s)
            s = _TABLE_ROW.sub(lambda m: m.group(1) + "<volatile>", s)
            s = "\n".join(line.rstrip() for line in s.split("\n"))
        return s

    def _server_id(self, m: re.Match[str]) -> str:
        return self.server_ids.setdefault(m.group(0), f"<server-id-{len(self.server_ids) + 1}>")

    def _recent(self, text: str) -> bool:
        from datetime import UTC, datetime

        text = text.replace("Z", "+00:00").replace(" ", "T")
        try:
            stamp = (datetime.strptime(text, "%Y%m%d-%H%M%S") if len(text) == 15
                     else datetime.fromisoformat(text))
        except ValueError:
            return False
        if stamp.tzinfo is None:
            stamp = stamp.replace(tzinfo=UTC)
        return self.lo <= stamp.timestamp() * 1000 <= self.hi


_ISO = re.compile(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d(?::\d\d(?:\.\d+)?)?(?:Z|[+-]\d\d:\d\d)?")
_COMPACT = re.compile(r"(?<!\d)\d{8}-\d{6}(?!\d)")
_MS = re.compile(r"(?<!\d)1[5-9]\d{11}(?!\d)")
_UUID8 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
_TOOK = re.compile(r"(\bin )\d+(?:\.\d+)?s\b")
_RATE = re.compile(r"\([\d,.]+/s\)")
_KEYS = "|".join(sorted(VOLATILE_KEYS))
_TABLE_ROW = re.compile(rf"(^[ \t]*(?:\w+\.)*(?:{_KEYS})[ \t]+)\S+", re.M)


# -- answers and diffs ---------------------------------------------------------------------------
def write_answers(run: Run) -> list[Path]:
    ANSWERS.mkdir(exist_ok=True)
    for old in ANSWERS.glob("*.json"):
        old.unlink()
    paths = []
    for area, answers in run.answers.items():
        path = ANSWERS / f"{area}.json"
        path.write_text(json.dumps(answers, indent=1, ensure_ascii=False, sort_keys=False)
                        + "\n")
        paths.append(path)
    return paths


def read_answers() -> dict[str, dict[str, Any]]:
    return {p.stem: json.loads(p.read_text()) for p in sorted(ANSWERS.glob("*.json"))}


def differences(expected: Any, actual: Any, path: str = "") -> Iterator[str]:
    """Readable differences, one line each, with the JSON path at fault."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        for key in expected.keys() | actual.keys():
            sub = f"{path}.{key}" if path else str(key)
            if key not in actual:
                yield f"{sub}: missing (expected {_short(expected[key])})"
            elif key not in expected:
                yield f"{sub}: unexpected {_short(actual[key])}"
            else:
                yield from differences(expected[key], actual[key], sub)
    elif isinstance(expected, list) and isinstance(actual, list):
        if len(expected) != len(actual):
            yield f"{path}: {len(actual)} items, expected {len(expected)}"
        for i, (e, a) in enumerate(zip(expected, actual, strict=False)):
            yield from differences(e, a, f"{path}[{i}]")
    elif isinstance(expected, str) and isinstance(actual, str) and "\n" in expected + actual:
        if expected != actual:
            import difflib

            lines = difflib.unified_diff(expected.splitlines(), actual.splitlines(),
                                         "expected", "actual", lineterm="", n=1)
            yield f"{path}: text differs\n    " + "\n    ".join(list(lines)[:40])
    elif expected != actual or type(expected) is not type(actual):
        yield f"{path}: {_short(actual)}, expected {_short(expected)}"


def _short(value: Any, limit: int = 300) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[:limit] + "…"
