"""Email over SMTP (stdlib smtplib): the report and alert channel.

`SmtpSettings` comes from the `smtp_*` settings (env `RTA_SMTP_*`). Its password is never
part of `public()`, `repr()` or any outcome or log line. `send` is blocking (call it from a
worker thread) and returns an outcome instead of raising, so a refused login or an
unreachable server becomes a failed delivery in the history, never a crash.

Thread rule: `send` blocks on the network: call it from a worker thread
(`trio.to_thread.run_sync`), never on the event loop.
"""

from __future__ import annotations

import smtplib
import ssl
import time
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

TLS_MODES = ("none", "starttls", "tls")
# SMTP replies that mean "try again later" (RFC 5321 4yz) are retried; 5yz are final.


@dataclass(frozen=True)
class SmtpSettings:
    host: str = ""
    port: int = 25
    tls: str = "none"  # none | starttls | tls
    user: str = ""
    password: str = field(default="", repr=False)
    sender: str = ""
    timeout: float = 10.0

    @property
    def configured(self) -> bool:
        return bool(self.host and self.sender)

    def public(self) -> dict[str, Any]:
        """What may be shown (settings pages, errors): no password, no user name."""
        return {"host": self.host, "port": self.port, "tls": self.tls,
                "from": self.sender, "auth": bool(self.user)}

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> SmtpSettings:
        tls = str(options.get("smtp_tls") or "none").lower()
        return cls(host=str(options.get("smtp_host") or ""),
                   port=int(options.get("smtp_port") or (465 if tls == "tls" else 25)),
                   tls=tls if tls in TLS_MODES else "none",
                   user=str(options.get("smtp_user") or ""),
                   password=str(options.get("smtp_password") or ""),
                   sender=str(options.get("smtp_from") or ""))


def _clean(text: str, settings: SmtpSettings) -> str:
    """An error text with the credentials blanked (servers sometimes echo them)."""
    for secret in (settings.password, settings.user):
        if secret and len(secret) >= 3:
            text = text.replace(secret, "***")
    return text


def send(settings: SmtpSettings, message: EmailMessage) -> dict[str, Any]:
    """Deliver one message; the outcome: status delivered | failed, retryable, error."""
    started = time.perf_counter()
    if not settings.configured:
        return {"status": "failed", "retryable": False,
                "error": "email is not configured: set smtp_host and smtp_from "
                         "(RTA_SMTP_HOST, RTA_SMTP_FROM)"}
    if message.get("From") is None:
        message["From"] = settings.sender
    try:
        client: smtplib.SMTP
        if settings.tls == "tls":
            client = smtplib.SMTP_SSL(settings.host, settings.port, timeout=settings.timeout,
                                      context=ssl.create_default_context())
        else:
            client = smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout)
        with client:
            if settings.tls == "starttls":
                client.starttls(context=ssl.create_default_context())
            if settings.user:
                client.login(settings.user, settings.password)
            refused = client.send_message(message)
    except smtplib.SMTPAuthenticationError as exc:
        return _failed(settings, f"the SMTP server refused the login ({exc.smtp_code})",
                       False, started)
    except smtplib.SMTPResponseException as exc:
        detail = exc.smtp_error.decode(errors="replace") if isinstance(
            exc.smtp_error, bytes) else str(exc.smtp_error)
        return _failed(settings, f"SMTP {exc.smtp_code}: {detail}", 400 <= exc.smtp_code < 500,
                       started)
    except smtplib.SMTPRecipientsRefused as exc:
        return _failed(settings, f"recipients refused: {', '.join(exc.recipients)}", False,
                       started)
    except (TimeoutError, smtplib.SMTPException, OSError, ssl.SSLError) as exc:
        return _failed(settings, f"{type(exc).__name__}: {exc}", True, started)
    if refused:
        return _failed(settings, f"recipients refused: {', '.join(refused)}", False, started)
    return {"status": "delivered", "durationMs": _ms(started)}


def _failed(settings: SmtpSettings, error: str, retryable: bool,
            started: float) -> dict[str, Any]:
    return {"status": "failed", "retryable": retryable, "error": _clean(error, settings),
            "durationMs": _ms(started)}


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)
