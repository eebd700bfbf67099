"""Scheduled reports: a dashboard's figures sent by email and Slack on a cron schedule.

A report is a metadata document (kind "report": `name`, `dashboardId`, `schedule`, `tz`,
`to`, `enabled`, optional `timeRange`); every delivery attempt is a history entry (kind
"report", ref = the report id) with its outcome, so `GET /reports/{id}/history` shows what
was sent, what failed and why.

`ReportScheduler.run` lives in the engine's nursery (with several daemons on one ClickHouse
server, only the holder of the alerts lease sends scheduled runs). It never blocks ingest:
the report's figures are computed in a worker thread over a pinned view, SMTP runs in a
worker thread, Slack posts and the picture are awaited, each run in its own task. A failed
attempt that may succeed later (a timeout, a 5xx, SMTP 4xx) is retried `retries` times with
exponential backoff (`backoff`, 2x, 4x seconds); a final refusal (bad login, 4xx, a private
address) is recorded at once.

Network delivery is injected (`Delivery`): the server supplies the Slack poster (httpx,
with the private-address rule) and the dashboard picture (headless Chromium); the SMTP
client is the stdlib's (`mailer`).

Thread rule: the scheduler runs on the event loop; metadata reads and writes it makes are
short (sqlite, or one ClickHouse round trip).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import trio

from rta.core import dashboards as dash
from rta.core import mailer
from rta.core.email_messages import report_email
from rta.core.errors import NotFoundError, RtaError, ValidationError, field_error
from rta.core.queries.timeparse import parse_time_range
from rta.core.report_content import build_report
from rta.core.schedule import check_cron, next_run, zone
from rta.core.slack_format import report_message
from rta.core.targets import Target, parse_targets

if TYPE_CHECKING:
    from rta.core.engine import Engine

log = logging.getLogger("rta.reports")
KIND = "report"
HISTORY_KIND = "report"
TICK_S = 30.0  # the longest the scheduler sleeps: catches clock jumps and other daemons' edits
NO_CHROMIUM = "No picture of the dashboard: headless Chromium is not available on the server."

SlackPoster = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]
Picturer = Callable[[dict[str, Any]], Awaitable[tuple[bytes | None, str | None]]]


def now_ms() -> int:
    return time.time_ns() // 1_000_000


# -- validation -------------------------------------------------------------------------------


def validate_report(body: Any, engine: Engine, current: dict[str, Any] | None = None
                    ) -> dict[str, Any]:
    """The stored form of a report (POST body, or PATCH body merged into `current`)."""
    if not isinstance(body, dict):
        raise ValidationError("a report must be a JSON object", [{"field": ""}])
    merged = {k: v for k, v in (current or {}).items()
              if k not in ("id", "createdAt", "updatedAt")}
    merged.update(body)
    if "dashboard" in body and "dashboardId" not in body:
        merged["dashboardId"] = body["dashboard"]
    merged.pop("dashboard", None)
    dashboard_id = merged.get("dashboardId")
    if not isinstance(dashboard_id, str) or not dashboard_id:
        raise field_error("dashboardId", "is required: the id of the dashboard to report on")
    try:
        dashboard = engine.metadata.get(dash.KIND, dashboard_id)
    except NotFoundError:
        raise field_error("dashboardId", f"no dashboard with id {dashboard_id!r}",
                          value=dashboard_id) from None
    schedule = check_cron(merged.get("schedule"), "schedule")
    tz = merged.get("tz", "UTC")
    zone(tz, "tz")
    targets = parse_targets(merged.get("to"), "to")
    enabled = merged.get("enabled", True)
    if not isinstance(enabled, bool):
        raise field_error("enabled", "must be true or false")
    name = merged.get("name") or f"{dashboard.get('name') or 'Dashboard'} report"
    if not isinstance(name, str) or len(name) > 200:
        raise field_error("name", "must be a string of at most 200 characters")
    doc: dict[str, Any] = {"name": name.strip(), "dashboardId": dashboard_id,
                           "schedule": schedule, "tz": tz.strip(),
                           "to": [t.spec for t in targets], "enabled": enabled}
    time_range = merged.get("timeRange")
    if time_range is not None:
        parse_time_range(None, None, 0, time_range=time_range)
        doc["timeRange"] = time_range
    unknown = set(merged) - {*doc, "timeRange"}
    if unknown:
        first = sorted(unknown)[0]
        raise field_error(first, "unknown field", allowed=sorted([*doc, "timeRange"]))
    return doc


def view(doc: dict[str, Any], now: int) -> dict[str, Any]:
    out = dict(doc)
    out["nextRunAt"] = next_run(doc["schedule"], doc["tz"], now) if doc.get("enabled") else None
    return out


# -- delivery ---------------------------------------------------------------------------------


@dataclass
class Delivery:
    """What delivering needs from outside the core."""

    smtp: mailer.SmtpSettings = field(default_factory=mailer.SmtpSettings)
    post_slack: SlackPoster | None = None
    picture: Picturer | None = None
    base_url: Callable[[], str | None] = lambda: None
    retries: int = 3
    backoff: float = 0.5

    def dashboard_link(self, dashboard_id: str | None) -> str | None:
        base = self.base_url()
        if not base or not dashboard_id:
            return base or None
        return f"{base.rstrip('/')}/#/dashboards/{dashboard_id}"


class ReportScheduler:
    """Runs every enabled report when its schedule comes due; `send` runs one now."""

    def __init__(self, engine: Engine, delivery: Delivery, tick_s: float = TICK_S) -> None:
        self.engine = engine
        self.delivery = delivery
        self.tick_s = tick_s
        self._due: dict[str, tuple[tuple[Any, ...], int]] = {}  # id -> (doc key, next run)
        self._wake = trio.Event()
        self.runs = 0
        self.attempts = 0
        self.failures = 0

    def wake(self) -> None:
        """Re-read the reports now (one was created, changed or deleted)."""
        self._wake.set()

    async def run(self) -> None:
        async with trio.open_nursery() as nursery:
            while True:
                now = now_ms()
                try:
                    docs = await trio.to_thread.run_sync(self.engine.metadata.list, KIND)
                except RtaError as exc:  # the shared store unreachable: try again later
                    log.warning("reports not read: %s", exc.message)
                    docs = None
                if docs is not None:
                    for doc, due_at in self.due(docs, now):
                        if self.sends_scheduled():
                            nursery.start_soon(self._scheduled, doc, due_at)
                wait = self.tick_s
                if self._due:
                    wait = min(wait, max(0.0, (min(t for _, t in self._due.values()) - now_ms())
                                         / 1000))
                with trio.move_on_after(wait):
                    await self._wake.wait()
                self._wake = trio.Event()

    def sends_scheduled(self) -> bool:
        """Several daemons on one ClickHouse server share the reports: only the holder of
        the alerts lease sends scheduled runs (the others keep their schedule, ready to take
        over). Alone, this daemon does."""
        lease = getattr(self.engine, "alert_lease", None)
        return lease is None or bool(lease.held)

    def due(self, docs: list[dict[str, Any]], now: int) -> list[tuple[dict[str, Any], int]]:
        """The reports whose next run is at or before `now` (their next run moves on); a
        new or changed report is scheduled from `now`, never run for a time already past."""
        out = []
        seen = set()
        for doc in docs:
            if not doc.get("enabled", True):
                continue
            seen.add(doc["id"])
            key = (doc.get("schedule"), doc.get("tz"), doc.get("updatedAt"))
            known = self._due.get(doc["id"])
            try:
                if known is None or known[0] != key:
                    self._due[doc["id"]] = (key, next_run(doc["schedule"], doc["tz"], now))
                    continue
                if known[1] <= now:
                    out.append((doc, known[1]))
                    self._due[doc["id"]] = (key, next_run(doc["schedule"], doc["tz"], now))
            except (ValueError, KeyError, RtaError) as exc:
                log.warning("report %s has an unusable schedule: %s", doc.get("id"), exc)
        for gone in set(self._due) - seen:
            del self._due[gone]
        return out

    async def _scheduled(self, doc: dict[str, Any], due_at: int) -> None:
        try:
            await self.send(doc, "schedule", due_at)
        except Exception:  # a report must never take the scheduler (or the engine) down
            log.exception("report %s failed", doc.get("id"))

    async def send(self, doc: dict[str, Any], trigger: str = "manual",
                   scheduled_for: int | None = None) -> dict[str, Any]:
        """Build and deliver one run of `doc` to every recipient; the run's summary."""
        self.runs += 1
        run_id = str(uuid.uuid4())
        base = {"reportId": doc["id"], "runId": run_id, "trigger": trigger,
                "scheduledFor": scheduled_for}
        targets = parse_targets(doc["to"], "to")
        try:
            dashboard = await trio.to_thread.run_sync(self.engine.metadata.get, dash.KIND,
                                                      doc["dashboardId"])
            pinned = dash.pin(self.engine)
            content = await trio.to_thread.run_sync(build_report, pinned, dashboard,
                                                    doc.get("timeRange"))
        except RtaError as exc:
            error = exc.message
            if isinstance(exc, NotFoundError):
                error = f"the dashboard {doc['dashboardId']!r} no longer exists"
            failed = [self._record(base, t, 1, {"status": "failed", "error": error})
                      for t in targets]
            return self._summary(run_id, failed, None, None)
        picture: bytes | None = None
        note: str | None = None
        if any(t.kind == "email" for t in targets) and self.delivery.smtp.configured:
            picture, note = await self._picture(dashboard)  # (only email carries it)
        outcomes: list[dict[str, Any]] = [{} for _ in targets]

        async def deliver(i: int, target: Target) -> None:
            outcomes[i] = await self._deliver(base, target, doc, content, picture, note)

        async with trio.open_nursery() as nursery:
            for i, target in enumerate(targets):
                nursery.start_soon(deliver, i, target)
        return self._summary(run_id, outcomes, picture, note, content)

    async def _picture(self, dashboard: dict[str, Any]) -> tuple[bytes | None, str | None]:
        if self.delivery.picture is None:
            return None, NO_CHROMIUM
        try:
            return await self.delivery.picture(dashboard)
        except Exception as exc:
            log.warning("dashboard picture failed: %s", exc)
            return None, f"No picture of the dashboard: {exc}"

    async def _deliver(self, base: dict[str, Any], target: Target, doc: dict[str, Any],
                       content: dict[str, Any], picture: bytes | None,
                       note: str | None) -> dict[str, Any]:
        link = self.delivery.dashboard_link(doc["dashboardId"])
        outcome: dict[str, Any] = {}
        for attempt in range(1, self.delivery.retries + 2):
            if attempt > 1:
                await trio.sleep(self.delivery.backoff * 2 ** (attempt - 2))
            if target.kind == "email":
                message = report_email(content, target.address, self.delivery.smtp.sender,
                                       doc["tz"], link, picture, note)
                outcome = await trio.to_thread.run_sync(mailer.send, self.delivery.smtp,
                                                        message)
            elif self.delivery.post_slack is None:
                outcome = {"status": "failed", "retryable": False,
                           "error": "Slack delivery is not available in this process"}
            else:
                payload = report_message(content, doc["tz"], link,
                                         note if picture is None else None)
                outcome = await self.delivery.post_slack(target.address, payload)
            outcome = self._record(base, target, attempt, outcome)
            if outcome["status"] == "delivered" or not outcome.get("retryable", False):
                break
        return outcome

    def _record(self, base: dict[str, Any], target: Target, attempt: int,
                outcome: dict[str, Any]) -> dict[str, Any]:
        self.attempts += 1
        if outcome.get("status") != "delivered":
            self.failures += 1
        entry = {**base, "target": target.redacted(), "channel": target.kind,
                 "attempt": attempt, "at": now_ms(),
                 **{k: v for k, v in outcome.items() if k in (
                     "status", "error", "statusCode", "durationMs", "retryable")}}
        try:
            self.engine.metadata.append_history(HISTORY_KIND, base["reportId"], entry)
        except RtaError as exc:
            log.warning("report history not written: %s", exc.message)
        return entry

    @staticmethod
    def _summary(run_id: str, outcomes: list[dict[str, Any]], picture: bytes | None,
                 note: str | None, content: dict[str, Any] | None = None) -> dict[str, Any]:
        delivered = sum(1 for o in outcomes if o.get("status") == "delivered")
        status = ("delivered" if delivered == len(outcomes) else
                  "failed" if delivered == 0 else "partial")
        out: dict[str, Any] = {"runId": run_id, "status": status, "deliveries": outcomes,
                               "picture": picture is not None}
        if note:
            out["pictureNote"] = note
        if content is not None:
            out["content"] = content
        return out
