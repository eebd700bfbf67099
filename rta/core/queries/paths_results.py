"""Paths: what a backend computes (`PathCounts`) and the answer built from it (`PathsResult`).

A backend walks every unit's path and counts walk transitions: how many paths have `name`
at step k followed by `next` at step k + 1 (None: the walk stops at step k). Everything
else is derived here, once for every backend: node totals, drop-offs, the top K names per
step (the rest grouped into the `$other` node, links summed over what they group) and the
order of nodes and links.

Node ids are `"<step>_<name>"` (PostHog's path keys). Links point forward in time: in an
end-point query (walking backwards) a link goes from step k + 1 (the earlier event) to
step k.

Thread rule: pure functions over their arguments; any thread.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from rta.core.queries.paths_specs import OTHER, PathsQuery

Transition = tuple[int, str, str | None, int]  # (step from 1, name, next name or None, paths)


@dataclass(frozen=True)
class PathCounts:
    """Walk transitions, as counted by a backend (any order; one row per distinct key)."""

    transitions: tuple[Transition, ...]


@dataclass(frozen=True)
class PathNode:
    step: int
    name: str
    users: int
    dropoff: int  # paths whose walk stops here

    @property
    def id(self) -> str:
        return node_id(self.step, self.name)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "step": self.step, "name": self.name, "users": self.users,
                "dropoff": self.dropoff}


@dataclass(frozen=True)
class PathLink:
    source: str
    target: str
    users: int

    def to_json(self) -> dict[str, Any]:
        return {"source": self.source, "target": self.target, "users": self.users}


@dataclass(frozen=True)
class PathsResult:
    query: PathsQuery
    total: int  # paths (units with one)
    nodes: tuple[PathNode, ...]
    links: tuple[PathLink, ...]

    def to_json(self) -> dict[str, Any]:
        q = self.query
        return {"pathType": q.path_type, "unit": q.unit, "startPoint": q.start_point,
                "endPoint": q.end_point, "direction": "backward" if q.backward else "forward",
                "steps": q.steps, "windowMinutes": q.window_minutes, "topK": q.top_k,
                "collapseRepeats": q.collapse_repeats, "startTime": q.start,
                "endTime": None if q.end is None else q.end - 1, "totalPaths": self.total,
                "nodes": [n.to_json() for n in self.nodes],
                "links": [link.to_json() for link in self.links]}


def node_id(step: int, name: str) -> str:
    return f"{step}_{name}"


def _rank(name: str) -> tuple[bool, str]:
    return name == OTHER, name  # `$other` last among equals


def build(q: PathsQuery, counts: PathCounts) -> PathsResult:
    """Group names beyond each step's top K into `$other`, then total nodes and links."""
    per_name: dict[tuple[int, str], int] = defaultdict(int)
    for step, name, _, n in counts.transitions:
        per_name[step, name] += n
    kept: dict[int, set[str]] = defaultdict(set)
    by_step: dict[int, list[tuple[str, int]]] = defaultdict(list)
    for (step, name), n in per_name.items():
        by_step[step].append((name, n))
    for step, names in by_step.items():
        names.sort(key=lambda x: (-x[1], x[0]))
        kept[step] = {name for name, _ in names[:q.top_k]}

    def group(step: int, name: str) -> str:
        return name if name in kept[step] else OTHER

    users: dict[tuple[int, str], int] = defaultdict(int)
    drops: dict[tuple[int, str], int] = defaultdict(int)
    links: dict[tuple[int, str, str], int] = defaultdict(int)
    for step, name, nxt, n in counts.transitions:
        g = group(step, name)
        users[step, g] += n
        if nxt is None:
            drops[step, g] += n
        else:
            links[step, g, group(step + 1, nxt)] += n
    nodes = sorted((PathNode(s, name, n, drops.get((s, name), 0))
                    for (s, name), n in users.items()),
                   key=lambda x: (x.step, -x.users, _rank(x.name)))
    ordered = sorted(links.items(), key=lambda kv: (kv[0][0], -kv[1], _rank(kv[0][1]),
                                                    _rank(kv[0][2])))
    out = []
    for (step, a, b), n in ordered:
        src, dst = node_id(step, a), node_id(step + 1, b)
        out.append(PathLink(dst, src, n) if q.backward else PathLink(src, dst, n))
    total = sum(n for (s, _), n in users.items() if s == 1)
    return PathsResult(q, total, tuple(nodes), tuple(out))
