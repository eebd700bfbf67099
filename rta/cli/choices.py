"""Closed sets of values the CLI checks itself, so a typo is a usage error (exit 2) named
before any request, not a 4xx from the daemon.

They mirror constants of the core (tests/cli/test_cli_conventions.py keeps them equal); they
are repeated here because importing the core would load numpy and slow down `--help`.
"""

from __future__ import annotations

from collections.abc import Callable

import typer

FUNNEL_ORDERS = ("ordered", "strict", "any")
FUNNEL_UNITS = ("users", "sessions")
RETENTION_TYPES = ("first_time", "recurring")
RETENTION_CRITERIA = ("on", "on_or_after")
TOP_SORTS = ("count", "users")
SERIES_AGGREGATIONS = ("count", "sum", "avg", "min", "max", "p50", "p90", "p95", "p99",
                       "unique_users")
ALERT_AGGREGATIONS = ("count", "sum", "avg", "min", "max", "p95")
ALERT_OPERATORS = ("gt", "gte", "lt", "lte", "eq", "neq")
TOKEN_SCOPES = ("read", "write", "admin")
PATH_TYPES = ("events", "pages")
PATH_UNITS = ("users", "sessions")
WEB_DIMENSIONS = ("pages", "entry-pages", "exit-pages", "sources", "channels", "utm-sources",
                  "utm-mediums", "utm-campaigns", "countries", "browsers", "os", "devices",
                  "realtime")


def one_of(choices: tuple[str, ...]) -> Callable[[str | None], str | None]:
    """An option callback accepting only `choices` (or no value)."""

    def check(value: str | None) -> str | None:
        if value is not None and value not in choices:
            raise typer.BadParameter(f"{value!r} is not one of: {', '.join(choices)}")
        return value

    return check


def unit_of(choices: tuple[str, ...]) -> Callable[[str | None], str | None]:
    """An option callback accepting `choices` or `group:<type>` (count groups; the daemon
    checks the type)."""

    def check(value: str | None) -> str | None:
        if value is not None and value not in choices and not (
                value.startswith("group:") and len(value) > len("group:")):
            raise typer.BadParameter(f"{value!r} is not one of: {', '.join(choices)}, "
                                     "group:<type>")
        return value

    return check
