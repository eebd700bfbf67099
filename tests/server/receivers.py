"""Real receivers on loopback for delivery tests: an SMTP server (aiosmtpd) that keeps what
it receives and can be told to refuse logins, an HTTP receiver for Slack-compatible
webhooks that can be told to fail first, and a Block Kit structure check."""

from __future__ import annotations

import email
import email.policy
import json
import socket
import ssl
import threading
import time
import warnings
from collections.abc import Callable
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

USER, PASSWORD = "rta-mailer", "s3cret-pa55word"
# aiosmtpd warns, in its own thread on every connection, about AUTH without TLS (fine on
# loopback in a test) and sets its own deprecated Session.login_data on every login; under
# the suite's warnings-as-errors either would break the SMTP session. Modules using
# SmtpServer set `pytestmark = SMTP_WARNINGS`.
SMTP_WARNINGS = [
    pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning"),
    pytest.mark.filterwarnings("ignore:Session.login_data is deprecated:DeprecationWarning")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Mailbox:
    """aiosmtpd handler: every message received, parsed."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.refuse_login = False
        self.logins: list[tuple[str, bool]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        msg = email.message_from_bytes(envelope.original_content or envelope.content,
                                       policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        self.messages.append(msg)
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 OK"

    def authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str,
                     auth_data: Any) -> AuthResult:
        ok = (isinstance(auth_data, LoginPassword) and not self.refuse_login
              and auth_data.login.decode() == USER and auth_data.password.decode() == PASSWORD)
        self.logins.append((mechanism, ok))
        return AuthResult(success=ok, handled=False)  # (handled: a 535 is sent for us)

    def wait(self, n: int, timeout: float = 30.0) -> list[EmailMessage]:
        deadline = time.monotonic() + timeout
        while len(self.messages) < n and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(self.messages) >= n, f"{len(self.messages)} of {n} emails arrived"
        return self.messages


class SmtpServer:
    """aiosmtpd on loopback with a login; `starttls` or `implicit` (an ssl.SSLContext) for
    the TLS modes (with STARTTLS, AUTH is only offered after it)."""

    def __init__(self, starttls: ssl.SSLContext | None = None,
                 implicit: ssl.SSLContext | None = None) -> None:
        self.mailbox = Mailbox()
        self.port = free_port()
        with warnings.catch_warnings():  # (AUTH without TLS: fine on loopback in a test)
            warnings.simplefilter("ignore")
            self.controller = Controller(self.mailbox, hostname="127.0.0.1", port=self.port,
                                         authenticator=self.mailbox.authenticate,
                                         # (aiosmtpd counts only STARTTLS as TLS)
                                         auth_require_tls=starttls is not None,
                                         auth_required=True,
                                         tls_context=starttls,
                                         require_starttls=starttls is not None,
                                         ssl_context=implicit,
                                         server_hostname="localhost")
            self.controller.start()

    def stop(self) -> None:
        self.controller.stop()


class Hook:
    """Incoming-webhook receiver: JSON bodies by path; `fail_next` answers 503 first."""

    def __init__(self) -> None:
        self.bodies: list[tuple[str, Any]] = []
        self.fail_next = 0
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if hook.fail_next > 0:
                    hook.fail_next -= 1
                    self.send_response(503)
                    self.end_headers()
                    return
                hook.bodies.append((self.path, json.loads(raw)))
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def wait(self, predicate: Callable[[list[tuple[str, Any]]], bool],
             timeout: float = 30.0) -> list[tuple[str, Any]]:
        deadline = time.monotonic() + timeout
        while not predicate(self.bodies) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert predicate(self.bodies), self.bodies
        return self.bodies

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# -- Block Kit, as Slack documents it (https://api.slack.com/reference/block-kit) -------------

BLOCK_TYPES = ("section", "header", "context", "divider", "image")


def _text(obj: Any, where: str, kinds: tuple[str, ...] = ("mrkdwn", "plain_text"),
          limit: int = 3000) -> None:
    assert isinstance(obj, dict), f"{where}: a text object"
    assert obj.get("type") in kinds, f"{where}: type {obj.get('type')!r} not in {kinds}"
    assert isinstance(obj.get("text"), str) and 1 <= len(obj["text"]) <= limit, \
        f"{where}: text of 1..{limit} characters"
    allowed = {"type", "text", "emoji"} if obj["type"] == "plain_text" else \
        {"type", "text", "verbatim"}
    assert set(obj) <= allowed, f"{where}: unexpected keys {set(obj) - allowed}"
    if "emoji" in obj:
        assert isinstance(obj["emoji"], bool)


def check_block_kit(payload: Any) -> None:
    """An incoming-webhook payload: `text` fallback and at most 50 valid blocks."""
    assert isinstance(payload, dict) and isinstance(payload.get("text"), str)
    blocks = payload.get("blocks")
    assert isinstance(blocks, list) and 1 <= len(blocks) <= 50
    for i, block in enumerate(blocks):
        where = f"blocks[{i}]"
        kind = block.get("type")
        assert kind in BLOCK_TYPES, f"{where}: unknown type {kind!r}"
        if "block_id" in block:
            assert isinstance(block["block_id"], str) and len(block["block_id"]) <= 255
        if kind == "header":
            assert set(block) <= {"type", "text", "block_id"}
            _text(block["text"], f"{where}.text", ("plain_text",), 150)
        elif kind == "section":
            assert set(block) <= {"type", "text", "fields", "block_id", "accessory"}
            assert "text" in block or "fields" in block
            if "text" in block:
                _text(block["text"], f"{where}.text")
            if "fields" in block:
                assert 1 <= len(block["fields"]) <= 10, f"{where}.fields: 1..10"
                for j, f in enumerate(block["fields"]):
                    _text(f, f"{where}.fields[{j}]", limit=2000)
        elif kind == "context":
            assert set(block) <= {"type", "elements", "block_id"}
            assert 1 <= len(block["elements"]) <= 10
            for j, el in enumerate(block["elements"]):
                if el.get("type") == "image":
                    assert el.get("image_url") and el.get("alt_text")
                else:
                    _text(el, f"{where}.elements[{j}]")
        elif kind == "divider":
            assert set(block) <= {"type", "block_id"}
        elif kind == "image":
            assert set(block) <= {"type", "image_url", "alt_text", "title", "block_id"}
            assert 0 < len(block["image_url"]) <= 3000 and 0 < len(block["alt_text"]) <= 2000
            if "title" in block:
                _text(block["title"], f"{where}.title", ("plain_text",), 2000)


def block_text(payload: dict[str, Any]) -> str:
    """Every text of a payload's blocks, joined (to look for figures in)."""
    parts: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("text"), str):
                parts.append(node["text"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)
    walk(payload["blocks"])
    return "\n".join(parts)
