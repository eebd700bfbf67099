"""Regenerate every file derived from the code, so the docs cannot drift from it.

    python scripts/generate_docs.py           # rewrite completions/, man/, docs/cli.md, docs/api.md
    python scripts/generate_docs.py --check   # list stale files and exit 1 (tests do this)

- `completions/bash/rta`, `completions/zsh/_rta`, `completions/fish/rta.fish`: Typer's own
  completion scripts, taken from the real CLI (`_RTA_COMPLETE=source_bash rta`); they call
  `rta` back at TAB time, so they follow the installed command set. Each is named as its
  shell loads it, so pyproject's data-files install them unrenamed.
- `man/rta.1` and `man/rta-<group>.1`: a small roff writer over the Click command tree
  (Typer >= 0.26 vendors Click as `typer._click`, which click-man cannot see).
- `docs/cli.md`: conventions (output, `--json`, exit codes, configuration) and every
  command's `--help`, as datasette keeps its CLI reference.
- `docs/api.md`: the HTTP API from `/openapi.json`, built without a server.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import typer.main  # noqa: E402
from typer import _click as click  # noqa: E402

from rta import __version__  # noqa: E402

WIDTH = 88
SHELLS = ("bash", "zsh", "fish")
# Where each shell's script is kept: the name its loader looks for (bash-completion: the command
# name; zsh: `_` + the command name on $fpath; fish: `<command>.fish`).
COMPLETION_FILES = {"bash": "completions/bash/rta", "zsh": "completions/zsh/_rta",
                    "fish": "completions/fish/rta.fish"}
COMPLETION_PARAMS = ("install_completion", "show_completion")
TAG_ORDER = ("system", "events", "analytics", "queries", "segments", "alerts", "export",
             "dashboards", "annotations", "tokens", "live", "sdk", "web")

# What `--json` prints. Commands not listed in CLI_JSON print the daemon's answer unchanged
# (API_JSON names the endpoint; its shape is in docs/api.md). Streaming commands print NDJSON.
API_JSON: dict[str, str] = {
    "events": "GET /events",
    "stats": "GET /stats",
    "health": "GET /health",
    "top": "the `metrics` channel of /ws (one object; NDJSON with --live)",
    "tail": "the `events` channel of /ws: NDJSON, one event per line",
    "query aggregate": "POST /analytics/aggregate",
    "query count": "GET /analytics/count",
    "query unique": "GET /analytics/unique-users",
    "query top": "GET /analytics/top",
    "query funnel": "POST /queries/funnel",
    "query cohort": "POST /queries/cohort",
    "query stickiness": "POST /queries/stickiness",
    "query lifecycle": "POST /queries/lifecycle",
    "query abtest": "POST /queries/abtest",
    "query segment": "POST /queries/execute (type segment)",
    "query paths": "POST /queries/paths",
    "query web": "GET /analytics/web (--by DIMENSION: GET /analytics/web/{dimension})",
    "alerts list": "GET /alerts",
    "alerts create": "POST /alerts",
    "alerts show": "GET /alerts/{id}",
    "alerts delete": "DELETE /alerts/{id}",
    "alerts history": "GET /alerts/history",
    "alerts test": "POST /alerts/{id}/test",
    "alerts watch": "the `alerts` channel of /ws: NDJSON, one notification per line",
    "alerts silence": "POST /alerts/{id}/silence (or POST /alerts/silences with --all)",
    "alerts silences": "GET /alerts/silences",
    "alerts unsilence": "DELETE /alerts/silences/{id}",
    "reports create": "POST /reports",
    "reports list": "GET /reports",
    "reports show": "GET /reports/{id}",
    "reports send": "POST /reports/{id}/send, without `content`",
    "reports delete": "DELETE /reports/{id}",
    "reports history": "GET /reports/{id}/history",
    "dashboards list": "GET /dashboards",
    "dashboards templates": "GET /dashboards/templates",
    "dashboards delete": "DELETE /dashboards/{id}",
    "dashboards share": "POST /dashboards/{id}/share (with `url`, `embedUrl`, `token`)",
    "dashboards shares": "GET /dashboards/{id}/share",
    "dashboards unshare": "DELETE /dashboards/{id}/share[/{linkId}]",
    "annotate": "POST /annotations",
    "annotations list": "GET /annotations",
    "annotations delete": "DELETE /annotations/{id}",
    "segment create": "POST /segments",
    "segment list": "GET /segments",
    "segment show": "GET /segments/{ref}",
    "segment delete": "DELETE /segments/{ref}",
    "token list": "GET /tokens",
    "persons merge": "POST /persons/merge",
    "persons show": "GET /persons/{id}",
    "groups list": "GET /groups/{type}",
    "groups show": "GET /groups/{type}/{key}",
    "persons list": "GET /persons",
    "persons delete": "DELETE /persons/{id}",
    "token revoke": "DELETE /tokens/{ref}",
}
# Commands whose JSON the CLI builds itself: their top-level keys (checked by the tests).
CLI_JSON: dict[str, tuple[str, ...]] = {
    "ingest": ("accepted", "duplicates", "rejected", "errors", "seconds", "eventsPerSecond"),
    "export": ("rows", "bytes", "format", "output", "seconds"),
    "token create": ("id", "name", "scope", "hint", "createdAt", "token"),
    "dashboards create": ("id", "name", "widgets", "url"),
    "dashboards show": ("dashboard", "data"),
    "dashboards open": ("id", "url", "opened"),
    "config show": ("<setting>: {value, source}",),
    "config path": ("path",),
    "config set": ("key", "value", "path"),
    "demo generate": ("events", "output", "format", "seed", "days", "users", "end", "seconds"),
    "clickhouse init": ("target", "database", "schemaVersion"),
    "clickhouse status": ("target", "database", "schemaVersion", "events", "users",
                          "firstTimestamp", "lastTimestamp"),
    "clickhouse migrate": ("events", "blocks", "verified", "mismatches"),
}


# -- the command tree -------------------------------------------------------------------


def cli_root() -> click.Command:
    """The Click command behind `rta`, without Typer's shell-dependent completion options."""
    from rta.cli.main import app

    root = typer.main.get_command(app)
    root.params = [p for p in root.params if p.name not in COMPLETION_PARAMS]
    return root


