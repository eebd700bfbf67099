"""Where a visit came from: referrer host, UTM parameters, click ids, source name, channel.

Pure functions over the strings an event carried (the landing pageview's URL, referrer and
host), so both backends label visits identically: each backend collects the distinct raw
strings and asks these functions once per distinct value (cached), never per event.

Rules (documented in docs/web.md, "Sources and channels"):
- The referrer counts only when it parses as an http(s) URL with a host that is not the
  page's own host, not one of `own_hosts` (the `web_own_hosts` setting), nor a subdomain of
  either; PostHog's `$direct` means no referrer. A leading `www.` is ignored.
- UTM parameters and click ids come from the landing URL's query string (values trimmed,
  percent-decoded, at most 200 characters; an empty value counts as absent).
- The source is the known name of the referrer host (`KNOWN_SOURCES`: google.* -> Google),
  else the referrer host, else `utm_source` (or `ref`/`source`), else "Direct / None".
- The channel follows `channel()`: a rule table in the spirit of GA4's default channel
  grouping (the one Plausible documents), first match wins.

Malformed input never raises: what cannot be parsed gives empty (None) derived fields.

Thread rule: pure functions; any thread.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import parse_qsl, urlsplit

DIRECT = "Direct / None"
UTM_KEYS = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content")
CLICK_IDS = ("gclid", "gbraid", "wbraid", "dclid", "msclkid", "fbclid", "ttclid", "twclid",
             "li_fat_id", "epik", "rdt_cid", "sccid", "yclid")
PAID_SEARCH_CLICK_IDS = {"gclid", "gbraid", "wbraid", "dclid", "msclkid", "yclid"}
PAID_SOCIAL_CLICK_IDS = {"fbclid", "ttclid", "twclid", "li_fat_id", "epik", "rdt_cid",
                         "sccid"}
MAX_VALUE = 200

SEARCH, SOCIAL, VIDEO, EMAIL, SHOPPING, AI = (
    "search", "social", "video", "email", "shopping", "ai")

# Referrer host (without www.) -> (source name, category). A key ending in "." matches any
# suffix (google. -> google.com, google.co.uk); other keys match the host or a subdomain.
KNOWN_SOURCES: dict[str, tuple[str, str]] = {
    "google.": ("Google", SEARCH), "bing.com": ("Bing", SEARCH),
    "duckduckgo.com": ("DuckDuckGo", SEARCH), "search.yahoo.com": ("Yahoo!", SEARCH),
    "yahoo.": ("Yahoo!", SEARCH), "yandex.": ("Yandex", SEARCH), "baidu.com": ("Baidu", SEARCH),
    "ecosia.org": ("Ecosia", SEARCH), "search.brave.com": ("Brave", SEARCH),
    "qwant.com": ("Qwant", SEARCH), "startpage.com": ("Startpage", SEARCH),
    "naver.com": ("Naver", SEARCH), "sogou.com": ("Sogou", SEARCH),
    "facebook.com": ("Facebook", SOCIAL), "fb.com": ("Facebook", SOCIAL),
    "m.facebook.com": ("Facebook", SOCIAL), "l.facebook.com": ("Facebook", SOCIAL),
    "instagram.com": ("Instagram", SOCIAL), "t.co": ("X (Twitter)", SOCIAL),
    "twitter.com": ("X (Twitter)", SOCIAL), "x.com": ("X (Twitter)", SOCIAL),
    "linkedin.com": ("LinkedIn", SOCIAL), "lnkd.in": ("LinkedIn", SOCIAL),
    "reddit.com": ("Reddit", SOCIAL), "news.ycombinator.com": ("Hacker News", SOCIAL),
    "pinterest.com": ("Pinterest", SOCIAL), "tiktok.com": ("TikTok", SOCIAL),
    "threads.net": ("Threads", SOCIAL), "bsky.app": ("Bluesky", SOCIAL),
    "mastodon.social": ("Mastodon", SOCIAL), "github.com": ("GitHub", SOCIAL),
    "producthunt.com": ("Product Hunt", SOCIAL), "discord.com": ("Discord", SOCIAL),
    "slack.com": ("Slack", SOCIAL), "t.me": ("Telegram", SOCIAL), "vk.com": ("VKontakte", SOCIAL),
    "youtube.com": ("YouTube", VIDEO), "youtu.be": ("YouTube", VIDEO),
    "vimeo.com": ("Vimeo", VIDEO), "twitch.tv": ("Twitch", VIDEO),
    "mail.google.com": ("Gmail", EMAIL), "outlook.live.com": ("Outlook.com", EMAIL),
    "mail.yahoo.com": ("Yahoo! Mail", EMAIL), "mail.proton.me": ("Proton Mail", EMAIL),
    "amazon.": ("Amazon", SHOPPING), "ebay.": ("eBay", SHOPPING), "etsy.com": ("Etsy", SHOPPING),
    "chatgpt.com": ("ChatGPT", AI), "chat.openai.com": ("ChatGPT", AI),
    "claude.ai": ("Claude", AI), "perplexity.ai": ("Perplexity", AI),
    "gemini.google.com": ("Google Gemini", AI), "copilot.microsoft.com": ("Copilot", AI),
}
# utm_source values (lower case) naming a known source, for visits without a referrer
SOURCE_ALIASES = {name.lower(): (name, cat) for name, cat in KNOWN_SOURCES.values()}
SOURCE_ALIASES.update({"fb": ("Facebook", SOCIAL), "ig": ("Instagram", SOCIAL),
                       "twitter": ("X (Twitter)", SOCIAL), "x": ("X (Twitter)", SOCIAL),
                       "yt": ("YouTube", VIDEO), "newsletter": ("Newsletter", EMAIL)})

_PAID_MEDIUM = re.compile(r"^(.*cp.*|ppc|retargeting|paid.*)$")
_SHOP_CAMPAIGN = re.compile(r"^(.*(([^a-df-z]|^)shop|shopping).*)$")
_EMAIL_TAGS = ("email", "e-mail", "e_mail", "e mail", "newsletter")
_SOCIAL_MEDIA = {"social", "social-network", "social-media", "sm", "social network",
                 "social media"}


@dataclass(frozen=True)
class Source:
    """What a visit's landing pageview says about where it came from (None: not known)."""

    source: str
    channel: str
    referrer_host: str | None
    utm_source: str | None = None
    utm_medium: str | None = None
    utm_campaign: str | None = None
    utm_term: str | None = None
    utm_content: str | None = None
    click_id: str | None = None


