"""Errors the engine raises; every layer above maps them to the JSON error body.

Thread rule: any thread.
"""

from __future__ import annotations

from typing import Any


class RtaError(Exception):
    """Base error: carries a stable machine code, a message and structured details."""

    status = 400
    code = "error"

    def __init__(self, message: str, details: list[dict[str, Any]] | None = None,
                 code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or []
        if code is not None:
            self.code = code

    def to_dict(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


class ValidationError(RtaError):
    """Bad input: what was wrong and where (field path, batch index)."""

    status = 400
    code = "validation_error"


class NotFoundError(RtaError):
    status = 404
    code = "not_found"


class ConflictError(RtaError):
    """The request would replace something that exists (say so, do not overwrite it)."""

    status = 409
    code = "conflict"


class PayloadTooLarge(RtaError):
    status = 413
    code = "payload_too_large"


class StorageError(RtaError):
    """The store could not make data durable (disk full, read-only): nothing was acknowledged."""

    status = 507
    code = "storage_unavailable"


class DamagedSegmentError(RtaError):
    """A sealed segment's data could not be read back (bit rot, a truncated copy)."""

    status = 503
    code = "segment_damaged"


class StoreLockedError(RtaError):
    status = 409
    code = "store_locked"


def field_error(field: str, message: str, **extra: Any) -> ValidationError:
    """A validation error about one field, with the field path in the details."""
    return ValidationError(f"{field}: {message}", [{"field": field, "message": message, **extra}])


class BackendUnavailable(RtaError):
    """The query backend (ClickHouse) cannot answer now: unreachable, or it refused."""

    status = 503
    code = "backend_unavailable"


class BacklogFull(RtaError):
    """Events waiting to ship to ClickHouse fill their disk bound: nothing more is accepted
    until they ship (acknowledging what could not be kept would lose it)."""

    status = 503
    code = "backlog_full"
