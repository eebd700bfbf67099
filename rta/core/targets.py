"""Delivery targets of reports and alert notifications: `email:<address>` and
`slack:<incoming-webhook URL>`, checked when they are saved so a typo is a 400 naming the
field, not a failure discovered at 09:00 on Monday.

Whether a URL's host is private is decided when it is called (the server's notifier
resolves it then, as for alert webhooks), since DNS answers change.

Thread rule: any thread (pure).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from rta.core.errors import field_error

KINDS = ("email", "slack")
MAX_TARGETS = 50
# The addr-spec people type (RFC 5322's dot-atom local part and a dotted domain); quoted
# local parts and IP-literal domains are refused: no mail server of ours needs them.
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
EMAIL = re.compile(rf"^{_ATOM}(?:\.{_ATOM})*@{_LABEL}(?:\.{_LABEL})+$")


@dataclass(frozen=True)
class Target:
    kind: str  # email | slack
    address: str  # the email address or the webhook URL

    @property
    def spec(self) -> str:
        return f"{self.kind}:{self.address}"

    def redacted(self) -> str:
        """For history and logs: a Slack webhook's path is its secret."""
        if self.kind == "slack":
            return f"slack:{redact_url(self.address)}"
        return self.spec


def redact_url(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}/…"


def check_email(value: Any, field: str) -> str:
    if not isinstance(value, str) or len(value) > 254 or not EMAIL.match(value.strip()):
        raise field_error(field, "must be an email address such as ops@example.com",
                          value=value)
    return value.strip()


def check_url(value: Any, field: str) -> str:
    """An absolute http(s) URL with a host and no credentials, whitespace or fragment."""
    if not isinstance(value, str) or not value or len(value) > 2048:
        raise field_error(field, "must be an http:// or https:// URL", value=value)
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        raise field_error(field, "is not a valid URL", value=value) from None
    del port
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise field_error(field, "must be an http:// or https:// URL", value=value)
    if any(c.isspace() for c in value) or "@" in parts.netloc:
        raise field_error(field, "must not contain spaces or user:password@", value=value)
    return value


def parse_target(value: Any, field: str) -> Target:
    if not isinstance(value, str) or ":" not in value:
        raise field_error(field, "must be 'email:<address>' or 'slack:<webhook URL>'",
                          value=value)
    kind, _, rest = value.partition(":")
    kind = kind.strip().lower()
    if kind == "email":
        return Target("email", check_email(rest, field))
    if kind == "slack":
        return Target("slack", check_url(rest.strip(), field))
    raise field_error(field, "must start with email: or slack:", value=value,
                      allowed=list(KINDS))


def parse_targets(value: Any, field: str = "to") -> list[Target]:
    """A non-empty list of distinct targets; errors name `to[i]`."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value:
        raise field_error(field, "must be a non-empty list such as "
                          "['email:ops@example.com', 'slack:https://hooks.slack.com/...']")
    if len(value) > MAX_TARGETS:
        raise field_error(field, f"at most {MAX_TARGETS} recipients")
    out: dict[str, Target] = {}
    for i, item in enumerate(value):
        target = parse_target(item, f"{field}[{i}]")
        out.setdefault(target.spec, target)
    return list(out.values())


def alert_channel_fields(note: dict[str, Any], channels: list[str]) -> dict[str, Any]:
    """An alert's `notification.emailTo` (required for the email channel), `slackUrl`
    (required for slack) and `dashboardId` (linked from both), checked."""
    out: dict[str, Any] = {}
    emails = note.get("emailTo")
    if emails is not None or "email" in channels:
        if isinstance(emails, str):
            emails = [emails]
        if not isinstance(emails, list) or not emails:
            raise field_error("notification.emailTo",
                              "is required for the email channel: a list of addresses")
        if len(emails) > MAX_TARGETS:
            raise field_error("notification.emailTo", f"at most {MAX_TARGETS} addresses")
        out["emailTo"] = list(dict.fromkeys(
            check_email(e, f"notification.emailTo[{i}]") for i, e in enumerate(emails)))
    slack = note.get("slackUrl")
    if slack is not None or "slack" in channels:
        if slack is None:
            raise field_error("notification.slackUrl",
                              "is required for the slack channel: an incoming-webhook URL")
        out["slackUrl"] = check_url(slack, "notification.slackUrl")
    dashboard = note.get("dashboardId")
    if dashboard is not None:
        if not isinstance(dashboard, str) or not dashboard or len(dashboard) > 200:
            raise field_error("notification.dashboardId", "must be a dashboard id")
        out["dashboardId"] = dashboard
    return out
