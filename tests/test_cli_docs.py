"""Generated docs stay current, completions work, `rta --help` stays light, and every `rta`
command the README shows exists with the options it uses."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from scripts import generate_docs

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("numpy", "pyarrow", "quart", "quart_trio", "hypercorn", "httpx", "trio", "rich",
         "rta.server", "rta.client", "rta.core.engine")


@pytest.fixture(scope="module")
def generated() -> dict[str, str]:
    return generate_docs.generate()


def test_generated_files_are_current(generated: dict[str, str]) -> None:
    stale = generate_docs.stale(generated)
    assert not stale, (f"stale generated files: {', '.join(stale)}; "
                       "run `python scripts/generate_docs.py` and commit the result")


def test_every_command_and_group_is_documented(generated: dict[str, str]) -> None:
    cli_md = generated["docs/cli.md"]
    for path, _cmd, _ctx in generate_docs.leaf_commands():
        assert f"## rta {path}\n" in cli_md, path
    pages = {p for p in generated if p.startswith("man/")}
    assert pages == {"man/rta.1"} | {f"man/rta-{name}.1" for name, _g, _c in
                                      generate_docs.groups()}


@pytest.mark.skipif(shutil.which("groff") is None, reason="needs groff")
def test_man_pages_render_without_warnings() -> None:
    for page in sorted((ROOT / "man").glob("*.1")):
        r = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z", str(page)],
                           capture_output=True, text=True, timeout=30, check=False)
        assert r.returncode == 0 and not r.stderr, f"{page.name}: {r.stderr}"


def cli_env() -> dict[str, str]:
    """`rta` on PATH (the venv's script, or a shim running this checkout)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("NO_COLOR", None)
    return env


@pytest.fixture(scope="module")
def rta_on_path(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    shim_dir = tmp_path_factory.mktemp("bin")
    shim = shim_dir / "rta"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m rta "$@"\n')
    shim.chmod(0o755)
    env = cli_env()
    env["PATH"] = f"{shim_dir}{os.pathsep}{env.get('PATH', '')}"
    return env


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_bash_completion_script_completes(rta_on_path: dict[str, str]) -> None:
    """Source completions/bash/rta in a real bash and ask it to complete."""
    script = ROOT / generate_docs.COMPLETION_FILES["bash"]

    def complete(line: str) -> list[str]:
        words = line.split(" ")
        code = (f"source {shlex.quote(str(script))}; COMP_WORDS=({line}); "
                f"COMP_CWORD={len(words) - 1}; _rta_completion rta; "
                'printf "%s\\n" "${COMPREPLY[@]}"')
        r = subprocess.run(["bash", "--norc", "--noprofile", "-c", code], env=rta_on_path,
                           capture_output=True, text=True, timeout=60, check=False)
        assert r.returncode == 0, r.stderr
        return r.stdout.split()

    assert "query" in complete("rta qu")
    assert {"funnel", "cohort", "abtest"} <= set(complete("rta query "))
    assert "--window" in complete("rta query funnel --win")


def test_zsh_and_fish_completions_answer(rta_on_path: dict[str, str]) -> None:
    """The callbacks the zsh and fish scripts run (no zsh/fish needed)."""
    env = {**rta_on_path, "_RTA_COMPLETE": "complete_zsh",
           "_TYPER_COMPLETE_ARGS": "rta alerts "}
    r = subprocess.run(["rta"], env=env, capture_output=True, text=True, timeout=60,
                       check=False)
    assert r.returncode == 0 and '"watch":' in r.stdout, r.stdout + r.stderr
    env = {**rta_on_path, "_RTA_COMPLETE": "complete_fish", "_TYPER_COMPLETE_ARGS": "rta dash",
           "_TYPER_COMPLETE_FISH_ACTION": "get-args"}
    r = subprocess.run(["rta"], env=env, capture_output=True, text=True, timeout=60,
                       check=False)
    assert r.returncode == 0 and r.stdout.startswith("dashboards"), r.stdout + r.stderr


def run_module(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rta", *args], env=env or cli_env(),
                          capture_output=True, text=True, timeout=60, check=False, cwd=ROOT)


def test_python_m_rta_and_version() -> None:
    from rta import __version__

    r = run_module("--version")
    assert r.returncode == 0 and r.stdout == f"rta {__version__}\n"
    r = run_module("--help")
    assert r.returncode == 0 and r.stdout.startswith("Usage: rta [OPTIONS] COMMAND")
    assert "\x1b[" not in r.stdout


def test_help_imports_no_heavy_module() -> None:
    """`rta --help` and completion must start fast: no numpy, pyarrow, rich, httpx, trio or
    server stack at import time (they load inside the commands)."""
    code = ("import sys\n"
            "from rta.cli.main import app\n"
            "try:\n"
            "    app(['--help'], prog_name='rta')\n"
            "except SystemExit:\n"
            "    pass\n"
            f"heavy = {HEAVY!r}\n"
            "bad = sorted(m for m in sys.modules if m in heavy or m.startswith("
            "tuple(h + '.' for h in heavy)))\n"
            "sys.stderr.write(repr(bad))\n"
            "sys.exit(1 if bad else 0)\n")
    for args in ([], ["query", "funnel"]):
        r = subprocess.run([sys.executable, "-c", code.replace("['--help']",
                                                                repr([*args, "--help"]))],
                           env=cli_env(), capture_output=True, text=True, timeout=60,
                           check=False, cwd=ROOT)
        assert r.returncode == 0, f"rta {' '.join(args)} --help imported: {r.stderr}"


# -- README -----------------------------------------------------------------------------


def readme_rta_commands() -> list[str]:
    """Every `rta ...` line in the README's shell blocks (continuations joined)."""
    text = (ROOT / "README.md").read_text()
    out = []
    for block in re.findall(r"```(?:bash|sh|console)\n(.*?)```", text, re.S):
        joined = block.replace("\\\n", " ")
        for line in joined.splitlines():
            line = line.strip().removeprefix("$ ")
            line = line.split(" #", 1)[0].strip()
            if line.startswith("rta "):
                out.append(line.split(" | ", 1)[0].split(" > ", 1)[0].split(" &", 1)[0])
    return out


def resolve(argv: list[str]) -> tuple[Any, list[str]]:
    """The command an argument list names, and the rest of the arguments."""
    cmd: Any = generate_docs.cli_root()
    rest = list(argv)
    while generate_docs.is_group(cmd) and rest and not rest[0].startswith("-"):
        name = rest.pop(0)
        assert name in cmd.commands, f"unknown command {name!r} in {argv}"
        cmd = cmd.commands[name]
    return cmd, rest


def test_readme_commands_exist_with_their_options() -> None:
    commands = readme_rta_commands()
    assert len(commands) >= 10
    for line in commands:
        argv = shlex.split(line)[1:]
        cmd, rest = resolve(argv)
        known = {opt for p in cmd.params for opt in (*p.opts, *p.secondary_opts)}
        known |= {"--help", "-h", "--version", "-V"}
        for arg in rest:
            if arg.startswith("--"):
                assert arg.split("=", 1)[0] in known, f"{line!r}: {arg} is not an option"
