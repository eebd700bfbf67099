"""SMTP delivery in each TLS mode against a real server on loopback (aiosmtpd; certificates
from a test CA that the client trusts through SSL_CERT_FILE), and credentials kept out of
every outcome."""

from __future__ import annotations

import ssl
from email.message import EmailMessage
from pathlib import Path

import pytest
import trustme

from rta.core.mailer import SmtpSettings, send
from tests.server.receivers import PASSWORD, SMTP_WARNINGS, USER, SmtpServer

pytestmark = SMTP_WARNINGS


def _message() -> EmailMessage:
    msg = EmailMessage()
    msg["To"] = "ops@example.com"
    msg["Subject"] = "hello"
    msg.set_content("plain")
    msg.add_alternative("<p>html</p>", subtype="html")
    return msg


@pytest.fixture
def ca(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> trustme.CA:
    authority = trustme.CA()
    pem = tmp_path / "ca.pem"
    authority.cert_pem.write_to_path(str(pem))
    monkeypatch.setenv("SSL_CERT_FILE", str(pem))  # (what ssl.create_default_context trusts)
    return authority


def _server_context(authority: trustme.CA) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("localhost").configure_cert(ctx)
    return ctx


@pytest.mark.parametrize("mode", ["starttls", "tls"])
def test_tls_modes_deliver_after_a_login_over_tls(mode: str, ca: trustme.CA) -> None:
    ctx = _server_context(ca)
    server = SmtpServer(starttls=ctx) if mode == "starttls" else SmtpServer(implicit=ctx)
    try:
        settings = SmtpSettings(host="localhost", port=server.port, tls=mode, user=USER,
                                password=PASSWORD, sender="rta@example.com", timeout=10)
        outcome = send(settings, _message())
        assert outcome["status"] == "delivered", outcome
        (msg,) = server.mailbox.messages
        assert msg["From"] == "rta@example.com" and msg["Subject"] == "hello"
        assert server.mailbox.logins[-1][1] is True
        # a plain client meets a server that wants TLS first (or speaks only TLS): a failed
        # delivery with the reason, never the password
        plain = send(SmtpSettings(host="localhost", port=server.port, tls="none", user=USER,
                                  password=PASSWORD, sender="rta@example.com", timeout=1),
                     _message())
        assert plain["status"] == "failed" and PASSWORD not in str(plain)
        assert len(server.mailbox.messages) == 1
    finally:
        server.stop()


def test_an_untrusted_certificate_is_a_failed_delivery(tmp_path: Path) -> None:
    ctx = _server_context(trustme.CA())  # (a CA nobody trusts)
    server = SmtpServer(starttls=ctx)
    try:
        outcome = send(SmtpSettings(host="localhost", port=server.port, tls="starttls",
                                    user=USER, password=PASSWORD, sender="rta@example.com",
                                    timeout=5), _message())
        assert outcome["status"] == "failed" and "SSL" in outcome["error"]
        assert server.mailbox.messages == []
    finally:
        server.stop()


def test_credentials_stay_out_of_outcomes_and_reprs() -> None:
    settings = SmtpSettings(host="127.0.0.1", port=1, user=USER, password=PASSWORD,
                            sender="rta@example.com", timeout=2)
    assert PASSWORD not in repr(settings) and PASSWORD not in str(settings.public())
    outcome = send(settings, _message())  # (nothing listens on port 1)
    assert outcome["status"] == "failed" and outcome["retryable"] is True
    assert send(SmtpSettings(), _message())["error"].startswith("email is not configured")
