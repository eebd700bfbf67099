"""`rta persons delete` asks before erasing: without `--yes` and without a terminal to ask
on, it refuses (exit 2) and sends nothing."""

from __future__ import annotations

import os

from typer.testing import CliRunner

from rta.cli.main import app
from rta.cli.output import EXIT_USAGE


def test_delete_without_yes_refuses_off_a_terminal() -> None:
    r = CliRunner().invoke(app, ["persons", "delete", "someone", "--server",
                                 "http://127.0.0.1:9"],
                           env={"RTA_CONFIG": os.path.join(os.devnull, "none.toml"),
                                "NO_COLOR": "1"})
    assert r.exit_code == EXIT_USAGE, r.output
    assert "--yes" in r.stderr and r.stdout == ""