@dataclass(frozen=True)
class Url:
    """A URL's parts (None where absent or unparseable)."""

    host: str | None
    path: str | None
    params: tuple[tuple[str, str], ...] = ()


@lru_cache(maxsize=65_536)
def parse_url(raw: str | None) -> Url:
    """Host (lower case, no port, no `www.`), path and query parameters of an absolute URL;
    a relative one ("/pricing?x=1") gives its path and parameters without a host."""
    if not raw or not isinstance(raw, str):
        return Url(None, None)
    text = raw.strip()
    try:
        parts = urlsplit(text)
        host = parts.hostname
        if parts.scheme and parts.scheme not in ("http", "https"):
            return Url(None, None)
        if not parts.scheme and not text.startswith("/"):
            return Url(None, None)
        params = tuple(parse_qsl(parts.query, keep_blank_values=False))
    except ValueError:
        return Url(None, None)
    path = parts.path or ("/" if host else None)
    return Url(clean_host(host), path, params)


def clean_host(host: str | None) -> str | None:
    """Lower case, without a trailing dot or a leading `www.`; None when empty or odd."""
    if not host:
        return None
    host = host.strip().lower().rstrip(".")
    if host.startswith("www."):
        host = host[4:]
    if not host or any(c.isspace() for c in host) or len(host) > 253:
        return None
    return host


def _param(params: tuple[tuple[str, str], ...], key: str) -> str | None:
    for k, v in params:
        if k == key:
            value = v.strip()[:MAX_VALUE]
            return value or None
    return None


def _same_site(host: str, own: str) -> bool:
    return host == own or host.endswith("." + own)


def referrer_host(referrer: str | None, page_host: str | None,
                  own_hosts: tuple[str, ...] = ()) -> str | None:
    """The referrer's host, or None when there is none, it is unparseable or it is one of
    the site's own hosts (the page's host, `own_hosts`, and their subdomains)."""
    if not referrer or referrer == "$direct":
        return None
    url = parse_url(referrer)
    if url.host is None or "://" not in referrer:
        return None
    for own in (page_host, *own_hosts):
        own_clean = clean_host(own)
        if own_clean and _same_site(url.host, own_clean):
            return None
    return url.host


def known_source(host: str) -> tuple[str, str] | None:
    """(name, category) of a known referrer host (or a subdomain of one)."""
    found = KNOWN_SOURCES.get(host)
    if found:
        return found
    labels = host.split(".")
    for i in range(1, len(labels)):
        suffix = ".".join(labels[i:])
        found = KNOWN_SOURCES.get(suffix)
        if found:
            return found
    for i in range(len(labels) - 1):  # google.co.uk, yahoo.fr: "google." keys
        prefix = ".".join(labels[:i + 1]) + "."
        found = KNOWN_SOURCES.get(prefix)
        if found and i + 1 >= len(labels) - 2:
            return found
    return None


