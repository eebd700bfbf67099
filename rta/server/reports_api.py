"""Scheduled reports, and the email and Slack channels they share with alerts.

Routes:
    POST/GET /reports, GET/PATCH/DELETE /reports/{id}
    POST /reports/{id}/send      send now; answers with the run's outcome per recipient
    GET /reports/{id}/history    every delivery attempt, newest first

`setup` builds the delivery services only the server can: the Slack poster (httpx, with
the private-address rule of alert webhooks), the dashboard picture (headless Chromium),
SMTP from the `smtp_*` settings (its password is in no response), and starts the report
scheduler on the engine's nursery. It also gives the alert evaluator its email and Slack
channels.
"""

from __future__ import annotations

from typing import Any

from quart import Blueprint, Response, current_app
from quart_trio import QuartTrio

from rta.core import mailer
from rta.core import reports as rep
from rta.core.alerts import Rule
from rta.core.email_messages import alert_email
from rta.core.engine import Engine
from rta.core.slack_format import alert_message
from rta.core.targets import Target
from rta.server.http import engine, int_arg, json_object, json_response
from rta.server.notifiers import RETRY_STATUS, WebhookNotifier
from rta.server.report_picture import local_url, picturer

bp = Blueprint("reports_api", __name__)


def _scheduler() -> rep.ReportScheduler:
    scheduler: rep.ReportScheduler = current_app.config["RTA_REPORTS"]
    return scheduler


def slack_poster(notifier: WebhookNotifier) -> rep.SlackPoster:
    """One POST per call (the caller retries), marked retryable for timeouts, 429, 5xx."""

    async def post(url: str, payload: dict[str, Any]) -> dict[str, Any]:
        outcome = await notifier(url, payload)
        code = outcome.get("statusCode")
        outcome["retryable"] = outcome["status"] == "failed" and (
            code is None or code in RETRY_STATUS)
        return outcome

    return post


def alert_channels(delivery: rep.Delivery, notifier: WebhookNotifier) -> Any:
    """The alert evaluator's `send_channel`: one outcome per recipient."""
    import trio

    async def send(channel: str, rule: Rule, body: dict[str, Any]) -> list[dict[str, Any]]:
        link = delivery.dashboard_link(rule.dashboard_id)
        if channel == "slack":
            if not rule.slack_url:
                return []
            outcome = await notifier(rule.slack_url, alert_message(body, link))
            return [{"target": Target("slack", rule.slack_url).redacted(), **outcome}]
        outcomes = []
        for address in rule.email_to:
            message = alert_email(body, address, delivery.smtp.sender, link)
            outcome = await trio.to_thread.run_sync(mailer.send, delivery.smtp, message)
            outcomes.append({"target": f"email:{address}", **outcome})
        return outcomes

    return send


def setup(app: QuartTrio, eng: Engine) -> None:
    options = app.config["RTA_OPTIONS"]
    allow_private = bool(options.get("allow_private_webhooks"))
    timeout = float(options.get("webhook_timeout", 5.0))
    once = WebhookNotifier(timeout=timeout, retries=0, allow_private=allow_private)
    with_retries = WebhookNotifier(timeout=timeout,
                                   retries=int(options.get("webhook_retries", 3)),
                                   backoff=float(options.get("webhook_backoff", 0.5)),
                                   allow_private=allow_private)

    def server_url() -> str | None:
        return local_url(app.config.get("RTA_BOUND_URLS") or [])

    def public_url() -> str | None:
        return str(options.get("public_url") or "").rstrip("/") or server_url()

    delivery = rep.Delivery(
        smtp=mailer.SmtpSettings.from_options(options),
        post_slack=slack_poster(once),
        picture=picturer(eng, server_url, options.get("chromium_path") or None),
        base_url=public_url,
        retries=int(options.get("report_retries", options.get("webhook_retries", 3))),
        backoff=float(options.get("report_backoff", options.get("webhook_backoff", 0.5))))
    scheduler = rep.ReportScheduler(eng, delivery)
    app.config["RTA_REPORTS"] = scheduler
    eng.served.alerts.send_channel = alert_channels(delivery, with_retries)
    eng.add_background(scheduler.run)


@bp.post("/reports")
async def create_report() -> Response:
    eng = engine()
    doc = rep.validate_report(await json_object(), eng)
    stored = eng.metadata.create(rep.KIND, doc)
    _scheduler().wake()
    return json_response(rep.view(stored, rep.now_ms()), 201,
                         headers={"Location": f"/reports/{stored['id']}"})


@bp.get("/reports")
async def list_reports() -> Response:
    now = rep.now_ms()
    items = [rep.view(d, now) for d in engine().metadata.list(rep.KIND)]
    return json_response({"reports": items, "total": len(items)})


@bp.get("/reports/<report_id>")
async def get_report(report_id: str) -> Response:
    return json_response(rep.view(engine().metadata.get(rep.KIND, report_id), rep.now_ms()))


@bp.patch("/reports/<report_id>")
async def patch_report(report_id: str) -> Response:
    eng = engine()
    current = eng.metadata.get(rep.KIND, report_id)
    doc = rep.validate_report(await json_object(), eng, current)
    stored = eng.metadata.put(rep.KIND, report_id, doc)
    _scheduler().wake()
    return json_response(rep.view(stored, rep.now_ms()))


@bp.delete("/reports/<report_id>")
async def delete_report(report_id: str) -> Response:
    engine().metadata.delete(rep.KIND, report_id)
    _scheduler().wake()
    return json_response({"deleted": True, "id": report_id})


@bp.post("/reports/<report_id>/send")
async def send_report(report_id: str) -> Response:
    doc = engine().metadata.get(rep.KIND, report_id)
    result = await _scheduler().send(doc, "manual")
    return json_response(result)


@bp.get("/reports/<report_id>/history")
async def report_history(report_id: str) -> Response:
    eng = engine()
    eng.metadata.get(rep.KIND, report_id)  # 404 for an unknown report
    limit = int_arg("limit", 100, 1, 10_000) or 100
    items = eng.metadata.history(rep.HISTORY_KIND, limit, ref=report_id)
    return json_response({"history": items, "count": len(items)})
