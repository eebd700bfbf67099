from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.support import ServeProcess


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    """A real `rta serve` process shared by a module's CLI tests."""
    proc = ServeProcess(str(tmp_path_factory.mktemp("daemon") / "data"))
    proc.start()
    yield proc
    proc.stop()


def rta(*args: str, stdin: str | None = None,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the real `rta` CLI as a user would (no colour, wide terminal, captured output)."""
    full_env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200", **(env or {})}
    return subprocess.run([sys.executable, "-m", "rta", *args], input=stdin, text=True,
                          capture_output=True, env=full_env, timeout=120, check=False)
