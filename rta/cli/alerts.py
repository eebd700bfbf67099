"""`rta alerts list|create|show|delete|history|watch|test`: threshold and anomaly alerts."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import typer

from rta.cli.alert_metric import ALERT_METRICS, STICKINESS_INTERVALS
from rta.cli.choices import ALERT_AGGREGATIONS, ALERT_OPERATORS, one_of
from rta.cli.output import (
    EXIT_BAD_INPUT,
    EXIT_USAGE,
    JsonOption,
    ServerOption,
    call,
    console,
    delete_and_say,
    duration_text,
    emit,
    fail,
    get_and_emit,
    get_client,
    message,
    print_json,
    run_live,
)

alerts_app = typer.Typer(help="Threshold and anomaly alerts: define, inspect, backtest, watch.",
                         no_args_is_help=True)


def _state(alert: dict[str, Any]) -> str:
    status = str(alert.get("state", {}).get("status", ""))
    colour = {"firing": "bold red", "pending": "yellow", "resolved": "green", "ok": "green",
              "disabled": "dim"}.get(status, "")
    return f"[{colour}]{status}[/]" if colour else status


def _render_list(data: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table(title=f"{data['count']} alerts", title_justify="left")
    for col in ("id", "name", "condition", "state", "value", "channels", "severity"):
        # (ids are copied into other commands: whole, never folded; the text wraps instead)
        table.add_column(col, no_wrap=col in ("id", "state", "value", "severity"),
                         overflow="fold")
    for a in data["alerts"]:
        value = a.get("state", {}).get("value")
        table.add_row(a["id"], a["name"], _summary(a), _state(a),
                      "" if value is None else f"{value:g}",
                      ",".join(a["notification"]["channels"]), a["notification"]["severity"])
    console().print(table)


def _summary(a: dict[str, Any]) -> str:
    """The daemon's one-line condition with its window as a duration ('over 5m')."""
    text = str(a.get("summary", ""))
    window = a.get("condition", {}).get("timeWindow")
    return text.replace(f"over {window} ms", f"over {duration_text(window)}")


