"""Scheduled reports and the email and Slack channels, end to end with real receivers on
loopback: a real `rta serve` process, a real SMTP server (aiosmtpd, with a login) and an
HTTP receiver for Slack-compatible webhooks; headless Chromium takes the report's picture.

One daemon and one pair of receivers serve the whole module."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

import httpx
import pytest
import trio

from rta.server.notifiers import WebhookNotifier
from rta.server.reports_api import slack_poster
from tests.server.receivers import (
    PASSWORD,
    SMTP_WARNINGS,
    USER,
    Hook,
    SmtpServer,
    block_text,
    check_block_kit,
)
from tests.support import ServeProcess

pytestmark = SMTP_WARNINGS
HOUR = 3_600_000
SENDER = "rta@example.com"


@dataclass
class Site:
    url: str
    http: httpx.Client
    smtp: SmtpServer
    hook: Hook
    now: int
    dashboard: dict[str, Any]
    events: list[dict[str, Any]]


def _events(now: int) -> list[dict[str, Any]]:
    """Purchases and page views in the current 24 h, the 24 h before, and older."""
    out: list[dict[str, Any]] = []
    plans = ("free", "pro", "team")
    for i in range(60):
        age = (1 + (i * 37) % 70) * HOUR // 3 + 60_000 * (i % 7)  # 20 min .. ~23.3 h
        if i % 3 == 1:
            age += 24 * HOUR
        if i % 10 == 9:
            age += 48 * HOUR
        out.append({"type": "purchase", "userId": f"u{i % 11}", "timestamp": now - age,
                    "properties": {"amount": float(5 + (i * 13) % 40),
                                   "plan": plans[(i // 3) % 3]}})
        out.append({"type": "pageview", "userId": f"u{i % 7}", "timestamp": now - age,
                    "properties": {"page": f"/p{(i * i) % 5}"}})
    return out


DASHBOARD = {"name": "Sales", "timeRange": "last_24h", "widgets": [
    {"type": "counter", "title": "Purchases", "position": {"x": 0, "y": 0, "w": 3, "h": 2},
     "dataSource": {"type": "count", "eventType": "purchase"}},
    {"type": "gauge", "title": "Average order", "position": {"x": 3, "y": 0, "w": 3, "h": 2},
     "dataSource": {"type": "aggregation", "eventType": "purchase", "metric": "amount",
                    "aggregation": "avg"}},
    {"type": "line-chart", "title": "Revenue", "position": {"x": 0, "y": 2, "w": 6, "h": 3},
     "dataSource": {"type": "aggregation", "eventType": "purchase", "metric": "amount",
                    "aggregation": "sum", "groupBy": "plan"}},
    {"type": "line-chart", "title": "Buyers", "position": {"x": 6, "y": 2, "w": 6, "h": 3},
     "dataSource": {"type": "unique_users", "eventType": "purchase"}},
    {"type": "table", "title": "Top pages", "position": {"x": 6, "y": 0, "w": 6, "h": 2},
     "dataSource": {"type": "top", "eventType": "pageview", "property": "page"}},
]}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    smtp, hook = SmtpServer(), Hook()
    env = {"RTA_SMTP_HOST": "127.0.0.1", "RTA_SMTP_PORT": str(smtp.port),
           "RTA_SMTP_USER": USER, "RTA_SMTP_PASSWORD": PASSWORD, "RTA_SMTP_FROM": SENDER,
           "RTA_ALLOW_PRIVATE_WEBHOOKS": "1", "RTA_WEBHOOK_BACKOFF": "0.05",
           "RTA_PUBLIC_URL": "https://rta.example.com"}
    proc = ServeProcess(str(tmp_path_factory.mktemp("reports") / "data"), env=env)
    url = proc.start()
    http = httpx.Client(base_url=url, timeout=60)
    now = int(time.time() * 1000)
    events = _events(now)
    assert http.post("/events/batch", json=events).status_code < 300
    dashboard = http.post("/dashboards", json=DASHBOARD).json()
    try:
        yield Site(url, http, smtp, hook, now, dashboard, events)
    finally:
        http.close()
        proc.stop()
        smtp.stop()
        hook.stop()


def _report(site: Site, **extra: Any) -> dict[str, Any]:
    body = {"dashboardId": site.dashboard["id"], "schedule": "0 9 * * 1",
            "tz": "Europe/Berlin", "to": ["email:ops@example.com", f"slack:{site.hook.url}/r"],
            **extra}
    r = site.http.post("/reports", json=body)
    assert r.status_code == 201, r.text
    return dict(r.json())


def _parts(msg: EmailMessage) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for part in msg.walk():
        if part.get_content_type() in ("text/plain", "text/html") and \
                not part.get_filename():
            out[part.get_content_type()] = part.get_content()
        elif part.get_filename():
            out["attachment"] = (part.get_content_type(), part.get_filename(),
                                 part.get_payload(decode=True))
    return out


# -- bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize(("change", "field"), [
    ({"schedule": "0 9 * *"}, "schedule"), ({"schedule": "99 9 * * 1"}, "schedule"),
    ({"tz": "Mars/Olympus"}, "tz"), ({"to": ["email:not-an-address"]}, "to[0]"),
    ({"to": ["email:ops@example.com", "slack:ftp://hooks.example.com/x"]}, "to[1]"),
    ({"to": ["slack:https://exa mple.com/x"]}, "to[0]"), ({"to": ["pager:123"]}, "to[0]"),
    ({"to": []}, "to"), ({"dashboardId": "nope"}, "dashboardId"),
    ({"timeRange": "fortnight"}, "timeRange"), ({"colour": "red"}, "colour")])
def test_bad_reports_are_400s_naming_the_field(site: Site, change: dict[str, Any],
                                               field: str) -> None:
    body = {"dashboardId": site.dashboard["id"], "schedule": "0 9 * * 1", "tz": "UTC",
            "to": ["email:ops@example.com"], **change}
    r = site.http.post("/reports", json=body)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["details"][0]["field"] == field


def test_crud_and_next_run(site: Site) -> None:
    doc = _report(site, name="Weekly sales")
    assert doc["name"] == "Weekly sales" and doc["tz"] == "Europe/Berlin"
    assert doc["nextRunAt"] > site.now
    from datetime import datetime
    from zoneinfo import ZoneInfo
    when = datetime.fromtimestamp(doc["nextRunAt"] / 1000, ZoneInfo("Europe/Berlin"))
    assert (when.weekday(), when.hour, when.minute) == (0, 9, 0)
    assert site.http.get(f"/reports/{doc['id']}").json()["schedule"] == "0 9 * * 1"
    assert doc["id"] in [r["id"] for r in site.http.get("/reports").json()["reports"]]
    r = site.http.patch(f"/reports/{doc['id']}", json={"schedule": "30 7 * * *",
                                                       "enabled": False})
    assert r.status_code == 200 and r.json()["schedule"] == "30 7 * * *"
    assert r.json()["nextRunAt"] is None and r.json()["to"] == doc["to"]
    assert site.http.patch(f"/reports/{doc['id']}", json={"tz": "Nowhere"}).status_code == 400
    assert site.http.delete(f"/reports/{doc['id']}").json()["deleted"] is True
    assert site.http.get(f"/reports/{doc['id']}").status_code == 404
    assert site.http.post(f"/reports/{doc['id']}/send").status_code == 404
    assert site.http.get(f"/reports/{doc['id']}/history").status_code == 404


# -- the report's content, against an independent computation ---------------------------------


def _expected(site: Site, generated: int) -> dict[str, Any]:
    lo, hi = generated - 24 * HOUR + 1, generated + 1  # (last_24h as the API reads it)

    def within(e: dict[str, Any], a: int, b: int) -> bool:
        return a <= e["timestamp"] < b

    out: dict[str, Any] = {}
    for name, a, b in (("now", lo, hi), ("before", lo - (hi - lo), lo)):
        buys = [e for e in site.events if e["type"] == "purchase" and within(e, a, b)]
        amounts = [e["properties"]["amount"] for e in buys]
        by_plan: dict[str, float] = {}
        for e in buys:
            by_plan[e["properties"]["plan"]] = by_plan.get(e["properties"]["plan"], 0.0) + \
                e["properties"]["amount"]
        pages: dict[str, int] = {}
        for e in site.events:
            if e["type"] == "pageview" and within(e, a, b):
                pages[e["properties"]["page"]] = pages.get(e["properties"]["page"], 0) + 1
        out[name] = {"count": len(buys), "avg": sum(amounts) / len(amounts),
                     "sum": sum(amounts), "plans": by_plan,
                     "users": len({e["userId"] for e in buys}), "pages": pages}
    return out


def test_send_now_delivers_email_and_slack_with_the_right_figures(site: Site) -> None:
    doc = _report(site)
    before = len(site.smtp.mailbox.messages)
    r = site.http.post(f"/reports/{doc['id']}/send")
    assert r.status_code == 200, r.text
    run = r.json()
    assert run["status"] == "delivered", str(run["deliveries"])
    assert [d["channel"] for d in run["deliveries"]] == ["email", "slack"]
    assert run["picture"] is True, run.get("pictureNote")

    content = run["content"]
    want = _expected(site, content["generatedAt"])
    heads = {(h["title"], h["series"]): h for h in content["headlines"]}
    assert heads[("Purchases", None)]["value"] == want["now"]["count"]
    assert heads[("Purchases", None)]["previous"] == want["before"]["count"]
    assert heads[("Purchases", None)]["change"] == want["now"]["count"] - want["before"]["count"]
    assert heads[("Average order", None)]["value"] == pytest.approx(want["now"]["avg"])
    assert heads[("Average order", None)]["previous"] == pytest.approx(want["before"]["avg"])
    assert heads[("Revenue", "sum(amount), all")]["value"] == pytest.approx(want["now"]["sum"])
    for plan, total in want["now"]["plans"].items():
        assert heads[("Revenue", plan)]["value"] == pytest.approx(total)
        assert heads[("Revenue", plan)]["previous"] == pytest.approx(
            want["before"]["plans"].get(plan, 0.0))
    assert heads[("Buyers", "unique users")]["value"] == want["now"]["users"]
    assert heads[("Buyers", "unique users")]["previous"] == want["before"]["users"]
    table = next(t for t in content["tables"] if t["title"] == "Top pages")
    top = sorted(want["now"]["pages"].items(), key=lambda kv: (-kv[1], kv[0]))
    assert {row[0]: row[1] for row in table["rows"]} == dict(top)

    msg = site.smtp.mailbox.wait(before + 1)[before]
    assert msg["To"] == "ops@example.com" and msg["From"] == SENDER
    assert msg["Subject"].startswith("Sales report - ")
    assert msg["Date"] and msg["Message-ID"]
    parts = _parts(msg)
    assert f"Purchases: {want['now']['count']}" in parts["text/plain"]
    assert "https://rta.example.com/#/dashboards/" in parts["text/plain"]
    assert "<table" in parts["text/html"] and "Top pages" in parts["text/html"]
    kind, filename, png = parts["attachment"]
    assert kind == "image/png" and filename.endswith(".png")
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 5000

    bodies = site.hook.wait(lambda b: any(p == "/r" for p, _ in b))
    payload = [body for p, body in bodies if p == "/r"][-1]
    check_block_kit(payload)
    text = block_text(payload)
    assert "Sales report" in text and "Top pages" in text, text
    assert "Revenue - pro" in text, text
    assert "https://rta.example.com/#/dashboards/" in text

    history = site.http.get(f"/reports/{doc['id']}/history").json()["history"]
    assert {(h["channel"], h["status"], h["attempt"], h["trigger"]) for h in history} == \
        {("email", "delivered", 1, "manual"), ("slack", "delivered", 1, "manual")}
    assert all(h["runId"] == run["runId"] for h in history)


def test_slack_5xx_is_retried_with_backoff_and_every_attempt_recorded(site: Site) -> None:
    doc = _report(site, to=[f"slack:{site.hook.url}/retry"])
    site.hook.fail_next = 2
    run = site.http.post(f"/reports/{doc['id']}/send").json()
    assert run["status"] == "delivered" and run["deliveries"][0]["attempt"] == 3
    history = site.http.get(f"/reports/{doc['id']}/history").json()["history"]
    assert [(h["attempt"], h["status"], h.get("statusCode")) for h in reversed(history)] == \
        [(1, "failed", 503), (2, "failed", 503), (3, "delivered", 200)]
    assert history[0]["target"].startswith("slack:http://127.0.0.1:")
    assert "/retry" not in history[0]["target"]  # (a webhook's path is its secret)


def test_smtp_refusing_the_login_is_a_failure_in_the_history(site: Site) -> None:
    doc = _report(site, to=["email:ops@example.com"])
    site.smtp.mailbox.refuse_login = True
    try:
        r = site.http.post(f"/reports/{doc['id']}/send")
    finally:
        site.smtp.mailbox.refuse_login = False
    assert r.status_code == 200
    run = r.json()
    assert run["status"] == "failed"
    entry = site.http.get(f"/reports/{doc['id']}/history").json()["history"][0]
    assert entry["status"] == "failed" and "refused the login" in entry["error"]
    assert entry["attempt"] == 1  # (a refused login is final: not retried)
    assert site.http.get("/health").json()["status"] in ("ok", "healthy")
    for path in ("/stats", "/openapi.json", f"/reports/{doc['id']}", "/reports",
                 f"/reports/{doc['id']}/history"):
        assert PASSWORD not in site.http.get(path).text, path
    assert PASSWORD not in r.text


# -- alerts through email and Slack, and silences ----------------------------------------------


def _alert(site: Site, name: str, event_type: str) -> dict[str, Any]:
    r = site.http.post("/alerts", json={
        "name": name, "cooldown": 0,
        "condition": {"type": "threshold", "eventType": event_type, "operator": "gt",
                      "threshold": 0, "timeWindow": "2s"},
        "notification": {"channels": ["email", "slack", "log"], "severity": "error",
                         "emailTo": ["oncall@example.com"],
                         "slackUrl": f"{site.hook.url}/alerts",
                         "dashboardId": site.dashboard["id"]}})
    assert r.status_code == 201, r.text
    return dict(r.json())


def test_alert_fires_and_resolves_by_email_and_slack(site: Site) -> None:
    alert = _alert(site, "Checkout errors", "checkout_error")
    before = len(site.smtp.mailbox.messages)
    site.http.post("/events", json={"type": "checkout_error", "userId": "u1"})
    mails = [m for m in site.smtp.mailbox.wait(before + 2)[before:]
             if m["X-Rta-Alert-Id"] == alert["id"]]
    assert [m["Subject"] for m in mails] == ["[FIRING] Checkout errors",
                                             "[RESOLVED] Checkout errors"]
    parts = _parts(mails[0])
    assert "Threshold: > 0" in parts["text/plain"] and "Value: 1" in parts["text/plain"]
    assert f"/#/dashboards/{site.dashboard['id']}" in parts["text/html"]
    bodies = site.hook.wait(lambda b: sum(p == "/alerts" for p, _ in b) >= 2)
    slack = [p for path, p in bodies if path == "/alerts"]
    for payload in slack:
        check_block_kit(payload)
    assert slack[0]["blocks"][0]["text"]["text"] == "FIRING: Checkout errors"
    assert slack[1]["blocks"][0]["text"]["text"] == "RESOLVED: Checkout errors"
    assert "*Threshold*\n&gt; 0" in block_text(slack[0])  # (mrkdwn escapes >)
    assert f"https://rta.example.com/#/dashboards/{site.dashboard['id']}" in block_text(slack[0])
    history = site.http.get("/alerts/history", params={"alertId": alert["id"]}).json()
    delivered = {(h["event"], h["for"]) for h in history["history"]
                 if h.get("status") == "delivered"}
    assert delivered >= {("email", "fired"), ("slack", "fired"), ("email", "resolved")}
    site.http.delete(f"/alerts/{alert['id']}")


def test_silences_mute_notifications_and_record_them_as_muted(site: Site) -> None:
    bad = site.http.post("/alerts/silences", json={"for": "soon"})
    assert bad.status_code == 400 and bad.json()["error"]["details"][0]["field"] == "for"
    assert site.http.post("/alerts/nope/silence", json={"for": "2h"}).status_code == 404
    alert = _alert(site, "Muted errors", "muted_error")
    one = site.http.post(f"/alerts/{alert['id']}/silence", json={"for": "2h"}).json()
    assert one["alertId"] == alert["id"] and one["active"] is True
    assert one["endsAt"] - one["startsAt"] == 2 * HOUR
    every = site.http.post("/alerts/silences", json={"for": "30m", "reason": "deploy"}).json()
    assert every["scope"] == "all"
    listed = site.http.get("/alerts/silences", params={"active": "true"}).json()["silences"]
    assert {s["id"] for s in listed} >= {one["id"], every["id"]}
    mails = len(site.smtp.mailbox.messages)
    slack = len(site.hook.bodies)
    site.http.post("/events", json={"type": "muted_error", "userId": "u2"})
    deadline = time.monotonic() + 20
    muted: list[dict[str, Any]] = []
    while time.monotonic() < deadline and not muted:
        history = site.http.get("/alerts/history", params={"alertId": alert["id"]}).json()
        muted = [h for h in history["history"] if h.get("muted")]
        time.sleep(0.2)
    assert muted and muted[-1]["event"] == "fired"
    assert muted[-1]["silenceId"] in (one["id"], every["id"])
    resolved: list[dict[str, Any]] = []
    while time.monotonic() < deadline and not resolved:  # (a 2 s window: it resolves soon)
        history = site.http.get("/alerts/history", params={"alertId": alert["id"]}).json()
        resolved = [h for h in history["history"] if h.get("event") == "resolved"]
        time.sleep(0.2)
    assert resolved and resolved[0].get("suppressed") is True  # (nobody heard it fire)
    time.sleep(0.3)
    assert len(site.smtp.mailbox.messages) == mails and len(site.hook.bodies) == slack
    for s in (one, every):
        assert site.http.delete(f"/alerts/silences/{s['id']}").json()["deleted"] is True
    site.http.delete(f"/alerts/{alert['id']}")


def test_alert_channel_fields_are_checked(site: Site) -> None:
    base = {"name": "x", "condition": {"eventType": "e", "threshold": 1}}
    for note, field in (
            ({"channels": ["email"]}, "notification.emailTo"),
            ({"channels": ["email"], "emailTo": ["a@b"]}, "notification.emailTo[0]"),
            ({"channels": ["slack"]}, "notification.slackUrl"),
            ({"channels": ["slack"], "slackUrl": "hooks.slack.com/x"}, "notification.slackUrl"),
            ({"channels": ["pager"]}, "notification.channels[0]")):
        r = site.http.post("/alerts", json={**base, "notification": note})
        assert r.status_code == 400, r.text
        assert r.json()["error"]["details"][0]["field"] == field


async def test_slack_urls_follow_the_private_address_rule() -> None:
    """Without allow_private_webhooks a loopback Slack URL is refused, and not retried."""
    post = slack_poster(WebhookNotifier(retries=0))
    outcome = await post("http://127.0.0.1:9/hook", {"text": "x", "blocks": []})
    assert outcome["status"] == "refused" and outcome["retryable"] is False
    assert "private or loopback" in outcome["error"]
    await trio.sleep(0)


def test_reports_need_a_token_where_the_api_does() -> None:
    """/reports is an API path: read to look, admin to change or send (a send mails people)."""
    from rta.server.security import required_scope

    assert required_scope("GET", "/reports") == "read"
    assert required_scope("GET", "/reports/r1/history") == "read"
    for method, path in (("POST", "/reports"), ("PATCH", "/reports/r1"),
                         ("DELETE", "/reports/r1"), ("POST", "/reports/r1/send"),
                         ("POST", "/alerts/silences"), ("POST", "/alerts/a1/silence"),
                         ("DELETE", "/alerts/silences/s1")):
        assert required_scope(method, path) == "admin", (method, path)


async def test_without_chromium_the_email_says_so() -> None:
    from rta.core.email_messages import report_email
    from rta.server.report_picture import picturer

    take = picturer(None, lambda: "http://127.0.0.1:1", "/nonexistent/chromium")  # type: ignore[arg-type]
    png, note = await take({"id": "d1"})
    assert png is None and note is not None and "Chromium is not available" in note
    content = {"generatedAt": 1_796_000_000_000, "name": "Ops", "dashboardId": "d1",
               "period": {"start": 1_795_913_600_000, "end": 1_796_000_000_000},
               "headlines": [{"title": "Signups", "series": None, "value": 12.0,
                              "previous": 10.0, "change": 2.0, "changePct": 20.0}],
               "tables": [], "errors": []}
    msg = report_email(content, "ops@example.com", SENDER, "UTC", None, png, note)
    parts = _parts(msg)
    assert "attachment" not in parts
    assert note in parts["text/plain"] and "Chromium is not available" in parts["text/html"]
    assert "Signups: 12  [▲ +2 (+20%); before: 10]" in parts["text/plain"]


def test_cli_reports_and_silences(site: Site, tmp_path: Any) -> None:
    """The commands' human output on stdout, messages on stderr, exit codes."""
    from typer.testing import CliRunner

    from rta.cli.main import app

    runner = CliRunner()

    def rta(*args: str) -> Any:
        return runner.invoke(app, [*args, "--server", site.url], env={
            "RTA_CONFIG": str(tmp_path / "none.toml"), "NO_COLOR": "1", "COLUMNS": "160"})

    r = rta("reports", "create", "--dashboard", site.dashboard["id"], "--schedule",
            "0 9 * * 1", "--tz", "Europe/Berlin", "--to", f"slack:{site.hook.url}/cli",
            "--name", "CLI report")
    assert r.exit_code == 0 and "created report" in r.stderr, r.stderr
    assert "0 9 * * 1 (Europe/Berlin)" in r.stdout
    report_id = r.stderr.split()[-1]
    assert "CLI report" in rta("reports", "list").stdout
    r = rta("reports", "send", report_id)
    assert r.exit_code == 0 and "delivered" in r.stdout, r.stdout
    assert "delivered" in rta("reports", "history", report_id).stdout
    r = rta("reports", "create", "--dashboard", site.dashboard["id"], "--schedule", "0 25 * * *",
            "--to", "email:ops@example.com")
    assert r.exit_code == 4 and "schedule" in r.stderr and r.stdout == ""
    r = rta("alerts", "silence", "--all", "--for", "1h", "--reason", "maintenance")
    assert r.exit_code == 0 and "muted every alert until" in r.stderr
    silence_id = r.stderr.split()[-1].rstrip(")")
    assert "maintenance" in rta("alerts", "silences", "--active").stdout
    assert rta("alerts", "silence", "--for", "1h").exit_code == 2  # (an id or --all)
    assert rta("alerts", "unsilence", silence_id).exit_code == 0
    assert rta("reports", "delete", report_id).exit_code == 0
    assert rta("reports", "show", report_id).exit_code == 4


def test_config_show_hides_the_smtp_password(tmp_path: Any) -> None:
    import json

    from typer.testing import CliRunner

    from rta.cli.main import app

    r = CliRunner().invoke(app, ["config", "show", "--json"], env={
        "RTA_CONFIG": str(tmp_path / "none.toml"), "RTA_SMTP_PASSWORD": PASSWORD,
        "RTA_SMTP_HOST": "mail.example.com", "RTA_SMTP_TLS": "starttls"})
    assert r.exit_code == 0 and PASSWORD not in r.stdout
    shown = json.loads(r.stdout)
    assert shown["smtp_password"] == {"value": "***", "source": "env:RTA_SMTP_PASSWORD"}
    assert shown["smtp_host"]["value"] == "mail.example.com"
    bad = CliRunner().invoke(app, ["config", "show"], env={
        "RTA_CONFIG": str(tmp_path / "none.toml"), "RTA_SMTP_TLS": "ssl"})
    assert bad.exit_code != 0 and "smtp_tls must be one of none, starttls, tls" in bad.stderr
