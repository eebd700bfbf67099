"""Labels of the web dimensions, from the raw strings of a pageview.

Each backend gathers, per pageview it needs, the raw fields a dimension reads
(`FIELDS[dimension]`: the first string present among each field's aliases, see
`pageviews`), collects their distinct combinations and labels each combination once with
`label()`. Both engines therefore label alike, whatever their own URL functions would do.

Thread rule: pure functions; any thread.
"""

from __future__ import annotations

from collections.abc import Sequence

from rta.core.queries import pageviews as pv
from rta.core.web_sources import visit_source

# raw pageview fields: name -> the property aliases giving it
RAW_FIELDS: dict[str, tuple[str, ...]] = {
    "url": pv.URL_KEYS, "path": pv.PATH_KEYS, "host": pv.HOST_KEYS,
    "referrer": pv.REFERRER_KEYS,
    **{dim: (prop,) for dim, prop in pv.DIMENSION_PROPS.items()}}
_SOURCE_FIELDS = ("referrer", "url", "host")
FIELDS: dict[str, tuple[str, ...]] = {
    "pages": ("path", "url"), "entry-pages": ("path", "url"), "exit-pages": ("path", "url"),
    "sources": _SOURCE_FIELDS, "channels": _SOURCE_FIELDS, "utm-sources": _SOURCE_FIELDS,
    "utm-mediums": _SOURCE_FIELDS, "utm-campaigns": _SOURCE_FIELDS,
    **{dim: (dim,) for dim in pv.DIMENSION_PROPS}}
_SOURCE_PART = {"sources": "source", "channels": "channel", "utm-sources": "utm_source",
                "utm-mediums": "utm_medium", "utm-campaigns": "utm_campaign"}
MAX_LABEL = 200


def label(dimension: str, raw: Sequence[str | None], own_hosts: tuple[str, ...]) -> str | None:
    """The dimension's value for one combination of raw fields (`FIELDS[dimension]` order);
    None when the pageview does not say (a malformed URL, no such property)."""
    if dimension in ("pages", "entry-pages", "exit-pages"):
        return pv.page_path(raw[0], raw[1])
    part = _SOURCE_PART.get(dimension)
    if part is not None:
        ref, url, host = raw
        src = visit_source(ref, url, pv.page_host(host, url), own_hosts)
        value: str | None = getattr(src, part)
        return value
    text = raw[0]
    if not isinstance(text, str):
        return None
    text = text.strip()[:MAX_LABEL]
    return text or None