def is_group(cmd: click.Command) -> bool:
    """A group has subcommands (typer._click has no Group class: TyperGroup is a Command)."""
    return isinstance(getattr(cmd, "commands", None), dict)


def subcommands(cmd: click.Command) -> dict[str, click.Command]:
    commands: dict[str, click.Command] = getattr(cmd, "commands", {})
    return {name: sub for name, sub in commands.items() if not sub.hidden}


def walk(cmd: click.Command, ctx: click.Context) -> Iterator[tuple[click.Command,
                                                                   click.Context]]:
    """Every command under `cmd` (itself first), each with its context chain."""
    yield cmd, ctx
    for name, sub in subcommands(cmd).items():
        yield from walk(sub, make_context(sub, name, ctx))


def make_context(cmd: click.Command, name: str, parent: click.Context | None) -> click.Context:
    settings = {**cmd.context_settings, "terminal_width": WIDTH, "max_content_width": WIDTH}
    return click.Context(cmd, info_name=name, parent=parent, **settings)


def path_of(ctx: click.Context) -> str:
    return ctx.command_path


def leaf_commands() -> list[tuple[str, click.Command, click.Context]]:
    """(`query funnel`, command, context) for every runnable command."""
    root = cli_root()
    return [(path_of(ctx).removeprefix("rta").strip(), cmd, ctx)
            for cmd, ctx in walk(root, make_context(root, "rta", None))
            if not is_group(cmd)]


def groups() -> list[tuple[str, click.Command, click.Context]]:
    root = cli_root()
    return [(path_of(ctx).removeprefix("rta").strip(), cmd, ctx)
            for cmd, ctx in walk(root, make_context(root, "rta", None))
            if is_group(cmd) and cmd is not root]


def help_text(cmd: click.Command, ctx: click.Context) -> str:
    return cmd.get_help(ctx).rstrip() + "\n"


def doc_paragraphs(cmd: click.Command) -> list[str]:
    text = inspect.cleandoc(cmd.help or "")
    return [" ".join(p.split()) for p in text.split("\n\n") if p.strip()]


# -- completions ------------------------------------------------------------------------


