"""Client for a running rta daemon."""

from rta.client.client import ApiError, ClientError, DaemonUnreachable, RtaClient

__all__ = ["ApiError", "ClientError", "DaemonUnreachable", "RtaClient"]
