"""Turn stored columns back into events as the API shows them (small row counts only).

Thread rule: any thread, over one snapshot the caller holds for the whole query (blocks are
immutable).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rta.core.embedded.person_blocks import raw_user
from rta.core.embedded.store.block import Block, not_null
from rta.core.embedded.store.dictionary import Dictionaries
from rta.core.events import BOOL, FLOAT, INT, STR


def render_events(block: Block, rows: np.ndarray, dicts: Dictionaries) -> list[dict[str, Any]]:
    """Events for `rows` of `block`, with properties in their original types (dotted keys)."""
    if not len(rows):
        return []
    ids = block.ids(rows)
    types = dicts.types.decode(block.type[rows])
    raw = raw_user(block)[rows]
    users = dicts.users.decode(raw)
    persons = block.user[rows]  # (person codes on a person-aware block)
    linked = np.flatnonzero(persons != raw).tolist()
    person_ids = dict(zip(linked, dicts.users.decode(persons[linked]).tolist(), strict=True))
    sessions = dicts.sessions.decode(block.session[rows])
    ts = block.ts[rows].tolist()
    recv = block.recv[rows].tolist()
    props: list[dict[str, Any]] = [{} for _ in range(len(rows))]
    values = dicts.values.decoded()
    columns = block.prop_columns
    for name in columns.dense_names():
        sub = columns.dense_column(name)[rows]
        present = np.flatnonzero(not_null(name[0], sub))
        _fill(props, name[0], name[2:], present, sub[present], values)
    # Sparse columns: the values at `rows`, found for all keys of a kind at once.
    order = np.argsort(rows, kind="stable")
    wanted = rows[order]
    for kind, group in columns.groups().items():
        pos = np.searchsorted(wanted, group.rows)
        hit = np.flatnonzero(pos < len(wanted))
        hit = hit[wanted[pos[hit]] == group.rows[hit]]
        keys = (np.searchsorted(group.offsets, hit, "right") - 1).tolist()
        names = group.names
        for i, key, v in zip(order[pos[hit]].tolist(), keys,
                             _python_values(kind, group.values[hit], values), strict=True):
            props[i][names[key][2:]] = v
    # Keys in sorted order: the store keeps no order of its own (columns are ordered by first
    # appearance per block, which sealing and merging change), and every backend agrees.
    # `personId`: the person of the distinct id (the id itself where it was never merged)
    return [{"id": ids[i], "type": types[i], "userId": users[i],
             "personId": person_ids.get(i, users[i]),
             "sessionId": sessions[i], "timestamp": ts[i], "receivedAt": recv[i],
             "properties": dict(sorted(props[i].items()))}
            for i in range(len(rows))]


def _fill(props: list[dict[str, Any]], kind: str, key: str, at: np.ndarray,
          raw: np.ndarray, strings: np.ndarray) -> None:
    """Set `key` in the property dicts of events `at` to the stored values `raw`."""
    for i, v in zip(at.tolist(), _python_values(kind, raw, strings), strict=True):
        props[i][key] = v


def _python_values(kind: str, raw: np.ndarray, strings: np.ndarray) -> list[Any]:
    """Stored values of `kind` as the Python values events carry."""
    if kind == STR:
        out: list[Any] = strings[raw].tolist()
        return out
    if kind == BOOL:
        return [bool(v) for v in raw.tolist()]
    if kind in (INT, FLOAT):
        vals: list[Any] = raw.tolist()
        return vals
    raise ValueError(f"unknown property kind {kind!r}")