def completion(shell: str) -> str:
    """The script `_RTA_COMPLETE=source_<shell> rta` prints (Typer's own)."""
    env = {**os.environ, "_RTA_COMPLETE": f"source_{shell}",
           "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    out = subprocess.run([sys.executable, "-m", "rta"], env=env, capture_output=True,
                         text=True, check=True, cwd=ROOT, timeout=60).stdout
    header = {"bash": "# bash completion for rta: source it, or copy it to "
                      "/usr/share/bash-completion/completions/rta",
              "zsh": "# zsh completion for rta: copy it (as _rta) into a directory on $fpath",
              "fish": "# fish completion for rta: copy it to ~/.config/fish/completions/"
                      "rta.fish"}[shell]
    body = out.strip() + "\n"
    if shell == "zsh":  # `#compdef` must stay the first line for compinit
        first, _, rest = zsh_autoloadable(body).lstrip("\n").partition("\n")
        return f"{first}\n{header}\n# Generated by scripts/generate_docs.py.\n{rest}"
    return f"{header}\n# Generated by scripts/generate_docs.py.\n{body}"


ZSH_COMPDEF = "\ncompdef _rta_completion rta\n"
ZSH_TAIL = """
# Autoloaded from $fpath as _rta (compinit runs the file as that function on the first TAB):
# complete now, or that first TAB offers nothing. Sourced: register the function.
if [[ $funcstack[1] == _rta ]]; then
  _rta_completion "$@"
else
  compdef _rta_completion rta
fi
"""


def zsh_autoloadable(script: str) -> str:
    """Typer's zsh script only registers its function (`compdef`), which suits `source` but
    not the `_rta` file a wheel installs on $fpath."""
    if ZSH_COMPDEF not in script:
        raise RuntimeError("Typer's zsh completion script changed: revisit zsh_autoloadable")
    return script.replace(ZSH_COMPDEF, ZSH_TAIL)


# -- man pages --------------------------------------------------------------------------


def roff(text: str) -> str:
    """Escape text for roff: backslashes, hyphens (so options copy right), leading dots."""
    out = text.replace("\\", "\\e").replace("-", "\\-")
    lines = []
    for line in out.split("\n"):
        if line.startswith((".", "'")):
            line = "\\&" + line
        lines.append(line)
    return "\n".join(lines)


def roff_usage(cmd: click.Command, ctx: click.Context) -> str:
    pieces = " ".join(cmd.collect_usage_pieces(ctx))
    return f".B {roff(path_of(ctx))}\n{roff(pieces)}"


def roff_params(cmd: click.Command, ctx: click.Context) -> list[str]:
    out = []
    for param in cmd.get_params(ctx):
        record = param.get_help_record(ctx)
        if record is None:
            continue
        names, help_ = record
        out += [".TP", f"\\fB{roff(names)}\\fR", roff(" ".join(help_.split()))]
    return out


def roff_command(cmd: click.Command, ctx: click.Context, level: str = ".SS") -> list[str]:
    lines = [f'{level} "{roff(path_of(ctx))}"', roff_usage(cmd, ctx), ".PP"]
    for para in doc_paragraphs(cmd):
        lines += [roff(para), ".PP"]
    params = roff_params(cmd, ctx)
    if params:
        lines += ["Options:", ".RS", *params, ".RE"]
    return lines


def exit_status() -> list[str]:
    from rta.cli.output import EXIT_CODES

    lines = [".SH EXIT STATUS"]
    for code, meaning in EXIT_CODES.items():
        lines += [".TP", f"\\fB{code}\\fR", roff(meaning)]
    return lines


def environment() -> list[str]:
    from rta.settings import SEED_ENV, SPEC

    lines = [".SH ENVIRONMENT"]
    lines += [".TP", "\\fBRTA_CONFIG\\fR", roff("Path of the configuration file.")]
    for key, (_kind, default, help_) in SPEC.items():
        shown = "" if key == "data_dir" else f" (default {json.dumps(default)})"
        lines += [".TP", f"\\fBRTA_{key.upper()}\\fR", roff(f"{help_}{shown}.")]
    seed = ", ".join(f"{k} ({v})" for k, v in SEED_ENV.items())
    lines += [".TP", "\\fBPORT\\fR, \\fBMAX_EVENTS\\fR, \\fBRETENTION_DAYS\\fR, "
              "\\fBENABLE_COMPRESSION\\fR",
              roff(f"Also honoured, below the RTA_* names: {seed}."),
              ".TP", "\\fBNO_COLOR\\fR, \\fBFORCE_COLOR\\fR",
              roff("Turn colour off, or force it when the output is not a terminal.")]
    return lines


