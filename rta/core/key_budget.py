"""KeyBudget: the store-wide caps on distinct property columns and event types.

Every distinct property column and event type costs memory for as long as the store lives
(dictionary entries, segment footers, the key lists queries and the dashboard read), so a
client that invents a new key or type per event could grow the daemon without bound. The
validator asks the budget before it accepts an event: names already known pass for free;
new ones are claimed at validation time (so concurrent batches cannot overshoot together)
and refused with a 400 once the cap is reached. Nothing already stored is touched, and
events that only use known names are always accepted. A claim becomes a stored name when
its batch is applied and is given back when the batch is dropped unstored.

Thread rule: any thread; the budget locks itself (validation may run on worker threads, and
finalisers release claims from whichever thread frees a batch).
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from rta.core.errors import ValidationError

if TYPE_CHECKING:
    from rta.core.events import EventBatch


class KeyBudget:
    def __init__(self, max_columns: int, max_types: int, columns: Iterable[str] = (),
                 types: Iterable[str] = ()) -> None:
        self.max_columns = max_columns
        self.max_types = max_types
        self._columns: set[str] = set(columns)  # stored (applied) names
        self._types: set[str] = set(types)
        # Names claimed by batches not yet applied, with how many batches claim each.
        self._pending_columns: dict[str, int] = {}
        self._pending_types: dict[str, int] = {}
        self._lock = threading.Lock()  # validation may run on worker threads (bulk loads)
        self.refused = 0

    @property
    def columns(self) -> int:
        return len(self._columns) + len(self._pending_columns)

    @property
    def types(self) -> int:
        return len(self._types) + len(self._pending_types)

    def claim(self, batch: EventBatch, etype: str, columns: Iterable[str]) -> None:
        """Admit one event's type and property columns into `batch`, or raise (claiming
        nothing). The claim lasts until the batch is applied or dropped."""
        with self._lock:
            new_type = etype not in self._types and etype not in self._pending_types
            if new_type and self.types >= self.max_types:
                self.refused += 1
                raise ValidationError(
                    f"type {etype!r} is new and the store already holds the limit of "
                    f"{self.max_types} distinct event types (setting max_event_types)",
                    [{"field": "type", "message": "event type limit reached", "value": etype,
                      "limit": self.max_types}], code="event_type_limit")
            new_cols = [c for c in dict.fromkeys(columns)
                        if c not in self._columns and c not in self._pending_columns]
            if new_cols and self.columns + len(new_cols) > self.max_columns:
                self.refused += 1
                first = new_cols[0]
                raise ValidationError(
                    f"properties.{first[2:]} is a new property key and the store already "
                    f"holds {self.columns} of its limit of {self.max_columns} distinct "
                    "property keys (setting max_property_keys)",
                    [{"field": "properties." + first[2:], "message":
                      "property key limit reached", "newKeys": len(new_cols),
                      "limit": self.max_columns}], code="property_key_limit")
            self._hold(batch, [etype] if new_type else [], new_cols)

    def claim_batch(self, batch: EventBatch, types: Iterable[str],
                    columns: Iterable[str]) -> bool:
        """Admit a whole batch's names at once if they all fit; False (nothing claimed)
        when they do not, so the per-event path can say which events are refused."""
        with self._lock:
            new_types = [t for t in set(types)
                         if t not in self._types and t not in self._pending_types]
            new_cols = [c for c in columns
                        if c not in self._columns and c not in self._pending_columns]
            if self.types + len(new_types) > self.max_types or \
                    self.columns + len(new_cols) > self.max_columns:
                return False
            self._hold(batch, new_types, new_cols)
            return True

    def _hold(self, batch: EventBatch, types: list[str], columns: list[str]) -> None:
        """Count `batch`'s new names as pending until it is applied or garbage: a batch a
        route refuses after validation (an invalid neighbour, a full disk) must not keep
        them, or refused requests could use up the budget."""
        if not types and not columns:
            return
        held = batch.budget_claims
        if held is None:
            held = batch.budget_claims = ([], [])
            weakref.finalize(batch, self._release, held)
        for name in types:
            self._pending_types[name] = self._pending_types.get(name, 0) + 1
        for name in columns:
            self._pending_columns[name] = self._pending_columns.get(name, 0) + 1
        held[0].extend(types)
        held[1].extend(columns)

    def _release(self, held: tuple[list[str], list[str]]) -> None:
        with self._lock:
            for pending, names in ((self._pending_types, held[0]),
                                   (self._pending_columns, held[1])):
                for name in names:
                    count = pending.get(name)
                    if count is None:
                        continue  # applied meanwhile: it is stored now
                    if count <= 1:
                        del pending[name]
                    else:
                        pending[name] = count - 1

    def register(self, batch: EventBatch) -> None:
        """Names of a batch now stored (called as it is applied): known from now on."""
        with self._lock:
            for name in batch.type_names():
                if name not in self._types:
                    self._types.add(name)
                    self._pending_types.pop(name, None)
            for name in batch.props:
                if name not in self._columns:
                    self._columns.add(name)
                    self._pending_columns.pop(name, None)

    def stats(self) -> dict[str, Any]:
        return {"propertyKeys": self.columns, "maxPropertyKeys": self.max_columns,
                "eventTypes": self.types, "maxEventTypes": self.max_types,
                "refusedForLimits": self.refused}