def _render_alert(a: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table(show_header=False, box=None, title=a["name"], title_justify="left")
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    table.add_row("id", a["id"])
    table.add_row("condition", _summary(a) if a.get("summary") else json.dumps(a["condition"]))
    table.add_row("enabled", str(a.get("enabled", True)).lower())
    table.add_row("state", _state(a))
    for key, value in a.get("state", {}).items():
        if key != "status" and value is not None:
            table.add_row(f"  {key}", str(value))
    note = a["notification"]
    table.add_row("channels", ", ".join(note["channels"]))
    table.add_row("severity", note["severity"])
    if note.get("message"):
        table.add_row("message", note["message"])
    if note.get("webhookUrl"):
        table.add_row("webhook", note["webhookUrl"])
    table.add_row("cooldown", duration_text(a.get("cooldown", 0)) if a.get("cooldown")
                  else "0")
    if a.get("for"):
        table.add_row("for", duration_text(a["for"]))
    console().print(table)


@alerts_app.command("list")
def list_alerts(server: str = ServerOption, as_json: bool = JsonOption) -> None:
    """Every alert with its condition and current state."""
    get_and_emit(server, "/alerts", as_json, _render_list)


def _read_body(path: str) -> Any:
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text()
    except OSError as exc:
        fail(f"cannot read {path}: {exc.strerror or exc}", EXIT_BAD_INPUT)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        fail(f"{path} is not valid JSON: {exc}", EXIT_BAD_INPUT)


@alerts_app.command("create")
def create(
    name: str = typer.Option(None, "--name", "-n", help="Alert name."),
    file: str = typer.Option(None, "--file", "-f",
                             help="The alert as JSON (the POST /alerts body); - reads stdin. "
                                  "Other options override its fields."),
    anomaly: bool = typer.Option(False, "--anomaly", help="An anomaly rule instead of a "
                                 "threshold."),
    event_type: str = typer.Option(None, "--event-type", "-t", help="Event type to watch."),
    prop: str = typer.Option(None, "--property", "-p",
                             help="'count' (default) or a numeric property."),
    aggregation: str = typer.Option(None, "--aggregation", "-a",
                                    help="count, sum, avg, min, max or p95.",
                                    callback=one_of(ALERT_AGGREGATIONS)),
    operator: str = typer.Option(None, "--operator", "-o",
                                 help="gt, gte, lt, lte, eq or neq [default: gt].",
                                 callback=one_of(ALERT_OPERATORS)),
    threshold: float = typer.Option(None, "--threshold", help="Threshold value."),
    window: str = typer.Option(None, "--window", "-w",
                               help="Trailing window: ms or 30s/5m/1h [default: 5m]."),
    where: list[str] = typer.Option(None, "--where",
                                    help="Property filter: 'page=/x', 'status>=500' "
                                         "(repeatable)."),
    sensitivity: float = typer.Option(None, "--sensitivity",
                                      help="Anomaly: robust z-score to fire at [3.0]."),
    direction: str = typer.Option(None, "--direction", help="Anomaly: both, up or down."),
    channel: list[str] = typer.Option(None, "--channel", "-c",
                                      help="websocket, log, webhook, email, slack (repeatable) "
                                           "[default: websocket, log]."),
    severity: str = typer.Option(None, "--severity", help="info, warning, error, critical."),
    text: str = typer.Option(None, "--message", "-m", help="Notification message."),
    webhook_url: str = typer.Option(None, "--webhook-url", help="http(s) URL for webhooks."),
    email_to: list[str] = typer.Option(None, "--email-to", help="Address for the email "
                                       "channel (repeatable)."),
    slack_url: str = typer.Option(None, "--slack-url", help="Slack incoming-webhook URL."),
    cooldown: str = typer.Option(None, "--cooldown", help="Quiet period between "
                                 "notifications: ms or 1m [default: 60000]."),
    for_: str = typer.Option(None, "--for", help="Fire only after the condition holds "
                             "this long: ms or 30s."),
    disabled: bool = typer.Option(False, "--disabled", help="Create it disabled."),
    metric: str = typer.Option(None, "--metric", help="Watch a query's value instead of a "
                               "counter: funnel, formula, retention, unique_users or "
                               "stickiness (with the flags below; --event-type and --where "
                               "go into the metric).", callback=one_of(ALERT_METRICS)),
    every: str = typer.Option(None, "--every", help="Metric: evaluate every (ms or 30s/5m) "
                              "[default: 60s]."),
    step: list[str] = typer.Option(None, "--step", help="Funnel: a step's event type "
                                   "(repeat, in order)."),
    conversion_step: str = typer.Option(None, "--conversion-step", help="Funnel: 'overall' "
                                        "(default), a step index k >= 1 or a step's name."),
    time_limit: str = typer.Option(None, "--time-limit", help="Funnel: conversion window "
                                   "from step 1 (ms or 1h/14d)."),
    series: list[str] = typer.Option(None, "--series", help="Formula: NAME=TYPE[:AGGREGATION"
                                     "[:PROPERTY]][;WHERE...] (repeatable)."),
    formula: str = typer.Option(None, "--formula", help="Formula: e.g. 'A / B * 100'."),
    entry: str = typer.Option(None, "--entry", help="Retention: the entry event."),
    returning: str = typer.Option(None, "--return", help="Retention: the return event "
                                  "[default: the entry event]."),
    day: int = typer.Option(None, "--day", help="Retention: day N [default: 1]."),
    period: str = typer.Option(None, "--period", help="Retention: period length "
                               "[default: 1d]."),
    min_periods: int = typer.Option(None, "--min-periods", help="Stickiness: active on at "
                                    "least this many days/weeks [default: 2]."),
    interval: str = typer.Option(None, "--interval", help="Stickiness: day (default) or "
                                 "week.", callback=one_of(STICKINESS_INTERVALS)),
    server: str = ServerOption,
    as_json: bool = JsonOption,
) -> None:
    """Create an alert from options or a JSON file (the seed's POST /alerts payload).
    With --metric it watches a query's value (docs/statistics.md, "Alerts on query
    metrics")."""
    from rta.cli.alert_metric import MetricFlags, MetricUsage, build_metric
    from rta.core.errors import ValidationError
    from rta.core.queries.filters import parse_cli_where, predicate_to_json

    body: dict[str, Any] = _read_body(file) if file else {}
    if not isinstance(body, dict):
        fail("the alert file must hold a JSON object", EXIT_BAD_INPUT)
    cond: dict[str, Any] = dict(body.get("condition") or {})
    note: dict[str, Any] = dict(body.get("notification") or {})
    if anomaly:
        cond["type"] = "anomaly"
    cond.setdefault("type", "threshold")
    try:
        filters = [predicate_to_json(parse_cli_where(w)) for w in where or []]
    except ValidationError as exc:
        fail(exc.message, EXIT_USAGE)
    flags = MetricFlags(metric, event_type, filters, list(step or []), conversion_step,
                        time_limit, list(series or []), formula, entry, returning, day, period,
                        min_periods, interval)
    base = cond.get("metric") if isinstance(cond.get("metric"), dict) else None
    try:
        built = build_metric(flags, base)
    except MetricUsage as exc:
        fail(str(exc), EXIT_USAGE)
    counter_type: str | None = event_type
    if built is not None:
        cond["metric"] = built
        counter_type, filters = None, []  # (inside the metric)
    for key, value in (("eventType", counter_type), ("property", prop),
                       ("aggregation", aggregation), ("operator", operator),
                       ("threshold", threshold), ("timeWindow", window),
                       ("sensitivity", sensitivity), ("direction", direction),
                       ("evaluateEvery", every)):
        if value is not None:
            cond[key] = value
    if filters:
        cond["filters"] = filters
    if every is not None and built is None:
        fail("--every needs --metric (counter alerts are evaluated as events arrive)",
             EXIT_USAGE)
    for key, value in (("severity", severity), ("message", text),
                       ("webhookUrl", webhook_url), ("slackUrl", slack_url)):
        if value is not None:
            note[key] = value
    if email_to:
        note["emailTo"] = email_to
    if channel:
        note["channels"] = channel
    elif webhook_url and "channels" not in note:
        note["channels"] = ["websocket", "log", "webhook"]
    body.update(condition=cond)
    if note:
        body["notification"] = note
    if name is not None:
        body["name"] = name
    if cooldown is not None:
        body["cooldown"] = cooldown
    if for_ is not None:
        body["for"] = for_
    if disabled:
        body["enabled"] = False
    if not body.get("name"):
        fail("give the alert a --name (or a name in --file)", EXIT_USAGE)
    with get_client(server) as client:
        data = call(lambda: client.post("/alerts", body))
    if as_json:
        print_json(data)
    else:
        message(f"created alert [bold]{data['name']}[/] {data['id']}")
        _render_alert(data)


@alerts_app.command("show")
def show(alert_id: str = typer.Argument(..., help="Alert id."),
         server: str = ServerOption, as_json: bool = JsonOption) -> None:
    """One alert: definition and live state."""
    get_and_emit(server, f"/alerts/{alert_id}", as_json, _render_alert)


@alerts_app.command("delete")
def delete(alert_id: str = typer.Argument(..., help="Alert id."),
           server: str = ServerOption, as_json: bool = JsonOption) -> None:
    """Delete an alert (its history stays)."""
    delete_and_say(server, f"/alerts/{alert_id}", as_json,
                   lambda _: f"deleted alert {alert_id}")


def _render_history(data: dict[str, Any]) -> None:
    from rich.table import Table

    from rta.core.queries.timeparse import iso

    table = Table(title=f"{data['count']} history entries", title_justify="left")
    for col in ("time", "alert", "event", "severity", "value", "detail"):
        table.add_column(col, overflow="fold")
    for h in data["history"]:
        value = h.get("value")
        if h.get("event") == "webhook":
            detail = f"{h.get('status')} after {h.get('attempts')} attempt(s)"
            if h.get("status") != "delivered":
                detail += f": {h.get('error')}"
        else:
            detail = h.get("message", "")
            if h.get("suppressed"):
                detail += " (suppressed by cooldown)"
        table.add_row(iso(h["at"]) if h.get("at") else "", h.get("name") or h.get("alertId", ""),
                      h.get("event", ""), h.get("severity", ""),
                      "" if value is None else f"{value:g}", detail)
    console().print(table)


@alerts_app.command("history")
def history(limit: int = typer.Option(50, "--limit", "-n", help="How many entries."),
            alert_id: str = typer.Option(None, "--alert", help="Only this alert id."),
            server: str = ServerOption, as_json: bool = JsonOption) -> None:
    """Firings, resolutions and webhook deliveries, newest first."""
    get_and_emit(server, "/alerts/history", as_json, _render_history, limit=limit,
                 alertId=alert_id)


def _render_backtest(data: dict[str, Any]) -> None:
    from rich.table import Table

    from rta.core.queries.timeparse import iso

    rng = data["range"]
    condition = re.sub(r"over (\d+) ms", lambda m: f"over {duration_text(int(m.group(1)))}",
                       str(data["condition"]))
    console().print(f"[bold]{data['name']}[/]: {condition}\n"
                    f"{iso(rng['start'])} .. {iso(rng['end'])}: {data['evaluations']:,} "
                    f"evaluations every {duration_text(data['stepMs'])}, "
                    f"{data['breachingEvaluations']:,} breaching")
    if not data["firings"]:
        console().print("would not have fired")
        return
    table = Table(title=f"would have fired {len(data['firings'])} time(s)", title_justify="left")
    for col in ("fired", "resolved", "value", "peak", "notified"):
        table.add_column(col)
    for f in data["firings"]:
        table.add_row(iso(f["firedAt"]), iso(f["resolvedAt"]) if f["resolvedAt"] else "-",
                      "" if f["value"] is None else f"{f['value']:g}",
                      "" if f["peak"] is None else f"{f['peak']:g}",
                      "yes" if f["notified"] else "no (cooldown)")
    console().print(table)


@alerts_app.command("test")
def test(alert_id: str = typer.Argument(..., help="Alert id."),
         since: str = typer.Option(None, "--since", help="Start: ms, ISO-8601 [default: 24h "
                                   "before --until]."),
         until: str = typer.Option(None, "--until", help="End [default: now]."),
         time_range: str = typer.Option(None, "--range", help="last_1h, last_7d, ..."),
         notify: bool = typer.Option(False, "--notify", help="Also send a test notification "
                                     "through the alert's channels."),
         server: str = ServerOption, as_json: bool = JsonOption) -> None:
    """Backtest an alert over stored events: when would it have fired?"""
    body: dict[str, Any] = {k: v for k, v in (("startTime", since), ("endTime", until),
                                              ("timeRange", time_range)) if v is not None}
    if notify:
        body["notify"] = True
    with get_client(server) as client:
        data = call(lambda: client.post(f"/alerts/{alert_id}/test", body))
    emit(data, as_json, _render_backtest)


@alerts_app.command("watch")
def watch(count: int = typer.Option(0, "--count", hidden=True,
                                    help="Stop after this many notifications (tests)."),
          server: str = ServerOption, as_json: bool = JsonOption) -> None:
    """Print alert notifications as they happen (Ctrl-C stops). --json prints NDJSON."""
    from rta.cli.output import load_settings
    from rta.client.ws import follow

    settings = load_settings({"server": server})
    seen = 0
    err = console(stderr=True)

    def on_message(msg: dict[str, Any]) -> bool:
        nonlocal seen
        if msg.get("channel") != "alerts":
            return True
        data = msg["data"]
        if as_json:
            sys.stdout.write(json.dumps(data, ensure_ascii=False) + "\n")
            sys.stdout.flush()
        else:
            from rta.core.queries.timeparse import iso

            colour = {"fired": "bold red", "resolved": "green"}.get(data.get("event"), "yellow")
            value = data.get("value")
            console().print(f"{iso(data['at'])} [{colour}]{data['event'].upper()}[/] "
                            f"[bold]{data['name']}[/] ({data.get('severity')}): "
                            f"{data.get('message')} value={value if value is not None else '-'}")
        seen += 1
        return not (count and seen >= count)

    def status(state: str, detail: str) -> None:
        if state == "connected":
            err.print(f"watching alerts on {settings.server} (Ctrl-C stops)")
        else:
            err.print(f"[yellow]connection lost ({detail}); reconnecting[/]")

    run_live(lambda: follow(settings.server, [("alerts", None)], on_message,
                            token=settings.token or None, on_status=status), settings.server)


def register(app: typer.Typer) -> None:
    """Add `rta alerts ...`."""
    app.add_typer(alerts_app, name="alerts")
