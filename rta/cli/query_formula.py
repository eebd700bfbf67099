"""`rta query aggregate --series/--formula` and `--compare`: request parts and rendering.

    rta query aggregate --series A=signup --series B=pageview --formula 'A/B*100' -i 1d
    rta query aggregate --series 'R=purchase:sum:amount;plan=pro' --series U=purchase:unique_users
    rta query count -t signup -r last_7d --compare

A series option is `NAME=TYPE[:AGGREGATION[:PROPERTY]][;WHERE;...]`, WHERE in the compact
filter form (`page=/x`, `duration>1000`). Rendering is a table of the formula and each
series per bucket; a comparison adds the previous period's figure, the change and the test.
Imports of rich stay inside functions (fast `--help`).
"""

from __future__ import annotations

import math
from typing import Any, NoReturn


def _usage(text: str) -> NoReturn:
    """Exit 2 with `text` on stderr, printed literally (a spec such as 'a:b:c' must not turn
    into rich emoji or markup)."""
    import typer

    from rta.cli.output import EXIT_USAGE, console

    err = console(stderr=True)
    err.print("[bold red]error:[/] ", end="")
    err.print(text, markup=False, emoji=False, soft_wrap=True)
    raise typer.Exit(EXIT_USAGE)


def parse_series(specs: list[str]) -> list[dict[str, Any]]:
    """`--series` options as request series (a usage error names the bad one)."""
    from rta.core.errors import ValidationError
    from rta.core.queries.filters import parse_cli_where, predicate_to_json

    out: list[dict[str, Any]] = []
    for spec in specs:
        head, *wheres = spec.split(";")
        name, sep, rest = head.partition("=")
        parts = rest.split(":") if sep else []
        if not name.strip() or not parts or not parts[0].strip() or len(parts) > 3:
            _usage(f"--series {spec!r}: expected NAME=TYPE[:AGGREGATION[:PROPERTY]]")
        series: dict[str, Any] = {"name": name.strip(), "eventType": parts[0].strip()}
        if len(parts) > 1 and parts[1].strip():
            series["aggregation"] = parts[1].strip()
        if len(parts) > 2 and parts[2].strip():
            series["property"] = parts[2].strip()
        try:
            where = [predicate_to_json(parse_cli_where(w)) for w in wheres if w.strip()]
        except ValidationError as exc:
            _usage(f"--series {spec!r}: {exc.message}")
        if where:
            series["where"] = where
        out.append(series)
    return out


def _fmt(v: Any) -> str:
    from rta.cli.query_analytics import _fmt as fmt

    return fmt(v)


def render_formula(data: dict[str, Any]) -> None:
    """The formula per bucket beside each series' values (or the series alone)."""
    from rich.table import Table

    from rta.cli.output import console
    from rta.cli.query_analytics import TABLE_MAX_BUCKETS, _range_line, _time, sparkline

    out = console()
    series = data["series"]
    title = data.get("formula") or ", ".join(s["name"] for s in series)
    out.print(f"[bold]{title}[/]  {_range_line(data)}")
    for s in series:
        what = s["aggregation"] + (f"({s['metric']})" if s.get("metric") else "")
        et = s.get("eventType")
        scope = ",".join(et) if isinstance(et, list) else (et or "*")
        out.print(f"  {s['name']} = {what} of {scope}: total {_fmt(s['total']['value'])}")
    if "total" in data:
        out.print(f"total {_fmt(data['total']['value'])}")
    rows = data.get("buckets") or (series[0]["buckets"] if series else [])
    if not rows:
        out.print("(no data)")
        return
    if "buckets" in data:
        out.print(sparkline([b["value"] for b in data["buckets"]],
                            max(10, min(out.width - 30, 120))))
    if len(rows) > TABLE_MAX_BUCKETS:
        from rta.cli.output import console as err

        err(stderr=True).print(f"{len(rows)} buckets; use --json for every value")
        return
    table = Table()
    table.add_column("bucket")
    if "buckets" in data:
        table.add_column(data.get("formula") or "formula", justify="right")
    for s in series:
        table.add_column(s["name"], justify="right")
    for i, row in enumerate(rows):
        cells = [_time(row["timestamp"])]
        if "buckets" in data:
            cells.append(_fmt(data["buckets"][i]["value"]))
        cells += [_fmt(s["buckets"][i]["value"]) for s in series]
        table.add_row(*cells)
    out.print(table)


def with_comparison(render: Any) -> Any:
    """A renderer that also prints the `comparison` block when the answer has one."""
    def both(data: dict[str, Any]) -> None:
        render(data)
        if data.get("comparison") is not None:
            render_comparison(data["comparison"])
    return both


def render_comparison(c: dict[str, Any]) -> None:
    from rta.cli.output import console
    from rta.cli.query_analytics import _time

    out = console()
    if c.get("shiftMs") is None:
        out.print("previous period: (no data to compare)")
        return
    rel = c.get("relativeChange")
    change = _fmt(c.get("absoluteChange"))
    if rel is not None and math.isfinite(rel):
        change += f" ({rel:+.1%})"
    line = (f"previous period {_time(c['startTime'])} .. {_time(c['endTime'])}: "
            f"{_fmt(c['value'])}  change {change}")
    sig = c.get("significance")
    if sig is not None:
        verdict = "significant" if sig["significant"] else "not significant"
        line += f"  p={sig['pValue']:.3g} ({sig['test']}, {verdict} at {sig['alpha']:g})"
    out.print(line)
