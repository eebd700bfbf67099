"""Email messages (email.message.EmailMessage) for reports and alert notifications: a
plain-text part and an HTML alternative, and for reports the dashboard's PNG picture as an
attachment when one was taken. Pure: building, not sending (that is `mailer.send`).

Thread rule: any thread (pure).
"""

from __future__ import annotations

import html
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any
from zoneinfo import ZoneInfo

from rta.core.alerts import OPERATOR_SYMBOLS
from rta.core.report_content import html_text, number, plain_text


def _base(to: str, subject: str, sender: str) -> EmailMessage:
    msg = EmailMessage()
    msg["Subject"] = subject
    msg["To"] = to
    if sender:
        msg["From"] = sender
    msg["Date"] = format_datetime(datetime.now(UTC))
    msg["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
    msg["X-Mailer"] = "rta"
    return msg


def report_email(content: dict[str, Any], to: str, sender: str, tz: str,
                 link: str | None, picture: bytes | None,
                 picture_note: str | None) -> EmailMessage:
    when = datetime.fromtimestamp(content["generatedAt"] / 1000, ZoneInfo(tz))
    name = content.get("name") or "Dashboard"
    msg = _base(to, f"{name} report - {when:%Y-%m-%d}", sender)
    msg["X-Rta-Dashboard"] = str(content.get("dashboardId") or "")
    msg.set_content(plain_text(content, tz, link, picture_note))
    msg.add_alternative(html_text(content, tz, link, picture_note), subtype="html")
    if picture is not None:
        msg.add_attachment(picture, maintype="image", subtype="png",
                           filename=f"dashboard-{when:%Y%m%d-%H%M}.png")
    return msg


def alert_email(payload: dict[str, Any], to: str, sender: str,
                link: str | None) -> EmailMessage:
    event = str(payload.get("event", ""))
    state = {"fired": "FIRING", "resolved": "RESOLVED"}.get(event, event.upper())
    name = str(payload.get("name") or "alert")
    msg = _base(to, f"[{state}] {name}", sender)
    msg["X-Rta-Alert-Id"] = str(payload.get("alertId") or "")
    rows = [("Status", state), ("Value", number(payload.get("value")))]
    if payload.get("threshold") is not None:
        sym = OPERATOR_SYMBOLS.get(str(payload.get("operator")), "")
        rows.append(("Threshold", f"{sym} {number(payload['threshold'])}".strip()))
    if payload.get("zScore") is not None:
        rows.append(("z-score", number(payload["zScore"])))
    rows.append(("Severity", str(payload.get("severity") or "")))
    rows.append(("Condition", str(payload.get("condition") or "")))
    at = payload.get("at")
    if isinstance(at, int | float):
        rows.append(("At", datetime.fromtimestamp(at / 1000, UTC).strftime(
            "%Y-%m-%d %H:%M:%S UTC")))
    message = str(payload.get("message") or name)
    text = [f"{state}: {name}", message, ""] + [f"{k}: {v}" for k, v in rows]
    if link:
        text.append(f"Dashboard: {link}")
    msg.set_content("\n".join(text) + "\n")
    e = html.escape
    body = [f"<!doctype html><html><body style=\"font-family:sans-serif\"><h2>{e(state)}: "
            f"{e(name)}</h2><p>{e(message)}</p><table cellpadding=\"4\">"]
    body += [f"<tr><th align=\"left\">{e(k)}</th><td>{e(v)}</td></tr>" for k, v in rows]
    body.append("</table>")
    if link:
        body.append(f"<p><a href=\"{e(link)}\">Open the dashboard</a></p>")
    body.append("</body></html>")
    msg.add_alternative("".join(body), subtype="html")
    return msg
