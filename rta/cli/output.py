"""Shared CLI plumbing: exit codes, the client from settings, JSON vs table output.

Data goes to stdout, messages to stderr. Rich is imported lazily so `--help` and completion
stay fast; rich itself honours NO_COLOR and FORCE_COLOR.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn

import typer

if TYPE_CHECKING:
    from rich.console import Console

    from rta.client.client import RtaClient
    from rta.settings import Settings

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3
EXIT_BAD_INPUT = 4
# The documented meaning of each exit status (man pages and docs/cli.md are generated from it).
EXIT_CODES: dict[int, str] = {
    EXIT_OK: "success.",
    EXIT_ERROR: "an error that is not the user's: the daemon failed (5xx), a file could not "
                "be written, the data directory is locked by a running daemon, "
                "`rta health` found the daemon unhealthy.",
    EXIT_USAGE: "the command line is wrong: an unknown command or option, a missing argument, "
                "a value the CLI cannot read (wrong type, unknown choice, a --where or --step "
                "expression it cannot parse), or options that cannot be combined.",
    EXIT_UNREACHABLE: "the daemon could not be reached (nothing listening at --server, "
                      "connection refused or reset, WebSocket handshake failed).",
    EXIT_BAD_INPUT: "the input was rejected: the daemon answered 4xx (an invalid field, an "
                    "unknown id or name, a missing token or scope), an input file is missing "
                    "or holds invalid data, or ingest rejected some events.",
}

ServerOption = typer.Option(None, "--server", "-s", envvar="RTA_SERVER",
                            help="URL of the rta daemon (default from config: "
                                 "http://127.0.0.1:8080).")
JsonOption = typer.Option(False, "--json", help="Print machine-readable JSON to stdout.")

_consoles: dict[bool, Console] = {}


def console(stderr: bool = False) -> Console:
    """The stdout (or stderr) console.

    NO_COLOR means no escape codes at all (rich alone would keep bold and dim). Output that
    is not a terminal is not wrapped at 80 columns: a pipe gets whole lines, so ids, cursors
    and one-event-per-line output survive `| cat` and `| grep`.
    """
    if stderr not in _consoles:
        import os

        from rich.console import Console

        plain = {"color_system": None} if os.environ.get("NO_COLOR") else {}
        out = Console(stderr=stderr, highlight=False, **plain)  # type: ignore[arg-type]
        if not out.is_terminal and not os.environ.get("COLUMNS"):
            out.width = 1 << 16
        _consoles[stderr] = out
    return _consoles[stderr]


def message(text: str) -> None:
    """A human message on stderr (long lines wrap in the terminal, not with hard breaks)."""
    console(stderr=True).print(text, soft_wrap=True)


def fail(text: str, code: int = EXIT_ERROR) -> NoReturn:
    console(stderr=True).print(f"[bold red]error:[/] {text}", markup=True, soft_wrap=True)
    raise typer.Exit(code)


def load_settings(flags: dict[str, Any] | None = None) -> Settings:
    """Effective settings; a bad value in the environment or config file exits 2."""
    from rta.settings import config_path
    from rta.settings import load_settings as load

    try:
        return load(flags)
    except ValueError as exc:  # includes tomllib.TOMLDecodeError
        fail(f"{exc} (given as an option, in the RTA_* environment or in {config_path()})",
             EXIT_USAGE)


def get_client(server: str | None) -> RtaClient:
    from rta.client.client import RtaClient

    settings = load_settings({"server": server})
    return RtaClient(settings.server, token=settings.token or None)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


def emit(data: Any, as_json: bool, render: Callable[[Any], None]) -> None:
    """JSON to stdout with --json, else the human rendering."""
    if as_json:
        print_json(data)
    else:
        render(data)


def get_and_emit(server: str | None, path: str, as_json: bool,
                 render: Callable[[Any], None], **params: Any) -> None:
    """GET one resource (or list) and print it: the whole of every list/show command."""
    with get_client(server) as client:
        data = call(lambda: client.get(path, **params))
    emit(data, as_json, render)


def delete_and_say(server: str | None, path: str, as_json: bool,
                   said: Callable[[Any], str]) -> None:
    """DELETE a resource; its answer as JSON with --json, else one line on stderr."""
    with get_client(server) as client:
        data = call(lambda: client.request("DELETE", path))
    emit(data, as_json, lambda d: message(said(d)))


def when_text(ms: Any) -> str:
    """A stored epoch-ms time as ISO-8601 UTC, "-" where there is none."""
    from rta.core.queries.timeparse import iso

    return iso(ms) if isinstance(ms, int) else "-"


def unreachable_text(server: str, exc: BaseException) -> str:
    """What the HTTP client says of a daemon it cannot reach, for a WebSocket failure."""
    from rta.client.client import DaemonUnreachable

    cause: BaseException | None = exc
    while cause is not None and not str(cause):  # trio-websocket wraps the OSError
        cause = cause.__cause__ or cause.__context__
    return str(DaemonUnreachable(server, str(cause) if cause is not None
                                 else type(exc).__name__))


def unreachable(server: str, exc: BaseException) -> NoReturn:
    """Exit 3, saying `unreachable_text`."""
    fail(unreachable_text(server, exc), EXIT_UNREACHABLE)


def run_live(fn: Callable[[], Any], server: str) -> None:
    """`trio.run(fn)` for WebSocket commands: Ctrl-C or a closed stdout (`| head`) exits 0,
    the rest as `live_failure` says. Errors raised inside a nursery arrive wrapped in
    exception groups."""
    import trio

    try:
        trio.run(fn)
    except BaseException as exc:
        leaf = leaf_exception(exc)
        if isinstance(leaf, KeyboardInterrupt):
            raise typer.Exit(EXIT_OK) from None
        if isinstance(leaf, BrokenPipeError):
            quiet_stdout()
            raise typer.Exit(EXIT_OK) from None
        if isinstance(leaf, typer.Exit | SystemExit):
            raise leaf from None
        failure = live_failure(leaf, server)
        if failure is None:
            raise
        fail(*failure)


# trio-websocket's connection failures (matched by name: importing it costs start-up time)
_CONNECTION_ERRORS = ("HandshakeError", "ConnectionRejected", "ConnectionTimeout",
                      "DisconnectionTimeout", "ConnectionClosed")


def live_failure(exc: BaseException, server: str) -> tuple[str, int] | None:
    """(message, exit code) for a failed WebSocket exchange: a subscription or message the
    daemon refused, or a handshake refused for a missing token, exit 4; a daemon that cannot
    be reached, exit 3. None for anything else (a bug: let it show)."""
    from rta.client.ws import LiveError

    leaf = leaf_exception(exc)
    if isinstance(leaf, LiveError):
        return leaf.message, EXIT_BAD_INPUT
    status = getattr(leaf, "status_code", None)
    if isinstance(status, int) and 400 <= status < 500:
        return _rejection(leaf, status), EXIT_BAD_INPUT
    if isinstance(leaf, OSError) or type(leaf).__name__ in _CONNECTION_ERRORS:
        return unreachable_text(server, leaf), EXIT_UNREACHABLE
    return None


def leaf_exception(exc: BaseException) -> BaseException:
    """The exception that matters inside (nested) groups: Ctrl-C first, then the first."""
    if not isinstance(exc, BaseExceptionGroup):
        return exc
    leaves = [leaf_exception(e) for e in exc.exceptions]
    for leaf in leaves:
        if isinstance(leaf, KeyboardInterrupt):
            return leaf
    return leaves[0] if leaves else exc


def _rejection(exc: BaseException, status: int) -> str:
    """The daemon's own words for a refused WebSocket handshake (401: no token...)."""
    body = getattr(exc, "body", None)
    try:
        text = json.loads(body)["error"]["message"] if body else ""
    except (ValueError, KeyError, TypeError):
        text = ""
    return text or f"the daemon refused the WebSocket connection (HTTP {status})"


