"""CLI conventions checked across the whole command tree, against a real `rta serve`:

- every command that prints data has `--json`, documented in docs/cli.md, and with it prints
  valid JSON (NDJSON for streams) on stdout and nothing else;
- every client command exits 3 when the daemon is unreachable, with nothing on stdout;
- usage errors exit 2, before any connection is tried;
- confirmations go to stderr; NO_COLOR and FORCE_COLOR are honoured.

A new command fails `test_every_command_is_covered` until it is added to ARGS here and to
the JSON tables in scripts/generate_docs.py.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from rta.cli.main import app
from rta.cli.output import EXIT_UNREACHABLE, EXIT_USAGE
from scripts.generate_docs import API_JSON, CLI_JSON, leaf_commands
from tests.clickhouse.harness import CHDB_DIR
from tests.support import ServeProcess

# Arguments that make each command succeed against the loaded daemon; {name} placeholders
# come from the `world` fixture. Streams (tail, alerts watch) are tested on their own.
ARGS: dict[str, list[str]] = {
    "ingest": ["{events_file}"],
    "events": ["--limit", "3"],
    "stats": [],
    "health": [],
    "top": [],
    "export": ["-o", "{export_file}", "--limit", "10"],
    "query aggregate": ["--range", "last_7d", "--interval", "1d"],
    "query count": ["--group-by", "type"],
    "query unique": [],
    "query top": ["page"],
    "query funnel": ["--step", "pageview", "--step", "purchase"],
    "query cohort": ["--entry", "signup", "--periods", "2"],
    "query abtest": ["--metric", "purchase"],
    "query segment": ["--performed", "purchase"],
    "query paths": ["--start", "pageview", "--steps", "3"],
    "query stickiness": ["pageview", "--range", "last_7d"],
    "query lifecycle": ["pageview", "--interval", "week"],
    "query web": ["--range", "last_7d"],
    "alerts list": [],
    "alerts create": ["--name", "made by test", "-t", "error", "--threshold", "1000"],
    "alerts show": ["{alert}"],
    "alerts delete": ["{alert_doomed}"],
    "alerts history": [],
    "alerts test": ["{alert}", "--range", "last_1h"],
    "alerts silence": ["{alert}", "--for", "1h"],
    "alerts silences": [],
    "alerts unsilence": ["{silence_doomed}"],
    "reports create": ["--dashboard", "{dashboard}", "--schedule", "0 9 * * 1", "--tz",
                       "Europe/Berlin", "--to", "email:ops@example.com"],
    "reports list": [],
    "reports show": ["{report}"],
    "reports send": ["{report}"],
    "reports delete": ["{report_doomed}"],
    "reports history": ["{report}"],
    "dashboards list": [],
    "dashboards templates": [],
    "dashboards create": ["--template", "overview", "--name", "made by test"],
    "dashboards show": ["{dashboard}"],
    "dashboards open": ["{dashboard}", "--no-browser"],
    "dashboards delete": ["{dashboard_doomed}"],
    "dashboards share": ["{dashboard}", "--expires", "1d"],
    "dashboards shares": ["{dashboard}"],
    "dashboards unshare": ["{dashboard}"],
    "annotate": ["deployed by test", "--at", "1h"],
    "annotations list": [],
    "annotations delete": ["{annotation_doomed}"],
    "segment create": ["made by test", "--performed", "signup"],
    "segment list": [],
    "segment show": ["{segment}"],
    "segment delete": ["{segment_doomed}"],
    "persons merge": ["{person}", "{person_other}"],
    "persons show": ["{person}"],
    "groups list": ["company"],
    "groups show": ["company", "acme"],
    "persons list": ["--search", "{person}", "--limit", "5"],
    "persons delete": ["{person_doomed}", "--yes"],
    "token create": ["--scope", "read", "--name", "made by test"],
    "token list": [],
    "token revoke": ["{token_doomed}"],
    "config show": [],
    "config path": [],
    "config set": ["cache_ttl_ms", "1234"],
    "demo generate": ["-n", "20", "-o", "{demo_file}"],
    "clickhouse init": ["--clickhouse-url", "{chdb}"],
    "clickhouse status": ["--clickhouse-url", "{chdb}"],
    "clickhouse migrate": ["--data-dir", "{empty_store}", "--clickhouse-url", "{chdb}"],
}
STREAMS = {"tail", "alerts watch"}
# This daemon has no SMTP server: a report sent now prints its run (JSON) and exits 1.
EXIT_CODES = {"reports send": 1}
NO_DATA = {"serve"}  # prints no data: only its startup lines on stderr
LOCAL = {"config show", "config path", "config set", "demo generate", "clickhouse init",
         "clickhouse status", "clickhouse migrate"}
# A --where the CLI cannot parse is a usage error (2). Known deviations pinned by their own
# tests: `tail` exits 4 (tests/cli/test_live_cli.py).
WHERE_COMMANDS = {"events": [], "export": ["-o", "-"], "query aggregate": [],
                  "query count": [], "query unique": [], "query top": ["page"],
                  "query funnel": ["--step", "a", "--step", "b"],
                  "query abtest": ["--metric", "m"], "query segment": [],
                  "query paths": [], "query stickiness": ["a"], "query lifecycle": ["a"],
                  "query web": ["--by", "pages"],
                  "alerts create": ["--name", "x", "--threshold", "1"],
                  "segment create": ["x"], "tail": []}

COMMANDS = {path: cmd for path, cmd, _ctx in leaf_commands()}
runner = CliRunner()


def has_param(path: str, name: str) -> bool:
    return any(p.name == name for p in COMMANDS[path].params)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def world(daemon: ServeProcess, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Demo events plus an alert, dashboard, segment and token (and doomed copies to delete)."""
    from rta.core.demo import generate_arrow, table_events

    tmp = tmp_path_factory.mktemp("conventions")
    now = int(time.time() * 1000)
    events = list(table_events(generate_arrow(1500, users=150, days=3, seed=11, end_ms=now)))
    with httpx.Client(base_url=daemon.url, timeout=30) as http:
        r = http.post("/events/batch", json=events)
        assert r.status_code == 202, r.text
        ids: dict[str, str] = {}
        for suffix in ("", "_doomed"):
            ids["alert" + suffix] = http.post("/alerts", json={
                "name": "conv" + suffix, "condition": {"type": "threshold", "eventType": "error",
                                                       "threshold": 1e9}}).json()["id"]
            ids["dashboard" + suffix] = http.post("/dashboards/template", json={
                "template": "overview", "name": "conv" + suffix}).json()["id"]
            ids["segment" + suffix] = http.post("/segments", json={
                "name": "conv" + suffix,
                "filters": [{"eventType": "purchase"}]}).json()["id"]
        r = http.post("/events", json={  # (a group for `groups list|show`)
            "type": "$groupidentify", "userId": "u-groups", "properties": {
                "$group_type": "company", "$group_key": "acme",
                "$groups": {"company": "acme"}, "$group_set": {"name": "Acme"}}})
        assert r.status_code == 202, r.text
        ids["annotation_doomed"] = http.post("/annotations", json={
            "text": "doomed"}).json()["id"]
        ids["token_doomed"] = http.post("/tokens", json={"scope": "read",
                                                         "name": "doomed"}).json()["id"]
        for suffix in ("", "_doomed"):
            ids["report" + suffix] = http.post("/reports", json={
                "dashboardId": ids["dashboard"], "schedule": "0 9 * * 1",
                "to": ["email:ops@example.com"]}).json()["id"]
        # (one alert's silence: a silence of every alert would mute `alerts watch` below)
        ids["silence_doomed"] = http.post(f"/alerts/{ids['alert']}/silence",
                                          json={"for": "1m"}).json()["id"]
    # two distinct ids of the demo (never identified, so merging them needs no force)
    users = sorted({e["userId"] for e in events})
    ids.update(person=users[0], person_other=users[1], person_doomed=users[-1])
    (tmp / "events.ndjson").write_text("".join(json.dumps(e) + "\n" for e in events[:5]))
    ids.update(url=daemon.url, events_file=str(tmp / "events.ndjson"),
               export_file=str(tmp / "out.csv"), demo_file=str(tmp / "demo.ndjson"),
               config=str(tmp / "config.toml"), empty_store=str(tmp / "empty-store"),
               # (the process's one chdb engine path, shared with tests/clickhouse)
               chdb=f"chdb://{CHDB_DIR}?database=cli_conventions")
    return ids


