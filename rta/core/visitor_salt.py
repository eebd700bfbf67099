"""Cookieless visitor ids: a daily salted hash, as Plausible counts visitors.

The first-party script stores nothing in the browser. The server names the visitor
`hash(salt + site + ip + user agent)` (BLAKE2b, 64 bits as 16 hex digits), where the salt is
random and replaced at each UTC midnight: the same browser on the same network is one visitor
all day, and tomorrow's id cannot be linked to today's, by anyone, once the old salt is gone.
Neither the IP nor the User-Agent is stored with the event. The salt is kept in the data dir
(`web-salt.json`, mode 0600) so that a restart does not split a day's visitors; with no data
dir it lives in memory.

Thread rule: event loop (one owner); the file is written once a day.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import time
from pathlib import Path

SALT_FILE = "web-salt.json"
DAY_MS = 86_400_000


class DailySalt:
    """`visitor_id(site, ip, user_agent, now_ms)` with a salt rotated every UTC day."""

    def __init__(self, data_dir: str | None) -> None:
        self.path = Path(data_dir) / SALT_FILE if data_dir else None
        self._day: int | None = None
        self._salt = b""

    def salt(self, now_ms: int | None = None) -> bytes:
        """Today's salt (a new one at the first call of a new UTC day)."""
        day = int(time.time() * 1000 if now_ms is None else now_ms) // DAY_MS
        if day != self._day:
            self._salt = self._load(day) or self._rotate(day)
            self._day = day
        return self._salt

    def visitor_id(self, site: str, ip: str, user_agent: str, now_ms: int | None = None
                   ) -> str:
        h = hashlib.blake2b(digest_size=8, key=self.salt(now_ms))
        for part in (site, ip, user_agent):
            h.update(part.encode("utf-8", "surrogatepass"))
            h.update(b"\x00")
        return h.hexdigest()

    def _load(self, day: int) -> bytes | None:
        if self.path is None:
            return None
        try:
            saved = json.loads(self.path.read_text())
            if saved.get("day") == day:
                salt = bytes.fromhex(saved["salt"])
                if len(salt) == 32:
                    return salt
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            pass  # missing or damaged: a new salt (visitors of today so far are split once)
        return None

    def _rotate(self, day: int) -> bytes:
        salt = secrets.token_bytes(32)
        if self.path is not None:
            tmp = self.path.with_name(self.path.name + ".tmp")
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "w") as f:
                    json.dump({"day": day, "salt": salt.hex()}, f)
                os.replace(tmp, self.path)  # the old salt is gone with the old file
            except OSError:
                pass  # a read-only data dir: the salt lives in memory for today
        return salt
