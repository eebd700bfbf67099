"""Slack messages (Block Kit) for reports and alert notifications, for Slack-compatible
incoming webhooks (Slack, Mattermost, Rocket.Chat read the same `text` + `blocks`).

Within Block Kit's documented limits: at most 50 blocks, a header's plain_text at most 150
characters, a section's text at most 3,000 and its fields at most 10 of 2,000 each, a
context at most 10 elements. `text` is the notification fallback (shown in push
notifications and by clients without blocks). Pure: no network here.

Thread rule: any thread (pure).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from rta.core.alerts import OPERATOR_SYMBOLS
from rta.core.report_content import change_text, headline_label, number, period_text

MAX_BLOCKS = 50
HEADER_MAX = 150
SECTION_MAX = 3000
FIELD_MAX = 2000
FIELDS_MAX = 10
CONTEXT_MAX = 10


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def escape(text: str) -> str:
    """mrkdwn escaping: Slack reads &, < and > as markup."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def header(text: str) -> dict[str, Any]:
    return {"type": "header", "text": {"type": "plain_text", "emoji": True,
                                       "text": _cut(text or "rta", HEADER_MAX)}}


def section(text: str, fields: list[str] | None = None) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "section",
                             "text": {"type": "mrkdwn", "text": _cut(text, SECTION_MAX)}}
    if fields:
        block["fields"] = [{"type": "mrkdwn", "text": _cut(f, FIELD_MAX)}
                           for f in fields[:FIELDS_MAX]]
    return block


def context(*texts: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": _cut(t, SECTION_MAX)}
                                            for t in texts[:CONTEXT_MAX] if t]}


def link(url: str, label: str) -> str:
    return f"<{url}|{escape(label)}>"


def report_message(content: dict[str, Any], tz: str, dashboard_link: str | None,
                   picture_note: str | None) -> dict[str, Any]:
    """A report as a Slack message: headline figures as fields, each table as a code block."""
    name = content.get("name") or "Dashboard report"
    blocks: list[dict[str, Any]] = [
        header(f"{name} report"),
        context(f"{escape(period_text(content, tz))} · changes against the previous period")]
    items = content["headlines"]
    for start in range(0, len(items), FIELDS_MAX):
        chunk = items[start:start + FIELDS_MAX]
        fields = [f"*{escape(headline_label(i))}*\n{number(i['value'])}  "
                  f"_{escape(change_text(i))}_" for i in chunk]
        blocks.append(section("*Headline figures*" if start == 0 else " ", fields))
    for table in content["tables"]:
        rows = [" | ".join(table["columns"])]
        rows += [" | ".join(c if isinstance(c, str) else number(c) for c in row)
                 for row in table["rows"]]
        body = "\n".join(rows)
        blocks.append({"type": "divider"})
        blocks.append(section(f"*{escape(table['title'])}*\n```{_cut(escape(body), 2900)}```"))
    for err in content["errors"]:
        blocks.append(context(f":warning: {escape(err['title'])}: {escape(err['error'])}"))
    notes = [n for n in (picture_note and escape(picture_note),
                         dashboard_link and link(dashboard_link, "Open the dashboard")) if n]
    if notes:
        blocks.append(context(*notes))
    if len(blocks) > MAX_BLOCKS:
        blocks = [*blocks[:MAX_BLOCKS - 1], context("(more in the dashboard)")]
    fallback = f"{name} report: " + ", ".join(
        f"{headline_label(i)} {number(i['value'])}" for i in items[:5])
    return {"text": _cut(fallback, SECTION_MAX), "blocks": blocks}


def _when(ms: Any) -> str:
    if not isinstance(ms, int | float):
        return "-"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def alert_message(payload: dict[str, Any], dashboard_link: str | None) -> dict[str, Any]:
    """An alert notification: firing or resolved, value against threshold, a link."""
    event = str(payload.get("event", ""))
    name = str(payload.get("name") or "alert")
    if event == "fired":
        icon, state = ":rotating_light:", "FIRING"
    elif event == "resolved":
        icon, state = ":white_check_mark:", "RESOLVED"
    else:
        icon, state = ":information_source:", event.upper() or "NOTICE"
    fields = [f"*Value*\n{number(payload.get('value'))}"]
    if payload.get("threshold") is not None:
        symbol = OPERATOR_SYMBOLS.get(str(payload.get("operator")), "")
        fields.append(f"*Threshold*\n{escape(symbol)} {number(payload['threshold'])}".strip())
    elif payload.get("zScore") is not None:
        fields.append(f"*z-score*\n{number(payload['zScore'])} "
                      f"(sensitivity {number(payload.get('sensitivity'))})")
    fields.append(f"*Severity*\n{escape(str(payload.get('severity') or ''))}")
    fields.append(f"*At*\n{_when(payload.get('at'))}")
    message = str(payload.get("message") or name)
    blocks: list[dict[str, Any]] = [
        header(f"{state}: {name}"),
        section(f"{icon} *{escape(message)}*\n{escape(str(payload.get('condition') or ''))}",
                fields)]
    if dashboard_link:
        blocks.append(context(link(dashboard_link, "Open the dashboard")))
    text = f"{state}: {name} (value {number(payload.get('value'))})"
    return {"text": _cut(text, SECTION_MAX), "blocks": blocks}
