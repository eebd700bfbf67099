"""The installed artefact, not the checkout: a wheel built from this tree and installed (not
editable) into a fresh virtual environment runs, serves every file of web/ byte for byte, and
puts the man pages and shell completions where `man` and the shells look for them.

The fresh environment takes its dependencies from the test interpreter's site-packages through
a .pth file, so nothing is downloaded; a path added by a .pth file has its own .pth files
ignored, so the project's editable install cannot leak into it (checked: `rta` must import
from the fresh environment).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from rta import __version__
from scripts.generate_docs import COMPLETION_FILES

ROOT = Path(__file__).resolve().parent.parent
# What the build reads; the rest of the checkout (tests, bench, caches, build/) stays out.
BUILD_INPUTS = ("pyproject.toml", "README.md", "rta", "web", "man", "completions")
# Where pyproject's data-files put each completion script under the prefix.
COMPLETION_TARGETS = {"bash": "share/bash-completion/completions/rta",
                      "zsh": "share/zsh/site-functions/_rta",
                      "fish": "share/fish/vendor_completions.d/rta.fish"}

pytestmark = pytest.mark.slow


@dataclass
class Installed:
    wheel: Path
    prefix: Path  # the fresh virtual environment
    env: dict[str, str]  # its bin/ first on PATH, nothing pointing at the checkout

    def bin(self, name: str) -> str:
        return str(self.prefix / "bin" / name)

    def run(self, *argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(list(argv), env=self.env, cwd=self.prefix, capture_output=True,
                              text=True, timeout=60, check=False)


SHARE_PAGE = "share.html"


def web_files() -> list[str]:
    return sorted(p.relative_to(ROOT / "web").as_posix() for p in (ROOT / "web").rglob("*")
                  if p.is_file() and "__pycache__" not in p.parts)


def build_wheel(tmp: Path) -> Path:
    """`pip wheel` over a copy of the build inputs: building in the checkout would leave
    build/ behind, whose stale files end up in later wheels."""
    src = tmp / "src"
    for name in BUILD_INPUTS:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            src.mkdir(exist_ok=True)
            shutil.copy2(ROOT / name, src / name)
    # Offline when this environment can build (setuptools with bdist_wheel, as the [test]
    # extra installs); else pip fetches pyproject's build requirements.
    try:
        import setuptools.command.bdist_wheel  # noqa: F401
        isolation = ["--no-build-isolation"]
    except ImportError:
        isolation = []
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", *isolation,
                        "-w", str(tmp / "dist"), str(src)],
                       capture_output=True, text=True, timeout=300, check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    (wheel,) = (tmp / "dist").glob("rta-*.whl")
    return wheel


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    tmp = tmp_path_factory.mktemp("wheel")
    wheel = build_wheel(tmp)
    prefix = tmp / "venv"
    # No pip inside (ensurepip alone takes seconds): this pip installs into it (--python).
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(prefix)], check=True,
                   timeout=120)
    python = prefix / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; "
                              "print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    deps = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    Path(purelib, "_rta_test_dependencies.pth").write_text("\n".join(sorted(deps)) + "\n")
    r = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q",
                        "--no-deps", "--no-index", str(wheel)],
                       capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "MANPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env["PATH"] = f"{prefix / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["NO_COLOR"] = "1"
    return Installed(wheel, prefix, env)


def test_wheel_carries_every_module_and_exactly_web(installed: Installed) -> None:
    """pyproject lists the packages explicitly (web/ maps to rta.web), so a new subpackage
    left out of that list would silently vanish from the wheel: catch it here."""
    names = set(zipfile.ZipFile(installed.wheel).namelist())
    modules = {p.relative_to(ROOT).as_posix() for p in (ROOT / "rta").rglob("*.py")
               if "__pycache__" not in p.parts}
    assert not modules - names, f"missing from the wheel: {sorted(modules - names)}"
    assert "rta/py.typed" in names
    assert sorted(n.removeprefix("rta/web/") for n in names if n.startswith("rta/web/")) == \
        web_files()


def test_installed_rta_runs_from_the_fresh_environment(installed: Installed) -> None:
    r = installed.run(installed.bin("rta"), "--version")
    assert r.returncode == 0 and r.stdout == f"rta {__version__}\n", r.stdout + r.stderr
    r = installed.run(installed.bin("python"), "-c",
                      "import rta, rta.server.web as w; print(rta.__file__); "
                      "print(w.web_root())")
    assert r.returncode == 0, r.stderr
    module, web_root = r.stdout.split("\n")[:2]
    assert Path(module).is_relative_to(installed.prefix), module
    assert Path(web_root).is_relative_to(installed.prefix), web_root


@pytest.fixture(scope="module")
def served(installed: Installed) -> Iterator[str]:
    """`rta serve --port 0` from the installed script; the URL it prints on stderr."""
    log_path = installed.prefix / "serve.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([installed.bin("rta"), "serve", "--port", "0", "--data-dir",
                                 str(installed.prefix / "data")], env=installed.env,
                                cwd=installed.prefix, stdout=log, stderr=log)
        try:
            deadline = time.monotonic() + 30
            while True:
                text = log_path.read_text(errors="replace")
                found = re.findall(r"listening on (http://\S+?)(?:,|\s)", text)
                if found:
                    break
                assert proc.poll() is None, f"rta serve exited early:\n{text}"
                assert time.monotonic() < deadline, f"rta serve did not start:\n{text}"
                time.sleep(0.05)
            yield found[-1]
        finally:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def test_installed_server_serves_web_byte_for_byte(served: str) -> None:
    """Moving the dashboard to web/ must not change a byte of what is served."""
    with httpx.Client(base_url=served, timeout=30) as http:
        index = http.get("/")
        assert index.status_code == 200
        assert index.headers["content-type"].startswith("text/html")
        assert index.content == (ROOT / "web" / "dashboard.html").read_bytes()
        js = http.get("/js/app.js")
        assert js.status_code == 200
        assert js.headers["content-type"].startswith("text/javascript")
        for name in web_files():
            if name == SHARE_PAGE:
                continue
            r = http.get(f"/{name}")
            assert r.status_code == 200, name
            assert r.content == (ROOT / "web" / name).read_bytes(), name
        # the share page is served only through a link, with its dashboard's id filled in
        dashboard = http.post("/dashboards/template", json={"template": "overview"}).json()
        link = http.post(f"/dashboards/{dashboard['id']}/share", json={}).json()
        page = http.get(urlsplit(link["url"]).path)
        assert page.status_code == 200
        assert page.content == (ROOT / "web" / SHARE_PAGE).read_bytes().replace(
            b"{{dashboardId}}", dashboard["id"].encode())


def test_man_pages_are_found(installed: Installed) -> None:
    man_dir = installed.prefix / "share" / "man" / "man1"
    pages = sorted(p.name for p in (ROOT / "man").glob("*.1"))
    assert sorted(p.name for p in man_dir.glob("rta*.1")) == pages
    for page in pages:
        assert (man_dir / page).read_bytes() == (ROOT / "man" / page).read_bytes(), page
    if shutil.which("man") is None:
        return
    env = {**installed.env, "MANPATH": str(installed.prefix / "share" / "man")}
    for topic in ("rta", "rta-query"):
        r = subprocess.run(["man", "-w", topic], env=env, capture_output=True, text=True,
                           timeout=30, check=False)
        assert r.returncode == 0, r.stderr
        assert Path(r.stdout.strip()) == man_dir / f"{topic}.1"


def test_completions_are_where_the_shells_look(installed: Installed) -> None:
    for shell, target in COMPLETION_TARGETS.items():
        path = installed.prefix / target
        assert path.is_file(), f"{shell}: no {target}"
        assert path.read_bytes() == (ROOT / COMPLETION_FILES[shell]).read_bytes(), shell
    if shutil.which("bash") is None:
        return
    # The installed bash script completes against the installed rta.
    script = installed.prefix / COMPLETION_TARGETS["bash"]
    code = (f"source '{script}'; COMP_WORDS=(rta query fun); COMP_CWORD=2; "
            '_rta_completion rta; printf "%s\\n" "${COMPREPLY[@]}"')
    r = installed.run("bash", "--norc", "--noprofile", "-c", code)
    assert r.returncode == 0 and r.stdout.split() == ["funnel"], r.stdout + r.stderr
