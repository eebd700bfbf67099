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
    if stderr not in _consoles:
        from rich.console import Console

        _consoles[stderr] = Console(stderr=stderr, highlight=False)
    return _consoles[stderr]


def message(text: str) -> None:
    """A human message on stderr."""
    console(stderr=True).print(text)


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
        fail(f"bad configuration ({config_path()} or RTA_* environment): {exc}", EXIT_USAGE)


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


def unreachable(server: str, exc: BaseException) -> NoReturn:
    """Exit 3 with the same wording the HTTP client uses."""
    cause: BaseException | None = exc
    while cause is not None and not str(cause):  # trio-websocket wraps the OSError
        cause = cause.__cause__ or cause.__context__
    reason = str(cause) if cause is not None else type(exc).__name__
    fail(f"cannot reach the rta daemon at {server}: {reason}. "
         "Start it with `rta serve` or point --server at it.", EXIT_UNREACHABLE)


def run_live(fn: Callable[[], Any], server: str) -> None:
    """`trio.run(fn)` for WebSocket commands: Ctrl-C exits 0, a refused or failed connection
    exits 3, a subscription the daemon rejects exits 4."""
    import trio

    from rta.client.ws import LiveError

    try:
        trio.run(fn)
    except KeyboardInterrupt:
        raise typer.Exit(EXIT_OK) from None
    except LiveError as exc:
        fail(exc.message, EXIT_BAD_INPUT)
    except OSError as exc:
        unreachable(server, exc)
    except Exception as exc:
        if type(exc).__name__ in ("HandshakeError", "ConnectionRejected", "ConnectionTimeout",
                                  "DisconnectionTimeout", "ConnectionClosed"):
            unreachable(server, exc)
        raise


def call(fn: Callable[[], Any]) -> Any:
    """Run a client call, turning client errors into messages and exit codes."""
    from rta.client.client import ApiError, DaemonUnreachable

    try:
        return fn()
    except DaemonUnreachable as exc:
        fail(str(exc), EXIT_UNREACHABLE)
    except ApiError as exc:
        detail = ""
        if exc.details:
            parts = []
            for d in exc.details[:10]:
                if isinstance(d, dict):
                    where = d.get("field") or d.get("index")
                    parts.append(f"  - {where}: {d.get('message', '')}" if where not in (None, "")
                                 else f"  - {d.get('message', d)}")
            detail = "\n" + "\n".join(parts) if parts else ""
        fail(f"{exc.message}{detail}", EXIT_BAD_INPUT if 400 <= exc.status < 500 else EXIT_ERROR)
