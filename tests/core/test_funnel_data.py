"""Shared fixtures for the behavioural-query tests: engines built from event lists, and
hypothesis strategies for small, adversarial event logs (tied timestamps, out-of-order
arrival, repeated steps). No tests live here."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from rta.core.config import EngineConfig
from rta.core.engine import Engine

NOW = 1_700_000_000_000
T0 = NOW - 1_000_000


def make_engine(events: list[dict[str, Any]], chunk: int = 7, max_events: int = 10,
                data_dir: str | None = None) -> Engine:
    """An engine holding `events`, ingested in list order in chunks of `chunk`.

    A small `max_events` seals several segments, so queries read several blocks and the
    head, with out-of-order timestamps across them. With `data_dir` the segments are
    written to disk (Blocks labelled "seg-...", which the user index caches).
    """
    eng = Engine(EngineConfig(data_dir=data_dir, max_events=max_events, fsync=False))
    ingest(eng, events, chunk)
    return eng


def ingest(eng: Engine, events: list[dict[str, Any]], chunk: int = 7) -> None:
    for i in range(0, len(events), chunk):
        batch, rejected = eng.validator.validate_batch(events[i:i + chunk], NOW)
        assert not rejected, rejected
        eng.store.append(batch)


TYPES = ("a", "b", "c", "x")
USERS = ("u1", "u2", "u3", "u4")


@st.composite
def event_logs(draw: st.DrawFn, max_size: int = 40) -> list[dict[str, Any]]:
    """Events over a few users, types and a narrow time range (many ties), in random
    arrival order, each with a small 'k' property and a session."""
    n = draw(st.integers(0, max_size))
    out = []
    for i in range(n):
        user = draw(st.sampled_from(USERS))
        out.append({
            "id": f"e{i}",
            "type": draw(st.sampled_from(TYPES)),
            "userId": user,
            "sessionId": user + draw(st.sampled_from(("-s1", "-s2"))),
            "timestamp": T0 + draw(st.integers(0, 30)) * 10,
            "properties": {"k": draw(st.integers(0, 2))},
        })
    return out
