"""The rta engine: events, store, queries. Imports nothing from server, client or CLI."""

from rta.core.config import EngineConfig
from rta.core.engine import Engine, open_engine

__all__ = ["Engine", "EngineConfig", "open_engine"]