@lru_cache(maxsize=65_536)
def visit_source(referrer: str | None, landing_url: str | None, page_host: str | None,
                 own_hosts: tuple[str, ...] = ()) -> Source:
    """The source, channel, UTM parameters and click id of a visit's landing pageview."""
    url = parse_url(landing_url)
    host = referrer_host(referrer, page_host or url.host, own_hosts)
    utm = [_param(url.params, k) for k in UTM_KEYS]
    click = next((k for k in CLICK_IDS if _param(url.params, k)), None)
    category: str | None = None
    if host is not None:
        known = known_source(host)
        name, category = known if known else (host, None)
    else:
        tag = utm[0] or _param(url.params, "ref") or _param(url.params, "source")
        if tag:
            alias = SOURCE_ALIASES.get(tag.lower())
            name, category = alias if alias else (tag, None)
        else:
            name = DIRECT
    chan = channel(name if name != DIRECT else "", category, utm[1], utm[2], utm[0], click)
    return Source(name, chan, host, utm_source=utm[0], utm_medium=utm[1], utm_campaign=utm[2],
                  utm_term=utm[3], utm_content=utm[4], click_id=click)


def channel(source: str, category: str | None, utm_medium: str | None,
            utm_campaign: str | None, utm_source: str | None, click_id: str | None) -> str:
    """The visit's channel: the first rule of this table that matches (lower-cased input).

    | channel        | rule                                                               |
    |----------------|--------------------------------------------------------------------|
    | Cross-network  | campaign contains "cross-network"                                  |
    | Paid Search    | search source with a paid medium, or a search click id (gclid ...) |
    | Paid Social    | social source with a paid medium, or a social click id (fbclid ...)|
    | Paid Video     | video source with a paid medium                                    |
    | Paid Shopping  | shopping source or campaign with a paid medium                     |
    | Display        | medium display, banner, expandable, interstitial, cpm              |
    | Paid Other     | paid medium (cp*, ppc, retargeting, paid*)                         |
    | Organic Shopping | shopping source or a campaign naming shop/shopping               |
    | Organic Social | social source, or medium social, sm, social-media ...              |
    | Organic Video  | video source, or medium containing "video"                         |
    | AI Assistants  | ChatGPT, Claude, Perplexity, Gemini, Copilot                       |
    | Organic Search | search source                                                      |
    | Email          | email source, or source/medium containing email, newsletter ...    |
    | Affiliates     | medium affiliate                                                   |
    | Audio          | medium audio                                                       |
    | SMS            | source or medium sms                                               |
    | Mobile Push Notifications | medium ending in push, or containing mobile, notification |
    | Referral       | medium referral, app or link, or any other source                  |
    | Direct         | anything else (no referrer, no UTM source)                         |
    """
    medium = (utm_medium or "").lower()
    campaign = (utm_campaign or "").lower()
    tag = (utm_source or "").lower()
    paid = bool(_PAID_MEDIUM.match(medium))
    if "cross-network" in campaign:
        return "Cross-network"
    if category == SEARCH and (paid or click_id in PAID_SEARCH_CLICK_IDS):
        return "Paid Search"
    if click_id in PAID_SEARCH_CLICK_IDS and category is None and not source:
        return "Paid Search"
    if category == SOCIAL and (paid or click_id in PAID_SOCIAL_CLICK_IDS):
        return "Paid Social"
    if click_id in PAID_SOCIAL_CLICK_IDS and category is None and not source:
        return "Paid Social"
    if category == VIDEO and paid:
        return "Paid Video"
    shop_campaign = bool(_SHOP_CAMPAIGN.match(campaign))
    if (category == SHOPPING or shop_campaign) and paid:
        return "Paid Shopping"
    if medium in ("display", "banner", "expandable", "interstitial", "cpm"):
        return "Display"
    if paid:
        return "Paid Other"
    if category == SHOPPING or shop_campaign:
        return "Organic Shopping"
    if category == SOCIAL or medium in _SOCIAL_MEDIA:
        return "Organic Social"
    if category == VIDEO or "video" in medium:
        return "Organic Video"
    if category == AI:
        return "AI Assistants"
    if category == SEARCH:
        return "Organic Search"
    if category == EMAIL or any(t in tag or t in medium for t in _EMAIL_TAGS):
        return "Email"
    if medium == "affiliate":
        return "Affiliates"
    if medium == "audio":
        return "Audio"
    if tag == "sms" or medium == "sms":
        return "SMS"
    if medium.endswith("push") or "mobile" in medium or "notification" in medium:
        return "Mobile Push Notifications"
    if medium in ("referral", "app", "link") or source:
        return "Referral"
    return "Direct"
