"""Client for a running rta daemon.

The names load on first use (PEP 562): `rta.client.readers` serves local loads too, and
importing it must not bring in httpx."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rta.client.client import ApiError, ClientError, DaemonUnreachable, RtaClient

__all__ = ["ApiError", "ClientError", "DaemonUnreachable", "RtaClient"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(import_module("rta.client.client"), name)
    raise AttributeError(f"module 'rta.client' has no attribute {name!r}")
