"""`rta query paths`: the tree as a person reads it, rendered into a fixed-width console
(tests/cli/test_cli_conventions.py runs the command against a real daemon)."""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest
from rich.console import Console

from rta.cli import output
from rta.cli.query_paths import render_paths


@pytest.fixture
def screen() -> Iterator[io.StringIO]:
    buf = io.StringIO()
    saved = dict(output._consoles)
    output._consoles[False] = Console(file=buf, width=80, color_system=None, highlight=False)
    yield buf
    output._consoles.clear()
    output._consoles.update(saved)


def test_tree_of_an_end_point_query(screen: io.StringIO) -> None:
    render_paths({"direction": "backward", "endPoint": "buy", "unit": "users",
                  "totalPaths": 4,
                  "nodes": [{"id": "1_buy", "step": 1, "name": "buy", "users": 4, "dropoff": 1},
                            {"id": "2_cart", "step": 2, "name": "cart", "users": 3,
                             "dropoff": 3}],
                  "links": [{"source": "2_cart", "target": "1_buy", "users": 3}]})
    assert screen.getvalue().splitlines() == [
        "Paths to buy (users, 4 paths)",
        "└── ← buy  4  1 stop here",
        "    └── ← cart  3 (75%)  3 stop here"]


def test_merging_paths_are_expanded_once(screen: io.StringIO) -> None:
    node = {"dropoff": 0}
    render_paths({"direction": "forward", "unit": "users", "totalPaths": 4, "nodes": [
        {**node, "id": "1_a", "step": 1, "name": "a", "users": 4},
        {**node, "id": "2_b", "step": 2, "name": "b", "users": 2},
        {**node, "id": "2_c", "step": 2, "name": "c", "users": 2},
        {"id": "3_d", "step": 3, "name": "d", "users": 4, "dropoff": 2},
        {"id": "4_e", "step": 4, "name": "e", "users": 2, "dropoff": 2}], "links": [
        {"source": "1_a", "target": "2_b", "users": 2},
        {"source": "1_a", "target": "2_c", "users": 2},
        {"source": "2_b", "target": "3_d", "users": 2},
        {"source": "2_c", "target": "3_d", "users": 2},
        {"source": "3_d", "target": "4_e", "users": 2}]})
    assert screen.getvalue().splitlines() == [
        "Paths (users, 4 paths)",
        "└── → a  4",
        "    ├── → b  2 (50%)",
        "    │   └── → d  2 (100%)  2 stop here",
        "    │       └── → e  2 (50%)  2 stop here",
        "    └── → c  2 (50%)",
        "        └── → d  2 (100%)  2 stop here  (continues above)"]
