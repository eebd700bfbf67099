"""Registration point for this command group; its commands land with the issue that builds it."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this group's commands to `app`."""
