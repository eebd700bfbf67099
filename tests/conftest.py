from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from rta.core.config import EngineConfig
from tests.support import LiveServer, live_server


@pytest.fixture
def engine_config(tmp_path: Path) -> EngineConfig:
    return EngineConfig(data_dir=str(tmp_path / "data"), max_events=1000)


@pytest.fixture
async def server(engine_config: EngineConfig) -> AsyncIterator[LiveServer]:
    """A real hypercorn server on a free port with a fresh data dir."""
    async with live_server(engine_config) as srv:
        yield srv


@pytest.fixture
async def http(server: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        yield client
