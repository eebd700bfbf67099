"""Turn stored columns back into events as the API shows them (small row counts only)."""

from __future__ import annotations

from typing import Any

import numpy as np

from rta.core.events import BOOL, FLOAT, INT, INT64_MIN, STR
from rta.core.store.block import Block
from rta.core.store.dictionary import Dictionaries


def render_events(block: Block, rows: np.ndarray, dicts: Dictionaries) -> list[dict[str, Any]]:
    """Events for `rows` of `block`, with properties in their original types (dotted keys)."""
    if not len(rows):
        return []
    ids = block.ids(rows)
    types = dicts.types.decode(block.type[rows])
    users = dicts.users.decode(block.user[rows])
    sessions = dicts.sessions.decode(block.session[rows])
    ts = block.ts[rows].tolist()
    recv = block.recv[rows].tolist()
    props: list[dict[str, Any]] = [{} for _ in range(len(rows))]
    values = dicts.values.decoded()
    for name, col in block.props.items():
        kind, key = name[0], name[2:]
        sub = col[rows]
        if kind == FLOAT:
            present = np.flatnonzero(~np.isnan(sub))
            vals: list[Any] = sub[present].tolist()
        elif kind == INT:
            present = np.flatnonzero(sub != INT64_MIN)
            vals = sub[present].tolist()
        elif kind == STR:
            present = np.flatnonzero(sub >= 0)
            vals = values[sub[present]].tolist()
        elif kind == BOOL:
            present = np.flatnonzero(sub >= 0)
            vals = [bool(v) for v in sub[present].tolist()]
        else:
            continue
        for i, v in zip(present.tolist(), vals, strict=True):
            props[i][key] = v
    return [{"id": ids[i], "type": types[i], "userId": users[i], "sessionId": sessions[i],
             "timestamp": ts[i], "receivedAt": recv[i], "properties": props[i]}
            for i in range(len(rows))]
