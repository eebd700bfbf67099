"""The rta engine: events, store, queries. Imports nothing from server, client or CLI.

`Engine`, `EngineConfig` and `open_engine` load on first use (PEP 562), so commands that
need only the store (`rta ingest --local`) skip the engine's trio and feature imports.

Thread rule: importing is side-effect free; any thread.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rta.core.config import EngineConfig
    from rta.core.engine import Engine, open_engine

__all__ = ["Engine", "EngineConfig", "open_engine"]
_HOMES = {"Engine": "rta.core.engine", "open_engine": "rta.core.engine",
          "EngineConfig": "rta.core.config"}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'rta.core' has no attribute {name!r}")
