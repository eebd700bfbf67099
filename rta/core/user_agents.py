"""Browser, OS, device type and bot flag from a User-Agent string.

The parsing is uap-core's rules through `ua-parser` (its bundled regexes, so it works
offline; `ua-parser-rs`, when installed, makes a first sight of a string ~15 us instead of
~1 ms). Real traffic repeats a few thousand strings, so answers are kept per string in a
bounded dict and a repeated string costs one dict lookup.

Names follow PostHog's (`$browser`, `$browser_version`, `$os`, `$os_version`,
`$device_type`, `$bot`) so that the events of posthog-js, which sends these itself, and the
events rta derives read alike. `$browser_version` is a number as posthog-js sends it
(major.minor: 124, 17.4); `$os_version` is text ("10.15.7"). The device type is Desktop,
Mobile or Tablet by the rules of the `user-agents` library; `$bot` is present (true) only for
crawlers, headless browsers and HTTP tools. Nothing is derived from a string uap-core does
not recognise: no "Other", no guess.

Thread rule: one `UserAgents` per thread or guarded by its caller; the cache is a plain dict
(a lost race only recomputes an entry).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

Derived = dict[str, Any]
# Longest string looked at: a longer one is a hostile or broken client, not a browser.
MAX_LENGTH = 1024
CACHE_SIZE = 20_000
MOBILE_DEVICES = ("iPhone", "iPod", "Generic Smartphone", "Generic Feature Phone",
                  "PlayStation Vita", "iOS-Device")
MOBILE_BROWSERS = ("IE Mobile", "Opera Mobile", "Opera Mini", "Chrome Mobile",
                   "Chrome Mobile WebView", "Chrome Mobile iOS", "Firefox Mobile",
                   "Firefox iOS", "Edge Mobile")
MOBILE_OSES = ("Windows Phone", "Windows Phone OS", "Symbian OS", "Bada", "Windows CE",
               "Windows Mobile", "Maemo", "KaiOS")
TABLET_DEVICES = ("iPad", "BlackBerry Playbook", "Blackberry Playbook", "Kindle",
                  "Kindle Fire", "Kindle Fire HD", "Galaxy Tab", "Xoom", "Dell Streak")
# What uap-core does not call a 'Spider' but no person browses with.
BOT_PATTERN = re.compile(
    r"bot\b|bot/|crawl|spider|slurp|headless|phantomjs|lighthouse|pagespeed|pingdom|"
    r"uptime|monitor|preview|facebookexternalhit|embedly|curl/|wget/|python-requests|"
    r"python-urllib|aiohttp|httpx|go-http-client|java/|okhttp|apache-httpclient|libwww|"
    r"node-fetch|axios/|scrapy|feedfetcher|validator|archiver|^mozilla/5\.0$", re.I)
# BOT_PATTERN's plain parts, for `is_bot`'s substring tests (a first sight of a string cost
# ~30 us in the regex's alternation, ~1 us this way).
BOT_WORDS = ("crawl", "spider", "slurp", "headless", "phantomjs", "lighthouse", "pagespeed",
             "pingdom", "uptime", "monitor", "preview", "facebookexternalhit", "embedly",
             "curl/", "wget/", "python-requests", "python-urllib", "aiohttp", "httpx",
             "go-http-client", "java/", "okhttp", "apache-httpclient", "libwww", "node-fetch",
             "axios/", "scrapy", "feedfetcher", "validator", "archiver")


def _parser() -> Callable[[str], Any]:
    from ua_parser import parse  # (deferred: loading its rules takes ~0.1 s)
    return parse


class UserAgents:
    """`derive(ua)` -> the derived properties of one User-Agent string (cached)."""

    def __init__(self, cache_size: int = CACHE_SIZE) -> None:
        self.cache_size = cache_size
        self._cache: dict[str, Derived] = {}
        self._parse: Callable[[str], Any] | None = None

    def derive(self, ua: Any) -> Derived:
        """The derived properties (shared: copy before changing); {} for anything unusable."""
        if not isinstance(ua, str):
            return {}
        hit = self._cache.get(ua)
        if hit is not None:
            return hit
        result = self._compute(ua)
        if len(self._cache) >= self.cache_size:
            self._cache.clear()  # bounded under churn; the common strings come back at once
        self._cache[ua] = result
        return result

    def _compute(self, ua: str) -> Derived:
        text = ua.strip()
        if not text or len(text) > MAX_LENGTH:
            return {}
        if self._parse is None:
            self._parse = _parser()
        try:
            parsed = self._parse(text)
        except Exception:  # (a parser bug must never reject an event)
            return {}
        return describe(text, parsed)


def describe(ua: str, parsed: Any) -> Derived:
    """The derived properties from ua-parser's `Result` for `ua`."""
    agent, os_, device = parsed.user_agent, parsed.os, parsed.device
    browser = agent.family if agent is not None and agent.family != "Other" else None
    os_name = os_.family if os_ is not None and os_.family != "Other" else None
    device_family = device.family if device is not None else "Other"
    out: Derived = {}
    if browser:
        out["$browser"] = browser
        version = _browser_version(agent.major, agent.minor)
        if version is not None:
            out["$browser_version"] = version
    if os_name:
        out["$os"] = os_name
        parts = [p for p in (os_.major, os_.minor, os_.patch) if p]
        if parts:
            out["$os_version"] = ".".join(parts)
    bot = device_family == "Spider" or is_bot(ua)
    if bot:
        out["$bot"] = True
    if browser or os_name:
        out["$device_type"] = device_type(ua, browser or "", os_name or "", device_family,
                                          os_.major if os_ is not None else None)
    return out


