"""`rta query paths`: the most frequent paths from a start event (or to an end event), drawn
as a tree of steps; `--json` prints the API's answer unchanged.

The tree follows the links step by step from the first step's nodes; every node shows the
paths of its link, their share of the parent's paths, and how many paths stop there. Where
paths merge (a node reached from several parents) its subtree is drawn once.
"""

from __future__ import annotations

from typing import Any

import typer

from rta.cli.choices import PATH_TYPES, PATH_UNITS, one_of
from rta.cli.output import JsonOption, ServerOption, emit
from rta.cli.query_behaviour import (
    RangeOption,
    SegmentOption,
    SinceOption,
    UntilOption,
    _post,
    _time,
    parse_where_list,
    put_given,
)


def paths(
    start: str = typer.Option(None, "--start", "-s",
                              help="Paths start at each unit's first event of this type "
                                   "(or page, with --pages)."),
    end: str = typer.Option(None, "--end", "-e",
                            help="Paths end at each unit's last event of this type (or "
                                 "page); walked backwards."),
    steps: int = typer.Option(None, "--steps", "-n", help="Nodes per path, 1 to 20 "
                                                          "(default 5)."),
    pages: bool = typer.Option(False, "--pages",
                               help="Paths of pages (pageview's page, $pageview's "
                                    "$pathname) instead of event types."),
    path_type: str = typer.Option(None, "--path-type", help="events (default) or pages.",
                                  callback=one_of(PATH_TYPES)),
    unit: str = typer.Option(None, "--unit", help="users (default) or sessions.",
                             callback=one_of(PATH_UNITS)),
    window: int = typer.Option(None, "--window", "-W",
                               help="Minutes: a longer gap between two events ends a path "
                                    "(default 30)."),
    top: int = typer.Option(None, "--top", "-k",
                            help="Names kept per step, the rest grouped as $other "
                                 "(default 10)."),
    collapse: bool = typer.Option(False, "--collapse-repeats",
                                  help="Count a run of the same event (or page) once."),
    where: list[str] = typer.Option(None, "--where", "-w",
                                    help="Only events matching this filter (repeatable)."),
    since: str = SinceOption,
    until: str = UntilOption,
    time_range: str = RangeOption,
    segment: str = SegmentOption,
    server: str = ServerOption,
    as_json: bool = JsonOption,
) -> None:
    """The most frequent sequences of events (or pages) from a start or to an end point."""
    body: dict[str, Any] = {}
    put_given(body, (("startPoint", start), ("endPoint", end), ("steps", steps),
                     ("unit", unit), ("windowMinutes", window), ("topK", top),
                     ("segment", segment)))
    _time(body, since, until, time_range)
    if pages or path_type is not None:
        body["pathType"] = "pages" if pages else path_type
    if collapse:
        body["collapseRepeats"] = True
    if where:
        body["where"] = parse_where_list(where)
    emit(_post(server, "/queries/paths", body), as_json, render_paths)


def render_paths(data: dict[str, Any]) -> None:
    """A rich Tree: step-1 nodes at the root, each node's links as its children."""
    from rich.tree import Tree

    from rta.cli.output import console

    nodes = {n["id"]: n for n in data.get("nodes", [])}
    backward = data.get("direction") == "backward"
    children: dict[str, list[tuple[str, int]]] = {}
    for link in data.get("links", []):
        parent, child = (link["target"], link["source"]) if backward else \
            (link["source"], link["target"])
        children.setdefault(parent, []).append((child, link["users"]))
    arrow = "←" if backward else "→"
    point = data.get("endPoint") if backward else data.get("startPoint")
    title = (f"Paths {'to' if backward else 'from'} {point!s} " if point else "Paths ") + \
        f"({data.get('unit', 'users')}, {data.get('totalPaths', 0):,} paths)"
    tree = Tree(f"[bold]{title}[/]")

    def label(node: dict[str, Any], users: int, parent_users: int | None) -> str:
        share = f" ({100 * users / parent_users:.0f}%)" if parent_users else ""
        stop = f"  [dim]{node['dropoff']:,} stop here[/]" if node["dropoff"] else ""
        name = f"[italic]{node['name']}[/]" if node["name"] == "$other" else node["name"]
        return f"{arrow} {name}  [cyan]{users:,}[/]{share}{stop}"

    expanded: set[str] = set()

    def grow(branch: Tree, node_id: str) -> None:
        """A node's links as children, shares of the node's paths; a node reached from
        several parents (paths merge) is expanded under the first only."""
        expanded.add(node_id)
        total = nodes[node_id]["users"]
        for child, n in children.get(node_id, []):
            if child not in nodes:
                continue
            text = label(nodes[child], n, total)
            if child in expanded:
                more = "  [dim](continues above)[/]" if children.get(child) else ""
                branch.add(text + more)
            else:
                grow(branch.add(text), child)

    for node in (n for n in nodes.values() if n["step"] == 1):
        grow(tree.add(label(node, node["users"], None)), node["id"])
    if not nodes:
        tree.add("[dim]no paths[/]")
    console().print(tree)


def register(query_app: typer.Typer) -> None:
    """Add `rta query paths`."""
    query_app.command("paths")(paths)
