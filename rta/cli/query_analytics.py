"""Registration point for these query commands; they land with the issue that builds them."""

from __future__ import annotations

import typer


def register(query_app: typer.Typer) -> None:
    """Add these commands to `rta query`."""