def fill(args: list[str], world: dict[str, str]) -> list[str]:
    return [a.format(**world) for a in args]


def invoke(args: list[str], world: dict[str, str] | None = None, **env: str) -> Any:
    """Run the CLI in-process with an isolated config file and no colour."""
    config = world["config"] if world else os.path.join(os.devnull, "none.toml")
    return runner.invoke(app, args, env={"RTA_CONFIG": config, "NO_COLOR": "1",
                                         "COLUMNS": "120", **env})


def test_every_command_is_covered() -> None:
    for path in COMMANDS:
        if path in NO_DATA:
            continue
        assert has_param(path, "as_json"), f"rta {path} prints data but has no --json"
        assert path in ARGS or path in STREAMS, f"add rta {path} to ARGS in this test"
        assert path in API_JSON or path in CLI_JSON, \
            f"document rta {path}'s --json in scripts/generate_docs.py (API_JSON or CLI_JSON)"
    assert set(ARGS) | STREAMS | NO_DATA == set(COMMANDS)


@pytest.mark.parametrize("path", sorted(ARGS))
def test_json_is_valid_and_alone_on_stdout(path: str, world: dict[str, str]) -> None:
    args = [*path.split(), *fill(ARGS[path], world), "--json"]
    if path not in LOCAL:
        args += ["--server", world["url"]]
    r = invoke(args, world)
    assert r.exit_code == EXIT_CODES.get(path, 0), f"rta {' '.join(args)}: {r.stdout}{r.stderr}"
    data = json.loads(r.stdout)
    assert isinstance(data, dict), r.stdout
    assert "\x1b[" not in r.stdout
    if path in CLI_JSON and path != "config show":
        missing = set(CLI_JSON[path]) - set(data)
        assert not missing, f"rta {path} --json lacks documented keys {missing}"
    if path == "config show":
        assert all(set(v) == {"value", "source"} for v in data.values())