def man_header(name: str, summary: str) -> list[str]:
    return [".\\\" Generated by scripts/generate_docs.py from the rta command tree; "
            "do not edit.",
            f'.TH {name.upper()} 1 "" "rta {__version__}" "rta manual"',
            ".SH NAME", f"{roff(name)} \\- {roff(summary)}"]


def man_root() -> str:
    root = cli_root()
    ctx = make_context(root, "rta", None)
    lines = man_header("rta", "self-hosted real-time product analytics: the daemon and "
                       "its client")
    lines += [".SH SYNOPSIS", ".B rta", roff("[OPTIONS] COMMAND [ARGS]..."),
              ".SH DESCRIPTION"]
    for para in doc_paragraphs(root):
        lines += [roff(para), ".PP"]
    lines += [roff("rta is one command that is both the analytics server (rta serve) and its "
                   "client. Client commands talk to the daemon at --server (or RTA_SERVER, or "
                   "the server setting), print data on standard output and messages on "
                   "standard error; --json prints machine-readable JSON instead of tables."),
              ".SH OPTIONS", *roff_params(root, ctx), ".SH COMMANDS"]
    sub_groups = []
    for name, sub in subcommands(root).items():
        sub_ctx = make_context(sub, name, ctx)
        if is_group(sub):
            sub_groups.append(name)
            names = ", ".join(subcommands(sub))
            lines += [f'.SS "{roff(path_of(sub_ctx))} ..."',
                      roff(f"{sub.get_short_help_str(200)} Commands: {names}."),
                      ".PP", f"See \\fBrta\\-{roff(name)}\\fR(1)."]
        else:
            lines += roff_command(sub, sub_ctx)
    lines += environment()
    lines += [".SH FILES", ".TP", "\\fI~/.config/rta/config.toml\\fR",
              roff("Settings (rta config set KEY VALUE); $XDG_CONFIG_HOME is honoured. "
                   "Precedence: flags > environment > this file > defaults."),
              ".TP", "\\fI~/.local/share/rta\\fR",
              roff("The default data directory: write-ahead log, segments, metadata.")]
    lines += exit_status()
    lines += [".SH SEE ALSO",
              ",\n".join(f"\\fBrta\\-{roff(g)}\\fR(1)" for g in sub_groups)]
    return "\n".join(lines) + "\n"


def man_group(name: str, group: click.Command, ctx: click.Context) -> str:
    page = "rta-" + name.replace(" ", "-")
    lines = man_header(page, group.get_short_help_str(200).rstrip("."))
    lines += [".SH SYNOPSIS", f".B {roff(path_of(ctx))}", roff("COMMAND [OPTIONS] [ARGS]..."),
              ".SH DESCRIPTION"]
    for para in doc_paragraphs(group):
        lines += [roff(para), ".PP"]
    lines += [".SH COMMANDS"]
    for sub_name, sub in subcommands(group).items():
        lines += roff_command(sub, make_context(sub, sub_name, ctx))
    lines += exit_status()
    lines += [".SH SEE ALSO", "\\fBrta\\fR(1)"]
    return "\n".join(lines) + "\n"


# -- docs/cli.md ------------------------------------------------------------------------


