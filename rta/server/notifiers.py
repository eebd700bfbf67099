"""Notification delivery that needs the network stack (kept out of rta.core).

`WebhookNotifier` is injected into the core `AlertEvaluator` as its `send_webhook` callable.
"""

from __future__ import annotations

import ipaddress
import time
from typing import Any
from urllib.parse import urlsplit

import httpx
import trio

from rta import __version__


def private_address(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    return (ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_reserved
            or ip.is_multicast or ip.is_unspecified)


async def private_target(url: str) -> str | None:
    """Why `url` must not be called (it resolves to a private or loopback address, or does
    not resolve), or None. Guards against alert webhooks probing the internal network."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        infos = await trio.socket.getaddrinfo(host, parts.port or 443, type=trio.socket.SOCK_STREAM)
    except OSError as exc:
        return f"cannot resolve {host}: {exc}"
    for info in infos:
        address = str(info[4][0])
        if private_address(address):
            return (f"{host} resolves to {address}, a private or loopback address; set "
                    "allow_private_webhooks to allow it")
    return None


RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


class WebhookNotifier:
    """POST a JSON payload; retry transport errors, timeouts and 5xx/429 with backoff.

    `retries` retries follow the first attempt (so 3 means up to 4 attempts), waiting
    `backoff`, 2*`backoff`, 4*`backoff` seconds between them. The outcome is returned, never
    raised, so the caller can keep it in the alert history.
    """

    def __init__(self, timeout: float = 5.0, retries: int = 3, backoff: float = 0.5,
                 transport: httpx.AsyncBaseTransport | None = None,
                 allow_private: bool = False) -> None:
        self.allow_private = allow_private
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.transport = transport
        self.delivered = 0
        self.failed = 0

    async def __call__(self, url: str, payload: dict[str, Any]) -> dict[str, Any]:
        started = time.perf_counter()
        refused = None if self.allow_private else await private_target(url)
        if refused is not None:
            self.failed += 1
            return {"status": "refused", "attempts": 0, "attemptLog": [], "statusCode": None,
                    "error": refused, "durationMs": 0.0}
        attempts: list[dict[str, Any]] = []
        headers = {"User-Agent": f"rta/{__version__}",
                   "X-Rta-Event": str(payload.get("event", "")),
                   "X-Rta-Alert-Id": str(payload.get("alertId", ""))}
        async with httpx.AsyncClient(timeout=self.timeout, transport=self.transport,
                                     follow_redirects=False) as client:
            for attempt in range(self.retries + 1):
                if attempt:
                    await trio.sleep(self.backoff * 2 ** (attempt - 1))
                try:
                    response = await client.post(url, json=payload, headers=headers)
                except httpx.HTTPError as exc:
                    attempts.append({"error": f"{type(exc).__name__}: {exc}".rstrip(": ")})
                    continue
                attempts.append({"statusCode": response.status_code})
                if response.status_code < 300:
                    self.delivered += 1
                    return {"status": "delivered", "attempts": len(attempts),
                            "statusCode": response.status_code, "attemptLog": attempts,
                            "durationMs": round((time.perf_counter() - started) * 1000, 1)}
                if response.status_code not in RETRY_STATUS:
                    break
        self.failed += 1
        last = attempts[-1] if attempts else {}
        return {"status": "failed", "attempts": len(attempts), "attemptLog": attempts,
                "statusCode": last.get("statusCode"),
                "error": last.get("error") or f"HTTP {last.get('statusCode')}",
                "durationMs": round((time.perf_counter() - started) * 1000, 1)}