def quiet_stdout() -> None:
    """stdout's reader went away (`| head`): point stdout at /dev/null so the interpreter's
    final flush does not report a BrokenPipeError."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
    except OSError:
        return
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # (stdout has no descriptor: nothing to redirect)
        return
    finally:
        os.close(devnull)


def call(fn: Callable[[], Any]) -> Any:
    """Run a client call, turning client errors into messages and exit codes; warnings in
    the answer go to stderr."""
    from rta.client.client import ApiError, DaemonUnreachable

    try:
        result = fn()
    except DaemonUnreachable as exc:
        fail(str(exc), EXIT_UNREACHABLE)
    except ApiError as exc:
        detail = ""
        if exc.details:
            parts = []
            for d in exc.details[:10]:
                if not isinstance(d, dict) or not d.get("message"):
                    continue  # (a bare {"field": "id"} adds nothing to the message)
                where = d.get("field") or d.get("index")
                line = f"{where}: {d['message']}" if where not in (None, "") else d["message"]
                if line != exc.message and d["message"] != exc.message:
                    parts.append(f"  - {line}")
            detail = "\n" + "\n".join(parts) if parts else ""
        fail(f"{exc.message}{detail}", EXIT_BAD_INPUT if 400 <= exc.status < 500 else EXIT_ERROR)
    warn_about(result)
    return result


def warn_about(answer: Any) -> None:
    """The daemon's `warnings` (a misspelt type or property, a comparison that cannot
    match) on stderr, one line each: the answer stands and the exit status stays 0."""
    if not isinstance(answer, dict) or not isinstance(answer.get("warnings"), list):
        return
    err = console(stderr=True)
    for w in answer["warnings"]:
        text = w.get("message") if isinstance(w, dict) else w
        err.print(f"[bold yellow]warning:[/] {text}", markup=True, soft_wrap=True,
                  highlight=False)


def duration_text(ms: Any) -> str:
    """5m rather than 300000 ms: the largest unit that divides the duration exactly."""
    if not isinstance(ms, int) or isinstance(ms, bool) or ms <= 0:
        return f"{ms} ms"
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms} ms"