def cli_markdown() -> str:
    from rta.cli.output import EXIT_CODES
    from rta.settings import SEED_ENV, SPEC

    root = cli_root()
    root_ctx = make_context(root, "rta", None)
    out = ["# rta command-line reference", "",
           "<!-- Generated by scripts/generate_docs.py from the Typer app; do not edit. "
           "tests/test_cli_docs.py fails when it is stale. -->", "",
           "`rta` is both the daemon (`rta serve`) and its client. Every client command talks "
           "to the daemon at `--server` (or `RTA_SERVER`, or the `server` setting; default "
           "`http://127.0.0.1:8080`) and sends the `token` setting as a Bearer token.", "",
           "## Conventions", "",
           "- **Output.** Data goes to standard output, messages (progress, confirmations, "
           "warnings, errors) to standard error, so `rta ... > file` captures only data.",
           "- **`--json`.** Every command that prints data takes `--json` and then prints "
           "JSON only, with stable camelCase keys; `tail`, `top --live` and `alerts watch` "
           "print NDJSON (one object per line). Without it you get tables (rich).",
           "- **Colour.** `NO_COLOR` (any value) turns colour off; `FORCE_COLOR` forces it "
           "when the output is not a terminal. JSON output never contains colour codes.",
           "- **Shell completion.** `rta --install-completion` installs it for the current "
           "shell; `completions/` holds the same scripts for packaging.", "",
           "### Exit status", "", "| code | meaning |", "|---|---|"]
    out += [f"| {code} | {meaning} |" for code, meaning in EXIT_CODES.items()]
    out += ["", "### What `--json` prints", "",
            "Most commands print the daemon's JSON answer unchanged; its shape is documented "
            "with the endpoint in [api.md](api.md).", "", "| command | JSON |", "|---|---|"]
    out += [f"| `rta {cmd}` | {what} |" for cmd, what in API_JSON.items()]
    out += ["", "Commands whose JSON the CLI builds itself (top-level keys):", "",
            "| command | keys |", "|---|---|"]
    out += [f"| `rta {cmd}` | {', '.join(f'`{k}`' for k in keys)} |"
            for cmd, keys in CLI_JSON.items()]
    out += ["", "`token create` and `dashboards create` add `token` (the secret, shown once) "
            "and `url` to the daemon's answer.", "",
            "### Configuration", "",
            "Precedence: command-line flags > environment > `~/.config/rta/config.toml` "
            "(`RTA_CONFIG` overrides the path, `$XDG_CONFIG_HOME` is honoured) > defaults. "
            "`rta config show` prints every value and where it came from; "
            "`rta config set KEY VALUE` writes the file. The seed's variables "
            f"{', '.join(f'`{k}`' for k in SEED_ENV)} are honoured below the `RTA_*` names.",
            "", "| setting | environment | default | meaning |", "|---|---|---|---|"]
    for key, (_kind, default, help_) in SPEC.items():
        shown = "user data dir" if key == "data_dir" else json.dumps(default)
        out.append(f"| `{key}` | `RTA_{key.upper()}` | `{shown}` | {help_} |")
    out += ["", *limits_section(), "", "## Commands", ""]
    for cmd, ctx in walk(root, root_ctx):
        title = path_of(ctx)
        level = "##" if cmd is root else "###" if title.count(" ") == 1 else "####"
        out += [f"{level} {title}", "", "```text", help_text(cmd, ctx).rstrip(), "```", ""]
    return "\n".join(out).rstrip() + "\n"


