"""One notion of a pageview across rta's API, PostHog, Segment and the first-party script.

Events are stored as sent; this module says how queries read them (docs/web.md has the
table). A pageview is an event whose type is one of `PAGEVIEW_TYPES`; its page fields are
the first *string* property present among each field's aliases, in order:

| field    | aliases (first present wins)                                           |
|----------|------------------------------------------------------------------------|
| url      | `$current_url`, `url`, `href`, `context.page.url`                      |
| path     | `$pathname`, `path`, `page`, `context.page.path`, else the url's path  |
| host     | `$host`, `host`, `context.page.host`... else the url's host            |
| title    | `title`, `$title`, `context.page.title`, `name`                        |
| referrer | `$referrer`, `referrer`, `ref`, `context.page.referrer` (`$direct` = none) |

Visits read the derived device and place properties by PostHog's names (`DIMENSION_PROPS`),
which the ingest derivation writes, and leave out events whose `$bot` is true.

Thread rule: constants and pure functions; any thread.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from rta.core.web_sources import clean_host, parse_url

PAGEVIEW_TYPES: tuple[str, ...] = ("pageview", "page", "$pageview")
URL_KEYS: tuple[str, ...] = ("$current_url", "url", "href", "context.page.url")
PATH_KEYS: tuple[str, ...] = ("$pathname", "path", "page", "context.page.path")
HOST_KEYS: tuple[str, ...] = ("$host", "host", "context.page.host")
TITLE_KEYS: tuple[str, ...] = ("title", "$title", "context.page.title", "name")
REFERRER_KEYS: tuple[str, ...] = ("$referrer", "referrer", "ref", "context.page.referrer")
SESSION_KEY = "$session_id"  # PostHog's session id, when the event has no `sessionId`
BOT_KEY = "$bot"
# Events that are not an interaction: a visit whose only other events are these still
# bounces (PostHog's page-leave and bookkeeping calls, identify/alias/group calls).
NON_INTERACTION_TYPES: tuple[str, ...] = (
    "$pageleave", "$identify", "$create_alias", "$groupidentify", "$set", "$feature_flag_called",
    "$opt_in", "$web_vitals", "$exception", "$snapshot", "$dead_click", "identify", "alias",
    "group", "screen")
DIMENSION_PROPS: dict[str, str] = {
    "countries": "$geoip_country_code", "browsers": "$browser", "os": "$os",
    "devices": "$device_type"}
MAX_PATH = 500


@lru_cache(maxsize=65_536)
def page_path(path: str | None, url: str | None) -> str | None:
    """The page's path: a path alias as sent (its query string and fragment cut), else the
    URL's path; None when neither gives one."""
    if isinstance(path, str) and path.strip():
        text = path.strip()
        if "://" in text:  # a full URL sent as the path
            return parse_url(text).path
        for cut in ("?", "#"):
            text = text.split(cut, 1)[0]
        return (text or "/")[:MAX_PATH]
    parsed = parse_url(url)
    return parsed.path[:MAX_PATH] if parsed.path else None


def page_host(host: str | None, url: str | None) -> str | None:
    """The page's own host: the host alias, else the URL's host."""
    return clean_host(host) if host else parse_url(url).host


def field_keys() -> dict[str, tuple[str, ...]]:
    """Every page field's aliases, by field name."""
    return {"url": URL_KEYS, "path": PATH_KEYS, "host": HOST_KEYS, "title": TITLE_KEYS,
            "referrer": REFERRER_KEYS}


def batch_paths(props: Mapping[str, tuple[list[int], list[Any]]]) -> list[str]:
    """The page of each row of an ingested batch that names one (`EventBatch.props`): `page`
    as sent, else the other path aliases or the URL's path, so the live view's top pages
    count every SDK's pageviews."""
    keys = ("page", *(k for k in PATH_KEYS if k != "page"), *URL_KEYS)
    present = [key for key in keys if "s:" + key in props]
    if present == ["page"]:  # (the usual batch: each row's page as sent, in row order)
        return list(props["s:page"][1])
    found: dict[int, str] = {}
    for i, key in enumerate(keys):
        column = props.get("s:" + key)
        if column is None:
            continue
        for row, value in zip(*column, strict=True):
            if row in found:
                continue
            path = value if i == 0 else (page_path(value, None) if key in PATH_KEYS
                                         else page_path(None, value))
            if path is not None:
                found[row] = path
    return list(found.values())