def test_streams_print_ndjson(world: dict[str, str]) -> None:
    """`tail` and `alerts watch` with --json: one JSON object per line, nothing else."""
    env = {**os.environ, "NO_COLOR": "1", "RTA_CONFIG": world["config"]}
    for args, trigger in (
            (["tail", "--type", "conv_ping", "--count", "2"],
             [{"type": "conv_ping", "userId": "u1"}, {"type": "conv_ping", "userId": "u2"}]),
            (["alerts", "watch", "--count", "1"], None)):
        proc = subprocess.Popen([sys.executable, "-m", "rta", *args, "--json", "--server",
                                 world["url"]], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, env=env)
        assert proc.stderr is not None
        first = proc.stderr.readline()  # "following events on ..." once subscribed
        assert "on " + world["url"] in first, first
        with httpx.Client(base_url=world["url"], timeout=30) as http:
            if trigger is None:
                http.post("/alerts", json={"name": "conv watch", "cooldown": 0, "condition": {
                    "type": "threshold", "eventType": "conv_boom", "threshold": 0,
                    "timeWindow": "10s"}})
                trigger = [{"type": "conv_boom"}]
            deadline = time.monotonic() + 20
            while proc.poll() is None and time.monotonic() < deadline:
                http.post("/events/batch", json=trigger)
                time.sleep(0.3)
        out, err = proc.communicate(timeout=20)
        assert proc.returncode == 0, err
        lines = out.splitlines()
        assert lines and all(isinstance(json.loads(line), dict) for line in lines), out


