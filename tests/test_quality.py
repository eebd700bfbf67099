"""Static checks CI enforces: ruff (including the core's import ban) and mypy."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=600, check=False)


def test_ruff_clean() -> None:
    r = run("ruff", "check", ".")
    assert r.returncode == 0, r.stdout + r.stderr


def test_mypy_clean() -> None:
    r = run("mypy", "rta")
    assert r.returncode == 0, r.stdout + r.stderr


def test_core_imports_nothing_from_the_outer_layers() -> None:
    """Belt and braces beside ruff's banned-api: importing the engine loads no server stack."""
    code = ("import sys, rta.core, rta.core.engine, rta.core.queries.filters;"
            "bad = [m for m in sys.modules if m.split('.')[0] in "
            "('quart', 'quart_trio', 'hypercorn', 'httpx', 'typer', 'rich') "
            "or m.startswith(('rta.server', 'rta.client', 'rta.cli'))];"
            "print(bad); sys.exit(1 if bad else 0)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       check=False)
    assert r.returncode == 0, r.stdout + r.stderr
