"""Country (and, with a MaxMind database, region and city) from an IP address, offline.

Out of the box the lookup is `geoip2fast`, which ships its own country data (IPv4 and
IPv6, ~10 us a lookup). An operator who wants regions and cities configures a MaxMind-format
file (GeoLite2-City.mmdb, DB-IP's, IPinfo's) with the setting `geoip_database`; it is read
with `maxminddb`. Answers are cached per address string (visitors send many events each),
so a repeated address costs one dict lookup.

Derived names follow PostHog's: `$geoip_country_code` (ISO 3166-1 alpha-2),
`$geoip_country_name`, `$geoip_subdivision_1_name`, `$geoip_city_name`. Private, loopback
and reserved addresses and anything that is not an IP address give nothing.

Thread rule: as `user_agents.UserAgents` (a plain dict cache; the readers are read-only).
"""

from __future__ import annotations

import ipaddress
import logging
from bisect import bisect_right
from collections.abc import Callable
from functools import cache
from socket import AF_INET, inet_pton
from typing import Any

Derived = dict[str, Any]
CACHE_SIZE = 50_000
log = logging.getLogger("rta.geoip")


class GeoIp:
    """`derive(ip)` -> the derived geo properties of one address (cached)."""

    def __init__(self, database: str | None = None, cache_size: int = CACHE_SIZE) -> None:
        self.database = database or None
        self.cache_size = cache_size
        self._cache: dict[str, Derived] = {}
        self._lookup: Callable[[str], Derived] | None = None

    def derive(self, ip: Any) -> Derived:
        """The derived properties (shared: copy before changing); {} when none are known."""
        if not isinstance(ip, str):
            return {}
        hit = self._cache.get(ip)
        if hit is not None:
            return hit
        result = self._compute(ip)
        if len(self._cache) >= self.cache_size:
            self._cache.clear()
        self._cache[ip] = result
        return result

    def _compute(self, text: str) -> Derived:
        if ipv4_int(text) is None:  # (a plain IPv4 address goes straight to the lookup,
            address = parse_ip(text)  # whose data knows the private and reserved ranges)
            if address is None or not address.is_global:
                return {}
            text = str(address)
        if self._lookup is None:
            self._lookup = self._open()
        try:
            return self._lookup(text)
        except Exception:  # (a damaged database or a reader bug must never reject an event)
            return {}

    def _open(self) -> Callable[[str], Derived]:
        try:
            return _mmdb_lookup(self.database) if self.database else _geoip2fast_lookup()
        except Exception as exc:  # (an unreadable file: say so once, derive nothing)
            log.error("geoip: cannot open %s (%s); countries are not derived",
                      self.database or "geoip2fast's data", exc)
            return lambda ip: {}


