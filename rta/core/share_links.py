"""Share links: read-only access to one dashboard for people without an rta token.

A link's secret (`rts_` + `secrets.token_urlsafe(32)`: 256 random bits) is shown once, when
the link is made, and stored only as its SHA-256 hash, as API tokens are (`core/auth.py`).
The `rts_` prefix keeps share secrets apart from API tokens (`rta_`), so the server knows
which store to ask. A link names one dashboard and may expire (`expiresAt`, ms); a revoked
or expired link verifies as nothing. Links are metadata documents of kind "share_link", so
both metadata stores (sqlite, shared ClickHouse) keep them.

What a link may reach is the server's rule (`server/security.py`, scope "share").

Thread rule: any thread (the metadata store serialises its own access).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from typing import Any

from rta.core.errors import NotFoundError, ValidationError, field_error
from rta.core.metadata import Metadata
from rta.core.queries.timeparse import now_ms, parse_duration, parse_time

KIND = "share_link"
DASHBOARD_KIND = "dashboard"
PREFIX = "rts_"
SCOPE = "share"
CACHE_S = 1.0  # links made or revoked through another process count within this


def is_share_secret(secret: str) -> bool:
    return secret.startswith(PREFIX)


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def public(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k != "hash"}


def expired(doc: dict[str, Any], now: int | None = None) -> bool:
    at = doc.get("expiresAt")
    return isinstance(at, int) and (now_ms() if now is None else now) >= at


def expiry(body: dict[str, Any], now: int | None = None) -> int | None:
    """`expiresAt` (a time) or `expiresIn` (a duration from now) as ms; None: never."""
    current = now_ms() if now is None else now
    at, within = body.get("expiresAt"), body.get("expiresIn")
    if at is not None and within is not None:
        raise field_error("expiresIn", "give expiresAt or expiresIn, not both")
    if within is not None:
        return current + parse_duration(within, "expiresIn")
    if at is None:
        return None
    when = parse_time(at, "expiresAt", current)
    if when <= current:
        raise field_error("expiresAt", "must be in the future", value=at)
    return when


class ShareLinkStore:
    def __init__(self, metadata: Metadata) -> None:
        self.metadata = metadata
        self._cache: tuple[float, list[dict[str, Any]]] | None = None

    def create(self, dashboard_id: str, body: Any = None,
               created_by: str | None = None) -> tuple[str, dict[str, Any]]:
        """A new link to `dashboard_id` (404 if there is none): (the secret, shown only now;
        its public record)."""
        body = {} if body is None else body
        if not isinstance(body, dict):
            raise ValidationError("the body must be a JSON object", [{"field": ""}])
        unknown = sorted(set(body) - {"expiresAt", "expiresIn", "name"})
        if unknown:
            raise field_error(unknown[0], "unknown field",
                              allowed=["expiresAt", "expiresIn", "name"])
        name = body.get("name")
        if name is not None and (not isinstance(name, str) or len(name) > 200):
            raise field_error("name", "must be a string of at most 200 characters")
        self.metadata.get(DASHBOARD_KIND, dashboard_id)  # NotFoundError: no such dashboard
        secret = PREFIX + secrets.token_urlsafe(32)
        doc = self.metadata.create(KIND, {
            "dashboardId": dashboard_id, "name": name, "hash": _hash(secret),
            "hint": secret[:8] + "…", "expiresAt": expiry(body), "createdBy": created_by})
        self._cache = None
        return secret, public(doc)

    def list_links(self, dashboard_id: str | None = None) -> list[dict[str, Any]]:
        """Links (of one dashboard), with `expired` saying which no longer open."""
        now = now_ms()
        return [{**public(d), "expired": expired(d, now)} for d in self.metadata.list(KIND)
                if dashboard_id is None or d.get("dashboardId") == dashboard_id]

    def revoke(self, dashboard_id: str, link_id: str | None = None) -> list[dict[str, Any]]:
        """Revoke one link of the dashboard (404 if it has no such link), or all of them."""
        docs = [d for d in self.metadata.list(KIND) if d.get("dashboardId") == dashboard_id]
        if link_id is not None:
            docs = [d for d in docs if d["id"] == link_id]
            if not docs:
                raise NotFoundError(f"dashboard {dashboard_id!r} has no share link "
                                    f"{link_id!r}", [{"field": "linkId", "value": link_id}])
        revoked = []
        for doc in docs:
            try:
                self.metadata.delete(KIND, doc["id"])
            except NotFoundError:  # revoked meanwhile (another request or daemon)
                continue
            revoked.append(public(doc))
        self._cache = None
        return revoked

    def verify(self, secret: str, now: int | None = None) -> dict[str, Any] | None:
        """The link's record if `secret` opens a live link; None otherwise (no other hint)."""
        digest = _hash(secret)
        found = None
        for doc in self._docs():
            if hmac.compare_digest(doc["hash"], digest):
                found = doc
        if found is None or expired(found, now):
            return None
        return public(found)

    def alive(self, link_id: str, now: int | None = None) -> bool:
        """Whether the link still opens (not revoked, not expired)."""
        return any(d["id"] == link_id and not expired(d, now) for d in self._docs())

    def _docs(self) -> list[dict[str, Any]]:
        # Re-read at most once a second (links revoked here clear it at once), as tokens do.
        t = time.monotonic()
        if self._cache is None or t - self._cache[0] > CACHE_S:
            self._cache = (t, self.metadata.list(KIND))
        return self._cache[1]