@pytest.mark.parametrize("path", sorted(p for p in COMMANDS if has_param(p, "server")))
def test_unreachable_daemon_exits_3(path: str, tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    world = {"events_file": str(tmp_path / "e.ndjson"), "export_file": str(tmp_path / "x.csv"),
             "config": str(tmp_path / "c.toml"), "demo_file": str(tmp_path / "d.ndjson"),
             "alert": "a", "alert_doomed": "a", "dashboard": "d", "dashboard_doomed": "d",
             "segment": "s", "segment_doomed": "s", "token_doomed": "t", "report": "r",
             "report_doomed": "r", "silence_doomed": "s",
             "annotation_doomed": "n", "person": "p", "person_other": "q",
             "person_doomed": "d"}
    (tmp_path / "e.ndjson").write_text('{"type": "x"}\n')
    args = [*path.split(), *fill(ARGS.get(path, []), world), "--server", dead]
    for extra in ([], ["--json"]):
        r = invoke(args + extra, world)
        assert r.exit_code == EXIT_UNREACHABLE, f"rta {' '.join(args)}: {r.stdout}{r.stderr}"
        assert r.stdout == "" and "cannot reach the rta daemon" in r.stderr
    if path == "ingest":
        r = invoke([*args, "--stream"], world)
        assert r.exit_code == EXIT_UNREACHABLE and r.stdout == "", r.stderr


@pytest.mark.parametrize("path", sorted(COMMANDS))
def test_usage_errors_exit_2(path: str) -> None:
    r = invoke([*path.split(), "--no-such-option"])
    assert r.exit_code == EXIT_USAGE and r.stdout == "", r.stderr
    assert "No such option" in r.stderr
    if any(p.required for p in COMMANDS[path].params):
        r = invoke([*path.split()])
        assert r.exit_code == EXIT_USAGE and r.stdout == "", r.stderr


def test_unknown_command_exits_2() -> None:
    for args in (["frobnicate"], ["query", "frobnicate"]):
        r = invoke(args)
        assert r.exit_code == EXIT_USAGE and r.stdout == "", r.stderr


@pytest.mark.parametrize("path", sorted(WHERE_COMMANDS))
def test_unreadable_where_is_a_usage_error(path: str) -> None:
    """Parsed before any connection: exit 2, not 3, against a dead server."""
    args = [*path.split(), *WHERE_COMMANDS[path], "--where", "nonsense",
            "--server", f"http://127.0.0.1:{free_port()}"]
    r = invoke(args)
    assert r.exit_code == EXIT_USAGE, f"rta {' '.join(args)}: {r.stderr}"
    assert r.stdout == "" and "nonsense" in r.stderr


def test_confirmations_go_to_stderr(world: dict[str, str]) -> None:
    with httpx.Client(base_url=world["url"], timeout=30) as http:
        dash = http.post("/dashboards/template", json={"template": "errors"}).json()["id"]
    for args in (["dashboards", "delete", dash, "--server", world["url"]],
                 ["segment", "create", "conv quiet", "--performed", "login",
                  "--server", world["url"]],
                 ["config", "set", "cache_ttl_ms", "999"]):
        r = invoke(args, world)
        assert r.exit_code == 0 and r.stdout == "" and r.stderr.strip(), (args, r.stderr)
    r = invoke(["config", "show"], world)
    assert r.exit_code == 0 and "cache_ttl_ms" in r.stdout and "file:" in r.stdout


def colour_run(args: list[str], world: dict[str, str], **env: str) -> Any:
    full = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR")}
    full.update(TERM="xterm-256color", COLUMNS="120", RTA_CONFIG=world["config"], **env)
    return subprocess.run([sys.executable, "-m", "rta", *args], env=full, capture_output=True,
                          text=True, timeout=60, check=False)


def test_no_color_and_force_color(world: dict[str, str]) -> None:
    table = ["alerts", "list", "--server", world["url"]]
    dead = ["stats", "--server", f"http://127.0.0.1:{free_port()}"]
    forced = colour_run(table, world, FORCE_COLOR="1")
    assert forced.returncode == 0 and "\x1b[" in forced.stdout
    forced_err = colour_run(dead, world, FORCE_COLOR="1")
    assert forced_err.returncode == 3 and "31m" in forced_err.stderr
    plain = colour_run(table, world)  # not a terminal: no escapes at all
    assert plain.returncode == 0 and "\x1b[" not in plain.stdout
    no_colour = colour_run(dead, world, FORCE_COLOR="1", NO_COLOR="1")
    assert no_colour.returncode == 3 and "31m" not in no_colour.stderr
    as_json = colour_run([*table, "--json"], world, FORCE_COLOR="1")
    assert json.loads(as_json.stdout)["alerts"]


def test_closed_sets_are_checked_by_the_cli_and_match_the_core() -> None:
    """A typo in a closed set is a usage error before any request (the server is dead)."""
    from rta.cli import choices
    from rta.core import alerts, auth
    from rta.core.embedded import timeseries
    from rta.core.queries import behaviour_specs as specs
    from rta.core.queries import web_specs

    assert choices.FUNNEL_ORDERS == specs.ORDERS and choices.FUNNEL_UNITS == specs.UNITS
    assert choices.RETENTION_TYPES == specs.RETENTION_TYPES
    assert choices.RETENTION_CRITERIA == specs.CRITERIA
    assert choices.SERIES_AGGREGATIONS == timeseries.AGGREGATIONS
    assert choices.ALERT_AGGREGATIONS == alerts.AGGREGATIONS
    assert tuple(alerts.OPERATOR_SYMBOLS) == choices.ALERT_OPERATORS
    assert choices.TOKEN_SCOPES == auth.SCOPES
    from rta.core.queries import paths_specs
    assert choices.PATH_TYPES == paths_specs.PATH_TYPES
    assert choices.PATH_UNITS == paths_specs.UNITS
    from rta.cli import alert_metric
    from rta.core import alert_metrics
    from rta.core.queries import stickiness_specs as sticky

    assert tuple(alert_metrics.METRICS) == alert_metric.ALERT_METRICS
    assert alert_metric.STICKINESS_INTERVALS == sticky.STICKINESS_INTERVALS

    from rta.cli import query_periods
    from rta.core.queries import periods, stickiness_specs

    assert query_periods.STICKINESS_INTERVALS == stickiness_specs.STICKINESS_INTERVALS
    assert query_periods.LIFECYCLE_INTERVALS == periods.INTERVALS

    assert (*web_specs.DIMENSIONS, "realtime") == choices.WEB_DIMENSIONS
    dead = ["--server", f"http://127.0.0.1:{free_port()}"]
    for args in (["query", "funnel", "--step", "a", "--step", "b", "--order", "sideways"],
                 ["query", "top", "page", "--sort", "bogus"],
                 ["query", "aggregate", "-a", "median"],
                 ["query", "cohort", "--entry", "signup", "--type", "bogus"],
                 ["query", "stickiness", "a", "--interval", "month"],
                 ["query", "lifecycle", "a", "--interval", "hour"],
                 ["token", "create", "--scope", "god"],
                 ["alerts", "create", "--name", "x", "--threshold", "1", "-o", "bogus"],
                 ["alerts", "create", "--name", "x", "--threshold", "1", "--metric", "ratio"],
                 ["events", "-n", "-5"],
                 ["segment", "create", "everyone"],
                 ["health", "--server", "notaurl"]):
        full = args if "--server" in args else [*args, *dead]
        r = invoke(full)
        assert r.exit_code == EXIT_USAGE and r.stdout == "", (args, r.stderr)


def test_settings_with_values_outside_their_set_are_refused(tmp_path: Path) -> None:
    """`--auth true` used to start with auth off; now every bad value exits 2 unstarted."""
    for args in (["--auth", "true"], ["--auth", "required"], ["--log-format", "xml"],
                 ["--max-events", "-5"], ["--retention-days", "-1"], ["--port", "70000"]):
        r = invoke(["serve", "--data-dir", str(tmp_path / "d"), *args])
        assert r.exit_code == EXIT_USAGE, (args, r.stderr)
        assert "must be" in r.stderr
    r = invoke(["serve", "--data-dir", str(tmp_path / "d"), "--auth", "ON", "--port", "x"])
    assert r.exit_code == EXIT_USAGE


def test_a_taken_port_is_one_line_not_a_traceback(daemon: ServeProcess, tmp_path: Path) -> None:
    port = daemon.url.rsplit(":", 1)[1]
    r = subprocess.run([sys.executable, "-m", "rta", "serve", "--port", port, "--data-dir",
                        str(tmp_path / "d")], capture_output=True, text=True, timeout=60,
                       check=False)
    assert r.returncode == 1, r.stderr
    assert "cannot start on 127.0.0.1:" in r.stderr and "Traceback" not in r.stderr


def test_a_server_that_is_not_rta_is_named(tmp_path: Path) -> None:
    """A web server that is not rta (HTML 404s, non-JSON 200s) gets exit 3 and a hint."""
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    class Other(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"<html>hello</html>"
            self.send_response(200 if self.path.startswith("/stats") else 404)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = HTTPServer(("127.0.0.1", 0), Other)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}"
        for command in ("health", "stats"):
            r = invoke([command, "--server", url])
            assert r.exit_code == EXIT_UNREACHABLE, r.stderr
            assert "is --server an rta daemon?" in r.stderr and "<html>" not in r.stderr
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.mark.parametrize("args", [["tail", "--json"], ["top", "--live", "--json"]])
def test_streams_stop_quietly_when_the_reader_goes(args: list[str],
                                                   world: dict[str, str]) -> None:
    """`rta tail --json | head -1`: exit 0 once stdout closes, no reconnect loop."""
    env = {**os.environ, "RTA_CONFIG": world["config"]}
    proc = subprocess.Popen([sys.executable, "-m", "rta", *args, "--server", world["url"]],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    assert proc.stdout is not None and proc.stderr is not None
    import threading

    stop = threading.Event()

    def feed() -> None:  # events keep arriving, so `tail` has something to write
        with httpx.Client(base_url=world["url"], timeout=30) as http:
            while not stop.wait(0.3):
                http.post("/events", json={"type": "pipe_probe"})

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    try:
        assert proc.stdout.readline()  # running and writing
        proc.stdout.close()  # the reader goes away
        assert proc.wait(timeout=30) == 0
        err = proc.stderr.read().decode()
        assert "Traceback" not in err and "reconnecting" not in err, err
    finally:
        stop.set()
        feeder.join()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()


def test_websocket_commands_without_a_token_say_so(tmp_path: Path) -> None:
    """Against a daemon that requires tokens, the live commands exit 4 with the daemon's own
    words (like the HTTP ones), not 3 with a raw handshake tuple."""
    proc = ServeProcess(str(tmp_path / "data"), "--auth", "on")
    url = proc.start()
    try:
        for args in (["tail"], ["top"], ["top", "--live"], ["alerts", "watch"]):
            r = subprocess.run([sys.executable, "-m", "rta", *args, "--server", url],
                               capture_output=True, text=True, timeout=60, check=False,
                               env={**os.environ, "RTA_CONFIG": str(tmp_path / "none.toml")})
            assert r.returncode == 4, (args, r.stderr)
            assert "needs a token" in r.stderr and "Traceback" not in r.stderr, r.stderr
    finally:
        proc.kill()


def test_local_commands_on_a_dir_without_rta_data(tmp_path: Path) -> None:
    """token list/revoke -d on a directory with no rta data say so and leave it untouched;
    an export into a missing directory is one line, not a traceback."""
    empty = tmp_path / "empty"
    empty.mkdir()
    for args in (["token", "list", "-d", str(empty)], ["token", "revoke", "x", "-d", str(empty)],
                 ["token", "list", "-d", str(tmp_path / "missing")]):
        r = invoke(args)
        assert r.exit_code == 4 and "no rta data" in r.stderr, (args, r.stderr)
    assert list(empty.iterdir()) == []
    r = invoke(["token", "create", "--scope", "admin", "-d", str(tmp_path / "new"), "--json"])
    assert r.exit_code == 0 and json.loads(r.stdout)["token"]


def test_export_into_a_missing_directory(world: dict[str, str], tmp_path: Path) -> None:
    r = invoke(["export", "-o", str(tmp_path / "no" / "x.csv"), "--server", world["url"]],
               world)
    assert r.exit_code == 1 and "cannot write" in r.stderr and r.stdout == ""
