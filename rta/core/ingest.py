"""The one ingest path: validation, the rejected-batch error, and the accepted outcome.

Every entry (HTTP `POST /events` and `/events/batch`, the fast lane, WebSocket ingest, the
SDK routes) goes through `Engine.admit*` and `Engine.ingest` (or `Engine.submit`, both at
once), so validation (column-wise fast path, per-event fallback), the rejection counter,
the `invalid_batch` error and deduplication + the WAL group commit behave the same on every
transport. The bulk loader shares `EventValidator` and the store's deduplication.

Thread rule: event loop: admission and the group commit; validating a batch is pure and
touches no shared state but the key budget, which locks itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rta.core.errors import ValidationError
from rta.core.events import EventBatch

HTTP_PARTIAL_HINT = "(send ?partial=true to store the valid ones)"
Rejection = dict[str, Any]  # {"index": i, "error": {"code", "message", "details"}}


@dataclass(frozen=True)
class Admitted:
    """A validated batch: the events to store, and those dropped (partial requests only)."""

    batch: EventBatch
    rejected: list[Rejection] = field(default_factory=list)


@dataclass(frozen=True)
class Submitted:
    """What a committed request did: `ids` are the stored events' ids, `batch_ids` every
    valid event's (duplicates included, in request order)."""

    accepted: int
    duplicates: int
    ids: list[str]
    batch_ids: list[str]
    rejected: list[Rejection]


def invalid_batch(count: int, total: int, details: list[dict[str, Any]],
                  hint: str) -> ValidationError:
    """The one error for a refused batch: "N of M events are invalid", code `invalid_batch`."""
    return ValidationError(f"{count} of {total} events are invalid; nothing was stored {hint}",
                           details, code="invalid_batch")


def rejection_details(rejected: list[Rejection]) -> list[dict[str, Any]]:
    """`[{index, field, code, message}]`: one line per invalid event (its first field)."""
    return [{"index": r["index"], "field": r["error"]["details"][0].get("field", "")
             if r["error"].get("details") else "",
             "code": r["error"]["code"], "message": r["error"]["message"]} for r in rejected]


def validate_many(validator: Any, items: list[Any], now: int, size_bound: int | None,
                  exact: Callable[[], list[Any]] | None = None
                  ) -> tuple[EventBatch, list[Rejection]]:
    """Column-wise when that is exact, else event by event (over `exact()`'s items, a
    re-parse with the strict JSON reader, when the caller parsed with a faster one)."""
    batch = validator.fast_batch(items, now, size_bound)
    if batch is not None:
        return batch, []
    if exact is not None:
        items = exact()
    result: tuple[EventBatch, list[Rejection]] = validator.validate_batch(
        items, now, size_bound=size_bound)
    return result
