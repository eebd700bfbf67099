"""API tokens: created once (the secret is shown only then), stored as SHA-256 hashes.

Scopes: `read` (queries, exports, live streams), `write` (ingest), `admin` (everything,
including alerts, dashboards, segments and tokens).

Thread rule: any thread: tokens live in the metadata store, which serialises its own access.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from typing import Any

from rta.core.errors import NotFoundError, field_error
from rta.core.metadata import Metadata

SCOPES = ("read", "write", "admin")
KIND = "token"
PREFIX = "rta_"


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def scope_allows(have: str, need: str) -> bool:
    return have == "admin" or have == need


class TokenStore:
    def __init__(self, metadata: Metadata) -> None:
        self.metadata = metadata
        self._cache: tuple[float, list[dict[str, Any]]] | None = None

    def create(self, scope: str, name: str | None = None) -> tuple[str, dict[str, Any]]:
        """A new token: (the secret, to show once; its public record)."""
        if scope not in SCOPES:
            raise field_error("scope", f"must be one of {', '.join(SCOPES)}", value=scope,
                              allowed=list(SCOPES))
        secret = PREFIX + secrets.token_urlsafe(32)
        doc = self.metadata.create(KIND, {"name": name or f"{scope}-token", "scope": scope,
                                          "hash": _hash(secret), "hint": secret[:8] + "…"})
        self._cache = None
        return secret, public(doc)

    def list_tokens(self) -> list[dict[str, Any]]:
        return [public(d) for d in self.metadata.list(KIND)]

    def revoke(self, ref: str) -> dict[str, Any]:
        """Revoke by id or by name."""
        for doc in self.metadata.list(KIND):
            if ref in (doc["id"], doc.get("name")):
                self.metadata.delete(KIND, doc["id"])
                self._cache = None
                return public(doc)
        raise NotFoundError(f"no token with id or name {ref!r}", [{"field": "token",
                                                                    "value": ref}])

    def verify(self, secret: str) -> dict[str, Any] | None:
        """The token's record if `secret` is a live token; None otherwise (no other hint)."""
        digest = _hash(secret)
        found = None
        for doc in self._docs():
            if hmac.compare_digest(doc["hash"], digest):
                found = doc
        return None if found is None else public(found)

    def alive(self, token_id: str) -> bool:
        """Whether the token with this id still exists (not revoked)."""
        return any(doc["id"] == token_id for doc in self._docs())

    def _docs(self) -> list[dict[str, Any]]:
        # Re-read at most once a second so tokens created by `rta token create` on the same
        # data dir (another process) take effect promptly without a query per request.
        now = time.monotonic()
        if self._cache is None or now - self._cache[0] > 1.0:
            self._cache = (now, self.metadata.list(KIND))
        return self._cache[1]

    def any(self) -> bool:
        return bool(self._docs())


def public(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k != "hash"}