def is_bot(ua: str) -> bool:
    """`BOT_PATTERN.search(ua)`, answered by substring tests on the lower-cased text for
    ASCII strings (where lower-casing is exactly the regex's case folding); other text
    goes through the regex."""
    if not ua.isascii():
        return BOT_PATTERN.search(ua) is not None
    low = ua.lower()
    if low == "mozilla/5.0" or low == "mozilla/5.0\n":  # (`$` also matches before a final \n)
        return True
    for word in BOT_WORDS:
        if word in low:
            return True
    at = low.find("bot")
    while at >= 0:  # `bot\b|bot/`: "bot" then the end or a character that is not a word's
        after = at + 3
        if after == len(low) or not (low[after].isalnum() or low[after] == "_"):
            return True
        at = low.find("bot", after)
    return False


def _browser_version(major: str | None, minor: str | None) -> int | float | None:
    """posthog-js's `$browser_version`: major.minor as a number (124, 17.4)."""
    if not major or not major.isdigit():
        return None
    if minor and minor.isdigit() and int(minor) != 0:
        return float(f"{int(major)}.{minor}")
    return int(major)


def device_type(ua: str, browser: str, os_name: str, device: str, os_major: str | None
                ) -> str:
    """Desktop, Mobile or Tablet (the `user-agents` library's rules)."""
    if _is_tablet(ua, browser, os_name, device, os_major):
        return "Tablet"
    if (device in MOBILE_DEVICES or browser in MOBILE_BROWSERS or os_name in MOBILE_OSES
            or os_name in ("Android", "Firefox OS", "iOS")
            or (os_name == "BlackBerry OS" and device != "Blackberry Playbook")
            or "J2ME" in ua or "MIDP" in ua or "iPhone;" in ua or "Googlebot-Mobile" in ua
            or (device == "Spider" and "Mobile" in browser)
            or ("NokiaBrowser" in ua and "Mobile" in ua)):
        return "Mobile"
    return "Desktop"


def _is_tablet(ua: str, browser: str, os_name: str, device: str, os_major: str | None
               ) -> bool:
    if device in TABLET_DEVICES or "iPad" in ua:
        return True
    if os_name == "Android" and "Mobile" not in ua and browser != "Firefox Mobile":
        return True  # Android tablets leave "Mobile" out of the string
    if os_name == "Windows" and (os_major or "").startswith("RT"):
        return True
    return os_name == "Firefox OS" and "Mobile" not in browser