def parse_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """An address from text ('[::1]' and IPv4-mapped IPv6 included), or None."""
    value = text.strip().strip("[]")
    if not value or len(value) > 64:
        return None
    try:
        address = ipaddress.ip_address(value.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


@cache
def _geoip2fast_lookup() -> Callable[[str], Derived]:
    """One per process: the data is read-only, and loading it takes ~0.4 s."""
    from geoip2fast import GeoIP2Fast  # (deferred: loading its data takes ~0.1 s)

    reader = GeoIP2Fast(geoip2fast_data_file="geoip2fast-ipv6.dat.gz", verbose=False)

    def lookup(ip: str) -> Derived:
        found = reader.lookup(ip)
        code = getattr(found, "country_code", "") or ""
        if len(code) != 2 or not code.isalpha() or getattr(found, "is_private", False):
            return {}
        out: Derived = {"$geoip_country_code": code.upper()}
        name = getattr(found, "country_name", "") or ""
        if name and not name.startswith("<"):
            out["$geoip_country_name"] = name
        return out

    table = _Ipv4Table.of_geoip2fast()
    return lookup if table is None else table.with_fallback(lookup)


class _Ipv4Table:
    """geoip2fast's IPv4 networks as flat lists, for a lookup of ~1 us instead of ~8 us.

    geoip2fast keeps its networks in module-level chunked lists (first address, prefix
    length, country index) and answers through objects with timing strings; a first sight
    of an address is the cost that matters at ingest, so the lists are flattened once and
    searched with `bisect` between the bounds of the address's /16 (`first`: the index of
    the first network at or after each /16, so a search touches ~4 entries of ~500k, not
    ~20 scattered ones: 2 us -> 0.5 us when memory is cold). Built only when those lists
    look as expected (else None, and geoip2fast's own lookup is used); IPv6 and unusual
    spellings always take that path.
    """

    def __init__(self, starts: list[int], sizes: list[int], answers: list[Derived]) -> None:
        import numpy as np

        self.starts, self.sizes, self.answers = starts, sizes, answers
        self.first: list[int] = np.searchsorted(
            np.asarray(starts, dtype=np.int64), np.arange(65537, dtype=np.int64) << 16,
            side="left").tolist()

    @classmethod
    def of_geoip2fast(cls) -> _Ipv4Table | None:
        try:
            import geoip2fast.geoip2fast as data

            counts = data.numIPsv4  # addresses in a network, by prefix length
            starts: list[int] = []
            sizes: list[int] = []
            ids: list[int] = []
            for first, lengths, countries in zip(data.mainListFirstIP,
                                                 data.mainListNetlength,
                                                 data.mainListIDCountryCodes, strict=True):
                for start, length, country in zip(first, lengths, countries, strict=True):
                    if start >= 1 << 32:
                        break
                    starts.append(start)
                    sizes.append(counts[length])
                    ids.append(country)
            answers: list[Derived] = []
            for index, entry in enumerate(data.mainListNamesCountry):
                code, _, name = entry.partition(":")
                private = index < 16  # geoip2fast's private, reserved and unknown networks
                answers.append({} if private or len(code) != 2 or not code.isalpha() else
                               {"$geoip_country_code": code.upper(),
                                "$geoip_country_name": name})
            if not starts or starts != sorted(starts):
                return None
            table = cls(starts, sizes, [answers[i] for i in ids])
        except Exception:  # (another geoip2fast layout: its own lookup will do)
            return None
        return table

    def with_fallback(self, fallback: Callable[[str], Derived]) -> Callable[[str], Derived]:
        starts, sizes, answers, first = self.starts, self.sizes, self.answers, self.first

        def lookup(ip: str) -> Derived:
            value = ipv4_int(ip)
            if value is None:
                return fallback(ip)
            prefix = value >> 16
            i = bisect_right(starts, value, first[prefix], first[prefix + 1]) - 1
            if i < 0 or value >= starts[i] + sizes[i]:
                return {}
            return answers[i]
        return lookup


def ipv4_int(text: str) -> int | None:
    """A dotted-quad IPv4 address as an int (strictly: four decimal parts, no leading
    zeros), else None. (`inet_pton` is that strict, and ~4x faster than splitting.)"""
    try:
        return int.from_bytes(inet_pton(AF_INET, text), "big")
    except (OSError, ValueError):  # (not an address; NUL or a lone surrogate in the text)
        return None


def _mmdb_lookup(path: str) -> Callable[[str], Derived]:
    import maxminddb

    reader = maxminddb.open_database(path)

    def lookup(ip: str) -> Derived:
        record = reader.get(ip)
        return mmdb_record(record) if isinstance(record, dict) else {}
    return lookup


def mmdb_record(record: dict[str, Any]) -> Derived:
    """The derived properties from a GeoIP2/GeoLite2-shaped record (City or Country)."""
    out: Derived = {}
    country = record.get("country") or record.get("registered_country") or {}
    code = country.get("iso_code") if isinstance(country, dict) else None
    if isinstance(code, str) and len(code) == 2:
        out["$geoip_country_code"] = code.upper()
        name = _english(country)
        if name:
            out["$geoip_country_name"] = name
    subdivisions = record.get("subdivisions")
    if isinstance(subdivisions, list) and subdivisions and isinstance(subdivisions[0], dict):
        name = _english(subdivisions[0])
        if name:
            out["$geoip_subdivision_1_name"] = name
    city = record.get("city")
    if isinstance(city, dict):
        name = _english(city)
        if name:
            out["$geoip_city_name"] = name
    return out


def _english(entry: dict[str, Any]) -> str | None:
    names = entry.get("names")
    if isinstance(names, dict):
        name = names.get("en")
        if isinstance(name, str) and name:
            return name
    return None
