"""Test support: real servers (in-process on a free port, or a real `rta serve` process)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

import trio

from rta.core.config import EngineConfig
from rta.core.engine import Engine, open_engine
from rta.daemon import serve_app


@dataclass
class LiveServer:
    url: str
    engine: Engine

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://", 1) + "/ws"


@asynccontextmanager
async def live_server(config: EngineConfig, **options: Any) -> AsyncIterator[LiveServer]:
    """A real hypercorn server on 127.0.0.1:<free port> around a fresh engine."""
    async with open_engine(config) as engine, trio.open_nursery() as nursery:
        shutdown = trio.Event()
        binds = await nursery.start(partial(serve_app, engine, "127.0.0.1", 0, True,
                                            shutdown.wait, **options))
        try:
            yield LiveServer(binds[0], engine)
        finally:
            shutdown.set()


class ServeProcess:
    """`rta serve` as a separate OS process, for crash and restart tests."""

    _count = 0

    def __init__(self, data_dir: str, *extra: str, env: dict[str, str] | None = None,
                 preexec: Any = None) -> None:
        self.data_dir = data_dir
        self.preexec = preexec
        self.extra = extra
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""
        ServeProcess._count += 1
        self.log_path = os.path.join(os.path.dirname(data_dir.rstrip("/")) or ".",
                                     f"serve-{os.getpid()}-{ServeProcess._count}.log")

    def start(self, timeout: float = 20.0) -> str:
        self._log = open(self.log_path, "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "rta", "serve", "--port", "0", "--data-dir", self.data_dir,
             *self.extra], stdout=self._log, stderr=self._log, env=self.env,
            preexec_fn=self.preexec)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with open(self.log_path, "rb") as f:
                text = f.read().decode(errors="replace")
            found = re.findall(r"listening on (http://\S+?)(?:,|\s)", text)
            if found:
                self.url = found[-1]
                return self.url
            if self.proc.poll() is not None:
                self._log.close()
                raise RuntimeError(f"rta serve exited early:\n{text}")
            time.sleep(0.05)
        self.proc.kill()
        self.proc.wait()
        self._log.close()
        raise TimeoutError(f"rta serve did not start in {timeout}s")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self._log.close()

    def stop(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(30)
        self._log.close()
        return code