def limits_section() -> list[str]:
    """Every limit the daemon enforces, its setting and the answer past it, built from the
    constants and defaults the code uses so the table cannot drift."""
    from rta.core import events
    from rta.daemon import KEEP_ALIVE_S, WS_MAX_MESSAGE_BYTES
    from rta.server.http import DEFAULT_BODY_LIMIT
    from rta.settings import SPEC

    def d(key: str) -> str:
        value = SPEC[key][1]
        return f"{value:,}" if isinstance(value, int) else f"{value:g}"

    mib = 1024 * 1024
    rows = [
        ("request body, ingest routes (`/events`, `/events/batch`, the PostHog and Segment "
         "routes)", "`max_batch_bytes`", f"{SPEC['max_batch_bytes'][1] // mib} MiB",
         "413 `payload_too_large` as soon as the declared or received size passes it; "
         "the connection is closed"),
        ("request body, every other route", "-", f"{DEFAULT_BODY_LIMIT // mib} MiB",
         "413 `payload_too_large`, connection closed"),
        ("decompressed size of a gzip/deflate body", "the route's limit", "-",
         "413 `payload_too_large`; a corrupt stream is 400 `bad_encoding`"),
        ("a request head or body that stops arriving", "`body_timeout`",
         f"{d('body_timeout')} s", "408 `request_timeout` (body) or close (head), "
         "connection closed"),
        ("idle kept-alive connection", "-", f"{KEEP_ALIVE_S} s", "closed"),
        ("open connections per client address", "`max_connections_per_address` (0: none)",
         d("max_connections_per_address"), "closed on arrival; metric "
         "`rta_connections_refused_total`"),
        ("open files", "-", "soft limit raised to the hard limit at start",
         "accepts back off; one log line a minute, metric `rta_accept_errors_total`"),
        ("events in one batch", "`max_batch_events`", d("max_batch_events"),
         "413 `batch_too_large`"),
        ("one event's encoded size", "`max_event_bytes`",
         f"{SPEC['max_event_bytes'][1] // 1024} KiB", "400 `event_too_large` for that event"),
        ("property keys in one event (after flattening)", "`max_event_properties`",
         d("max_event_properties"), "400 `too_many_properties` for that event"),
        ("distinct property keys in one batch", "`max_batch_property_keys`",
         d("max_batch_property_keys"), "400 `too_many_property_keys` for each event that "
         "would pass it"),
        ("distinct property keys in the store (a key counts once per value type)",
         "`max_property_keys`", d("max_property_keys"), "400 `property_key_limit` for events "
         "bringing a new key; known keys are always accepted"),
        ("distinct event types in the store", "`max_event_types`", d("max_event_types"),
         "400 `event_type_limit` for events of a new type"),
        ("nesting depth of `properties`", "-", str(events.MAX_DEPTH), "400 `validation_error`"),
        ("length of a type, id, user id, session id or property name", "-",
         f"{events.MAX_TYPE_LENGTH} characters", "400 `validation_error`"),
        ("timestamp ahead of the server clock", "`future_tolerance_ms`",
         d("future_tolerance_ms") + " ms", "400 `timestamp_in_future`"),
        ("WebSocket ingest message", "`max_batch_bytes`",
         f"{SPEC['max_batch_bytes'][1] // mib} MiB",
         "`error` frame `payload_too_large`; the connection stays open"),
        ("any WebSocket message", "-", f"{WS_MAX_MESSAGE_BYTES // mib} MiB", "close 1009"),
        ("queries running at once", "`max_concurrent_queries`",
         d("max_concurrent_queries"), "wait their turn; 503 `too_many_queries` past the "
         "timeout"),
        ("query time (every `/analytics/*`, `/queries/*` and `GET /events`)",
         "`query_timeout_ms`", d("query_timeout_ms") + " ms", "504 `query_timeout`"),
        ("requests per second per token or address", "`rate_limit_rps`, `rate_limit_burst`",
         "off", "429 with `Retry-After`"),
        ("WebSocket messages queued per client", "`ws_queue`", d("ws_queue"),
         "coalesced or dropped (counted), never blocking ingest"),
    ]
    out = ["### Limits", "",
           "Everything a client can make the daemon hold is bounded. Each limit below, its "
           "setting and what a client gets past it; every refusal is the usual JSON error "
           "body `{\"error\": {\"code\", \"message\", \"details\"}}` naming the field "
           "and batch index. `/health` reports `degraded` with its `reasons` while writes "
           "fail, and `/stats` shows the key and type counts under `limits`.", "",
           "| limit | setting | default | past it |", "|---|---|---|---|"]
    out += [f"| {what} | {setting} | {default} | {answer} |"
            for what, setting, default, answer in rows]
    return out


# -- docs/api.md ------------------------------------------------------------------------


def api_spec() -> dict[str, Any]:
    from rta.core.engine import Engine
    from rta.server.app import create_app
    from rta.server.openapi import build_spec

    spec, missing = build_spec(create_app(Engine()))
    if missing:
        raise SystemExit(f"routes without an OpenAPI description: {missing}")
    return spec


def _schema(schema: Any) -> str:
    if not isinstance(schema, dict):
        return ""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return f"[{name}](#{name.lower()})"
    if schema.get("type") == "array":
        return f"array of {_schema(schema.get('items', {}))}"
    if schema == {"type": "object", "additionalProperties": True}:
        return "JSON object"
    return f"`{json.dumps(schema, separators=(',', ':'))}`"


