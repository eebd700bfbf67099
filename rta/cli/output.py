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

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3
EXIT_BAD_INPUT = 4

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


def get_client(server: str | None) -> RtaClient:
    from rta.client.client import RtaClient
    from rta.settings import load_settings

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
