"""Ingest-time enrichment: real User-Agent strings, known IP addresses, the rules of
`Enricher.apply` (what is used, what is never overwritten, what is never stored) and the
daily visitor salt."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rta.core.enrich import Client, Enricher, is_browser_agent
from rta.core.geoip import GeoIp, mmdb_record
from rta.core.user_agents import UserAgents
from rta.core.visitor_salt import DAY_MS, DailySalt

CHROME_WIN = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
              "Chrome/124.0.0.0 Safari/537.36")
IPHONE = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
          "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1")

# (User-Agent, browser, browser version, OS, device type, bot)
USER_AGENTS = [
    (CHROME_WIN, "Chrome", 124, "Windows", "Desktop", False),
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)"
     " Version/17.4.1 Safari/605.1.15", "Safari", 17.4, "Mac OS X", "Desktop", False),
    ("Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
     "Firefox", 125, "Linux", "Desktop", False),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/124.0.0.0 Safari/537.36 Edg/124.0.2478.51", "Edge", 124, "Windows", "Desktop",
     False),
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/124.0.0.0 Safari/537.36 OPR/109.0.0.0", "Opera", 109, "Mac OS X", "Desktop",
     False),
    ("Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/124.0.0.0 Safari/537.36", "Chrome", 124, "Chrome OS", "Desktop", False),
    ("Mozilla/5.0 (Windows NT 6.1; WOW64; Trident/7.0; rv:11.0) like Gecko",
     "IE", 11, "Windows", "Desktop", False),
    (IPHONE, "Mobile Safari", 17.4, "iOS", "Mobile", False),
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, "
     "like Gecko) CriOS/124.0.6367.88 Mobile/15E148 Safari/604.1", "Chrome Mobile iOS", 124,
     "iOS", "Mobile", False),
    ("Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/124.0.0.0 Mobile Safari/537.36", "Chrome Mobile", 124, "Android", "Mobile", False),
    ("Mozilla/5.0 (Linux; Android 13; SAMSUNG SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko)"
     " SamsungBrowser/24.0 Chrome/117.0.0.0 Mobile Safari/537.36", "Samsung Internet", 24,
     "Android", "Mobile", False),
    ("Mozilla/5.0 (Android 14; Mobile; rv:125.0) Gecko/125.0 Firefox/125.0",
     "Firefox Mobile", 125, "Android", "Mobile", False),
    ("Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
     "Version/16.6 Mobile/15E148 Safari/604.1", "Mobile Safari", 16.6, "iOS", "Tablet", False),
    ("Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/124.0.0.0 Safari/537.36", "Chrome", 124, "Android", "Tablet", False),
    ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
     "Googlebot", 2.1, None, "Desktop", True),
    ("Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, "
     "like Gecko) Chrome/124.0.6367.201 Mobile Safari/537.36 (compatible; Googlebot/2.1; "
     "+http://www.google.com/bot.html)", "Googlebot", 2.1, "Android", "Mobile", True),
    ("Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
     "bingbot", 2, None, "Desktop", True),
    ("Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.2; "
     "+https://openai.com/gptbot)", "GPTBot", 1.2, None, "Desktop", True),
    ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
     "HeadlessChrome/124.0.0.0 Safari/537.36", "HeadlessChrome", 124, "Linux", "Desktop",
     True),
    ("facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
     "FacebookBot", 1.1, None, "Desktop", True),
    ("curl/8.5.0", "curl", 8.5, None, "Desktop", True),
    ("python-requests/2.31.0", "Python Requests", 2.31, None, "Desktop", True),
]


@pytest.mark.parametrize(("ua", "browser", "version", "os_name", "device", "bot"), USER_AGENTS)
def test_real_user_agents(ua: str, browser: str, version: float, os_name: str | None,
                          device: str, bot: bool) -> None:
    got = UserAgents().derive(ua)
    assert got["$browser"] == browser
    assert got["$browser_version"] == version
    assert got.get("$os") == os_name
    assert got["$device_type"] == device
    assert got.get("$bot", False) is bot
    assert "$bot" not in got or got["$bot"] is True  # present only for bots


def test_versions_are_posthog_js_shaped() -> None:
    got = UserAgents().derive(IPHONE)
    assert got["$os_version"] == "17.4" and isinstance(got["$browser_version"], float)
    assert isinstance(UserAgents().derive(CHROME_WIN)["$browser_version"], int)


@pytest.mark.parametrize("ua", ["", "   ", "garbage ☃", "x" * 5000, None, 42, ["Mozilla"],
                                "\x00\x01"])
def test_unusable_user_agents_derive_nothing(ua: Any) -> None:
    assert UserAgents().derive(ua) == {}


def test_bare_mozilla_is_a_bot() -> None:
    assert UserAgents().derive("Mozilla/5.0") == {"$bot": True}


def test_repeated_strings_are_answered_from_the_cache() -> None:
    agents = UserAgents(cache_size=2)
    first = agents.derive(CHROME_WIN)
    assert agents.derive(CHROME_WIN) is first
    agents.derive(IPHONE)
    agents.derive("curl/8.0")  # over the bound: the cache starts again, answers stay right
    assert agents.derive(CHROME_WIN) == first


# (address, ISO country code, country name)
ADDRESSES = [
    ("8.8.8.8", "US", "United States"),
    ("81.2.69.160", "GB", "United Kingdom"),
    ("1.1.1.1", "AU", "Australia"),
    ("200.160.0.8", "BR", "Brazil"),
    ("202.12.27.33", "JP", "Japan"),
    ("77.88.55.88", "RU", "Russia"),
    ("196.216.2.1", "ZA", "South Africa"),
    ("2001:4860:4860::8888", "US", "United States"),
    ("2a00:1450:4001:80b::200e", "DE", "Germany"),
    ("::ffff:8.8.8.8", "US", "United States"),
    ("[2001:4860:4860::8888]", "US", "United States"),
]


@pytest.fixture(scope="module")
def geo() -> GeoIp:
    return GeoIp()


@pytest.mark.parametrize(("ip", "code", "name"), ADDRESSES)
def test_known_addresses_to_countries(geo: GeoIp, ip: str, code: str, name: str) -> None:
    assert geo.derive(ip) == {"$geoip_country_code": code, "$geoip_country_name": name}


@pytest.mark.parametrize("ip", ["127.0.0.1", "10.0.0.1", "192.168.1.1", "::1", "100.64.0.1",
                                "169.254.1.1", "2001:db8::1", "not-an-ip", "8.8.8.8.8", "",
                                "1.2.3.4/24", None, 8, "x" * 200])
def test_private_and_bad_addresses_derive_nothing(geo: GeoIp, ip: Any) -> None:
    assert geo.derive(ip) == {}


def test_mmdb_records_map_to_the_posthog_names() -> None:
    record = {"country": {"iso_code": "de", "names": {"en": "Germany", "de": "Deutschland"}},
              "subdivisions": [{"names": {"en": "Berlin"}}], "city": {"names": {"en": "Berlin"}}}
    assert mmdb_record(record) == {
        "$geoip_country_code": "DE", "$geoip_country_name": "Germany",
        "$geoip_subdivision_1_name": "Berlin", "$geoip_city_name": "Berlin"}
    assert mmdb_record({"registered_country": {"iso_code": "FR"}}) == {
        "$geoip_country_code": "FR"}
    assert mmdb_record({"city": "odd", "subdivisions": "odd", "country": 5}) == {}


@pytest.fixture(scope="module")
def enricher() -> Enricher:
    return SHARED


SHARED = Enricher()  # (for hypothesis, which cannot take a module fixture)
BROWSER = Client(CHROME_WIN, "81.2.69.160", browser=True)


def props_of(enricher: Enricher, props: Any, client: Client = BROWSER) -> Any:
    events = [{"type": "x", "properties": props}]
    enricher.apply(events, client)
    return events[0].get("properties")


def test_a_browser_request_is_described_by_its_header_and_address(enricher: Enricher) -> None:
    got = props_of(enricher, {"a": 1})
    assert got == {"a": 1, "$browser": "Chrome", "$browser_version": 124, "$os": "Windows",
                   "$os_version": "10", "$device_type": "Desktop",
                   "$geoip_country_code": "GB", "$geoip_country_name": "United Kingdom"}


def test_what_the_client_sent_is_never_overwritten(enricher: Enricher) -> None:
    sent = {"$browser": "Firefox", "$device_type": "Mobile", "$geoip_country_code": "FR"}
    got = props_of(enricher, dict(sent))
    assert {k: got[k] for k in sent} == sent
    assert got["$os"] == "Windows" and got["$geoip_country_name"] == "United Kingdom"


def test_the_event_s_own_user_agent_and_ip_come_first_and_the_ip_is_dropped(
        enricher: Enricher) -> None:
    got = props_of(enricher, {"$raw_user_agent": IPHONE, "$ip": "8.8.8.8"})
    assert got["$device_type"] == "Mobile" and got["$geoip_country_code"] == "US"
    assert "$ip" not in got and got["$raw_user_agent"] == IPHONE
    got = props_of(enricher, {"$user_agent": IPHONE})
    assert got["$os"] == "iOS"


def test_segment_context_user_agent_and_ip(enricher: Enricher) -> None:
    context = {"userAgent": IPHONE, "ip": "2001:4860:4860::8888", "locale": "en-US"}
    got = props_of(enricher, {"context": context}, Client("analytics-node/1.0", "5.6.7.8"))
    assert got["context"] == {"userAgent": IPHONE, "locale": "en-US"}
    assert "ip" in context  # the caller's object is not changed
    assert got["$browser"] == "Mobile Safari" and got["$geoip_country_code"] == "US"


def test_a_server_side_sdk_s_own_header_and_address_are_not_the_user_s(
        enricher: Enricher) -> None:
    server = Client("posthog-python/3.5.0", "8.8.8.8", browser=False)
    assert props_of(enricher, {"a": 1}, server) == {"a": 1}
    assert props_of(enricher, None, server) is None


def test_geoip_disable_and_bad_input_never_fail(enricher: Enricher) -> None:
    got = props_of(enricher, {"$geoip_disable": True, "$ip": "8.8.8.8"})
    assert "$geoip_country_code" not in got and "$ip" not in got
    got = props_of(enricher, {"$ip": "not an ip", "$raw_user_agent": "☃"},
                   Client("nonsense", "also nonsense", browser=True))
    assert got == {"$raw_user_agent": "☃"}  # stored as sent, nothing derived
    events: list[Any] = [{"type": "x", "properties": "not an object"}, "not an event",
                         {"type": "x", "properties": {"context": "text"}}]
    enricher.apply(events, BROWSER)
    assert events[0]["properties"] == "not an object" and events[1] == "not an event"
    assert events[2]["properties"]["context"] == "text"


@settings(max_examples=40, deadline=None)
@given(props=st.dictionaries(st.sampled_from(["$ip", "$raw_user_agent", "$user_agent",
                                              "context", "$browser", "a"]),
                             st.one_of(st.none(), st.booleans(), st.integers(), st.text(),
                                       st.dictionaries(st.sampled_from(["ip", "userAgent"]),
                                                       st.text(max_size=30)))),
       ua=st.one_of(st.none(), st.text(max_size=60)), ip=st.one_of(st.none(), st.text()))
def test_any_input_enriches_without_error_and_keeps_what_was_sent(
        props: dict[str, Any], ua: str | None, ip: str | None) -> None:
    got = props_of(SHARED, dict(props), Client(ua, ip, browser=True))
    assert "$ip" not in got
    for key, value in props.items():
        if key not in ("$ip", "context"):
            assert got[key] == value
    if isinstance(got.get("context"), dict):
        assert "ip" not in got["context"]


def test_is_browser_agent() -> None:
    assert is_browser_agent(CHROME_WIN) and is_browser_agent("Opera/9.80 (X11)")
    assert not is_browser_agent("posthog-python/3.5.0") and not is_browser_agent(None)


def test_visitor_ids_are_stable_for_a_day_and_unlinkable_the_next(tmp_path: Any) -> None:
    day = 20_000 * DAY_MS
    salt = DailySalt(str(tmp_path))
    a = salt.visitor_id("example.com", "8.8.8.8", CHROME_WIN, day + 1)
    assert a == salt.visitor_id("example.com", "8.8.8.8", CHROME_WIN, day + DAY_MS - 1)
    assert len(a) == 16 and int(a, 16) >= 0
    assert a != salt.visitor_id("example.org", "8.8.8.8", CHROME_WIN, day + 1)
    assert a != salt.visitor_id("example.com", "8.8.4.4", CHROME_WIN, day + 1)
    assert a != salt.visitor_id("example.com", "8.8.8.8", IPHONE, day + 1)
    # a restart the same day keeps the salt (same ids); the file is private to the owner
    again = DailySalt(str(tmp_path))
    assert again.visitor_id("example.com", "8.8.8.8", CHROME_WIN, day + 5) == a
    path = tmp_path / "web-salt.json"
    assert os.stat(path).st_mode & 0o077 == 0
    # the next day: a new salt replaces the old one on disk
    tomorrow = salt.visitor_id("example.com", "8.8.8.8", CHROME_WIN, day + DAY_MS)
    assert tomorrow != a
    assert json.loads(path.read_text())["day"] == day // DAY_MS + 1
    # a damaged file gives a fresh salt, not an error; no data dir keeps it in memory
    path.write_text("{not json")
    assert len(DailySalt(str(tmp_path)).visitor_id("s", "", "", day + DAY_MS)) == 16
    mem = DailySalt(None)
    assert mem.visitor_id("s", "1", "2", day) == mem.visitor_id("s", "1", "2", day + 10)


def test_a_configured_mmdb_file_gives_region_and_city(tmp_path: Any) -> None:
    from mmdb_writer import MMDBWriter
    from netaddr import IPSet

    writer = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="GeoLite2-City")
    writer.insert_network(IPSet(["81.2.69.0/24"]), {
        "country": {"iso_code": "GB", "names": {"en": "United Kingdom"}},
        "subdivisions": [{"iso_code": "ENG", "names": {"en": "England"}}],
        "city": {"names": {"en": "London"}}})
    path = tmp_path / "city.mmdb"
    writer.to_db_file(str(path))
    geo = GeoIp(str(path))
    assert geo.derive("81.2.69.160") == {
        "$geoip_country_code": "GB", "$geoip_country_name": "United Kingdom",
        "$geoip_subdivision_1_name": "England", "$geoip_city_name": "London"}
    assert geo.derive("8.8.8.8") == {}  # not in this file
    assert GeoIp(str(tmp_path / "missing.mmdb")).derive("8.8.8.8") == {}


def test_the_flat_ipv4_table_answers_as_geoip2fast_does(geo: GeoIp) -> None:
    """The fast path (geoip2fast's networks flattened and bisected) against geoip2fast's
    own lookup, on random addresses over the whole IPv4 space and at network edges."""
    import random

    from geoip2fast import GeoIP2Fast

    from rta.core.geoip import _geoip2fast_lookup, _Ipv4Table

    reader = GeoIP2Fast(geoip2fast_data_file="geoip2fast-ipv6.dat.gz", verbose=False)
    table = _Ipv4Table.of_geoip2fast()
    assert table is not None
    rng = random.Random(19)
    values = [rng.randrange(1 << 32) for _ in range(3000)]
    for i in range(0, len(table.starts), max(1, len(table.starts) // 500)):
        start, size = table.starts[i], table.sizes[i]
        values += [start, start + size - 1, start + size, max(0, start - 1)]
    fast = _geoip2fast_lookup()
    for value in values:
        if value >= 1 << 32:
            continue
        ip = ".".join(str(value >> s & 255) for s in (24, 16, 8, 0))
        found = reader.lookup(ip)
        code = found.country_code
        want = {} if found.is_private or len(code) != 2 or not code.isalpha() else {
            "$geoip_country_code": code, "$geoip_country_name": found.country_name}
        assert fast(ip) == want, ip


@settings(max_examples=50, deadline=None)
@given(text=st.one_of(st.ip_addresses(v=4).map(str), st.text(max_size=20),
                      st.lists(st.text("0123456789+_ \u0661", max_size=4), min_size=4, max_size=4)
                      .map(".".join)))
def test_ipv4_parsing_is_as_strict_as_ipaddress(text: str) -> None:
    import ipaddress

    from rta.core.geoip import ipv4_int

    try:
        want: int | None = int(ipaddress.IPv4Address(text))
    except ValueError:
        want = None
    assert ipv4_int(text) == want