def api_markdown() -> str:
    spec = api_spec()
    out = ["# rta HTTP API reference", "",
           "<!-- Generated by scripts/generate_docs.py from /openapi.json; do not edit. "
           "tests/test_cli_docs.py fails when it is stale. -->", "",
           f"OpenAPI {spec['openapi']} document, API version {spec['info']['version']}; a "
           "running daemon serves it at `GET /openapi.json`.", "",
           "- **Times** are ms since the epoch, ISO-8601, or relative (`last_15m`, "
           "`last_24h`, `last_7d`, `today`); `endTime` is inclusive. Without "
           "`startTime`, a query covers the data from its oldest event, and a series with an "
           "`interval` at most the last 10,000 intervals (the response's `startTime` says "
           "where it began).",
           "- **Filters** (`type`, `userId`, `startTime`, `endTime`, `timeRange`, `where`, "
           "`segment`) are shared by every query, as query arguments (`where` as JSON) or in "
           "the body ([Filter](#filter), [Predicate](#predicate)).",
           "- **Errors** are `{\"error\": {\"code\", \"message\", \"details\"}}` "
           "([Error](#error)) with a 4xx/5xx status; `details` names the field path or batch "
           "index at fault.",
           "- **Authentication**: `Authorization: Bearer <token>` (scopes read, write, "
           "admin); required off loopback unless the `auth` setting is `off`.", ""]
    by_tag: dict[str, list[tuple[str, str, dict[str, Any]]]] = {}
    for path, methods in spec["paths"].items():
        for method, operation in methods.items():
            tag = (operation.get("tags") or ["other"])[0]
            by_tag.setdefault(tag, []).append((method.upper(), path, operation))
    out += ["## Operations", ""]
    order = {tag: i for i, tag in enumerate(TAG_ORDER)}
    for tag, ops in sorted(by_tag.items(), key=lambda kv: (order.get(kv[0], 99), kv[0])):
        out += [f"### {tag}", "", "| method | path | summary | query | body | success |",
                "|---|---|---|---|---|---|"]
        for method, path, operation in ops:
            query = ", ".join(f"`{p['name']}`" for p in operation.get("parameters", [])
                              if p["in"] == "query")
            body_schemas = [f"{kind}: {_schema(c.get('schema'))}" for kind, c in
                            operation.get("requestBody", {}).get("content", {}).items()]
            if len(body_schemas) == 1:
                body_schemas = [body_schemas[0].split(": ", 1)[1]]
            ok = [(code, r) for code, r in operation["responses"].items()
                  if code.startswith(("1", "2"))]
            success = ", ".join(f"{code} {next(iter(r.get('content', {'': 0})))}".strip()
                                for code, r in ok)
            out.append(f"| {method} | `{path}` | {operation['summary']} | {query} | "
                       f"{'; '.join(body_schemas)} | {success} |")
        out.append("")
        if tag == "events":
            from rta.server.events_api import ARROW_BATCH_DOC

            out += [ARROW_BATCH_DOC]
    out += ["## Schemas", ""]
    for name, schema in spec["components"]["schemas"].items():
        out += [f"### {name}", "", "```json", json.dumps(schema, indent=2), "```", ""]
    return "\n".join(out).rstrip() + "\n"


# -- driver -----------------------------------------------------------------------------


def generate() -> dict[str, str]:
    """Every generated file: repository-relative path -> content."""
    files = {COMPLETION_FILES[shell]: completion(shell) for shell in SHELLS}
    files["man/rta.1"] = man_root()
    for name, group, ctx in groups():
        files[f"man/rta-{name.replace(' ', '-')}.1"] = man_group(name, group, ctx)
    files["docs/cli.md"] = cli_markdown()
    files["docs/api.md"] = api_markdown()
    return files


def stale(files: dict[str, str]) -> list[str]:
    return [path for path, text in files.items()
            if not (ROOT / path).exists() or (ROOT / path).read_text() != text]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--check", action="store_true",
                        help="report stale files and exit 1 instead of writing")
    args = parser.parse_args(argv)
    files = generate()
    changed = stale(files)
    if args.check:
        for path in changed:
            print(f"stale: {path}", file=sys.stderr)
        if changed:
            print("run: python scripts/generate_docs.py", file=sys.stderr)
        return 1 if changed else 0
    for path in changed:
        target = ROOT / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(files[path])
        print(f"wrote {path}", file=sys.stderr)
    extra = sorted(str(p.relative_to(ROOT)) for d in ("man", "completions")
                   for p in (ROOT / d).rglob("*")
                   if p.is_file() and str(p.relative_to(ROOT)) not in files)
    for path in extra:
        print(f"not generated any more (delete it?): {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
