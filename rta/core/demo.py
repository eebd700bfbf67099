"""Deterministic, realistic demo events, generated vectorised with numpy.

One generator feeds `rta demo generate`, `rta serve --demo`, the tests and the benchmarks, so
every part of rta is exercised on data with real structure rather than uniform noise:

- users with Zipf-skewed activity; about half sign up inside the window (a `signup` in their
  first session), the rest are existing users; later sessions start with a `login` and thin out
  with time since signup, so cohort retention declines the way it does in real products;
- sessions of pageviews, each followed by clicks and api_requests (the clicks share the page);
- a funnel pageview -> click(category=products) -> form_submit(form=checkout) -> purchase
  (+ conversion with the revenue) with decreasing conversion at every step;
- an experiment `checkout_v2` (control | variant_a | variant_b) where variant_b buys more often;
- errors and api_request durations (log-normal per endpoint) with incident windows where
  latency and 5xx rates spike, plus rare outliers;
- a daily activity cycle peaking in the UTC afternoon.

Same arguments and seed -> the same table, byte for byte (ids included).

Thread rule: pure (seeded); any thread.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from rta.core.queries.timeparse import DAY, HOUR, MINUTE, now_ms

EVENT_TYPES = ("pageview", "click", "signup", "login", "purchase", "experiment_assigned",
               "conversion", "form_submit", "error", "api_request")
PV, CLICK, SIGNUP, LOGIN, PURCHASE, EXPERIMENT, CONVERSION, FORM, ERROR, API = range(10)

PAGES = ("/", "/products", "/pricing", "/blog", "/docs", "/products/widget",
         "/products/gadget", "/about", "/account", "/blog/launch", "/contact", "/careers")
REFERRERS = ("direct", "google", "twitter", "newsletter", "github", "bing", "linkedin")
ELEMENTS = ("button", "link", "nav", "cta", "image", "menu")
CATEGORIES = ("navigation", "content", "signup", "social", "footer")
PLANS = ("free", "pro", "team")
LOGIN_METHODS = ("password", "google", "github", "sso")
PRODUCTS = ("widget", "gadget", "gizmo", "starter_kit", "pro_plan")
PRICES = np.array([19.99, 49.0, 9.5, 99.0, 240.0])
CURRENCIES = ("USD", "EUR", "GBP")
VARIANTS = ("control", "variant_a", "variant_b")
PURCHASE_RATE = np.array([0.35, 0.38, 0.55, 0.35])  # by variant; last: not in the experiment
ERROR_MESSAGES = ("TypeError: Cannot read properties of undefined", "NetworkError: Failed to fetch",
                  "Request timed out", "Internal Server Error", "Not Found", "Script error.")
ERROR_CODES = np.array([0, 0, 504, 500, 404, 0])
ENDPOINTS = ("/api/products", "/api/cart", "/api/user", "/api/search", "/api/checkout",
             "/api/recommendations")
ENDPOINT_MEDIAN_MS = np.array([45.0, 30.0, 20.0, 80.0, 120.0, 150.0])
HTTP_METHODS = ("GET", "POST")
ENDPOINT_POST_SHARE = np.array([0.0, 0.5, 0.1, 0.0, 0.9, 0.0])
EXPERIMENT_NAME = "checkout_v2"

# Property columns of the generated table, in order, with their Arrow types.
PROPERTY_TYPES: dict[str, pa.DataType] = {
    "page": pa.string(), "referrer": pa.string(), "duration": pa.float64(),
    "element": pa.string(), "category": pa.string(), "plan": pa.string(),
    "source": pa.string(), "method": pa.string(), "amount": pa.float64(),
    "currency": pa.string(), "product": pa.string(), "quantity": pa.int64(),
    "experiment": pa.string(), "variant": pa.string(), "revenue": pa.float64(),
    "form": pa.string(), "message": pa.string(), "code": pa.int64(),
    "endpoint": pa.string(), "status": pa.int64(),
}
# Properties whose JSON form is an integer for some event types (duration of a pageview).
_INT_IN_JSON = {("pageview", "duration")}

# Slot layout of one session: events appear in slot order (a present/absent mask per slot).
MAX_PAGEVIEWS = 8
S_EXPERIMENT, S_SIGNUP, S_LOGIN = 0, 1, 2
S_PAGES = 3  # then per pageview j: pageview, click, second click, api_request
S_PRODUCTS = S_PAGES + 4 * MAX_PAGEVIEWS
S_FORM, S_PURCHASE, S_CONVERSION, S_ERROR = S_PRODUCTS + 1, S_PRODUCTS + 2, S_PRODUCTS + 3, \
    S_PRODUCTS + 4
N_SLOTS = S_ERROR + 1
SLOT_TYPE = np.array([EXPERIMENT, SIGNUP, LOGIN] + [PV, CLICK, CLICK, API] * MAX_PAGEVIEWS
                     + [CLICK, FORM, PURCHASE, CONVERSION, ERROR], dtype=np.int8)

_HOUR_WEIGHTS = 1.0 + 0.8 * np.cos((np.arange(24) - 15) / 24 * 2 * np.pi)
_HOUR_WEIGHTS /= _HOUR_WEIGHTS.sum()
_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


def generate_arrow(n: int, users: int = 10_000, days: float = 30, seed: int = 1,
                   end_ms: int | None = None) -> pa.Table:
    """`n` demo events over the `days` before `end_ms` (default now), sorted by timestamp.

    Columns: id (UUID text), type, userId, sessionId, timestamp (int64 ms) and one typed,
    nullable `properties.<key>` column per key of PROPERTY_TYPES.
    """
    if n < 0:
        raise ValueError("n must be >= 0")
    end = now_ms() if end_ms is None else int(end_ms)
    span = max(int(days * DAY), MINUTE)
    rng = np.random.default_rng(seed)
    if n == 0:
        return _empty_table()
    people = _Users(rng, max(1, users), end - span, end)
    sessions = max(8, math.ceil(n / 7) + 16)
    while True:
        gen = _Sessions(rng, people, sessions, end - span, end)
        if gen.total >= n:
            break
        sessions = int(sessions * 1.5) + 16
    return gen.build(rng, n)


def _empty_table() -> pa.Table:
    cols = {"id": pa.array([], pa.string()), "type": pa.array([], pa.string()),
            "userId": pa.array([], pa.string()), "sessionId": pa.array([], pa.string()),
            "timestamp": pa.array([], pa.int64())}
    for key, typ in PROPERTY_TYPES.items():
        cols["properties." + key] = pa.array([], typ)
    return pa.table(cols)


def _diurnal(rng: np.random.Generator, t: np.ndarray) -> np.ndarray:
    """Move each time to a time of day drawn from the daily cycle, on the same UTC day."""
    hours = rng.choice(24, size=len(t), p=_HOUR_WEIGHTS)
    return (t // DAY) * DAY + hours * HOUR + rng.integers(0, HOUR, len(t))


class _Users:
    def __init__(self, rng: np.random.Generator, count: int, start: int, end: int) -> None:
        span = end - start
        weight = 1.0 / np.arange(1, count + 1) ** 1.05
        self.weight = np.empty(count)
        self.weight[rng.permutation(count)] = weight / weight.sum()
        # Sign-up times spread over twice the window: about half the users are new in it.
        signup = _diurnal(rng, start - span + (rng.random(count) * 2 * span).astype(np.int64))
        self.signup = np.minimum(signup, end - 2 * MINUTE)  # later sessions fit after it
        self.new = self.signup >= start
        in_experiment = rng.random(count) < 0.6
        self.variant = np.where(in_experiment, rng.integers(0, 3, count), 3).astype(np.int8)
        self.names = pa.array([f"user_{i:06d}" for i in range(count)], pa.string())


class _Sessions:
    """Session starts and the per-slot presence mask; `build` turns them into events."""

    def __init__(self, rng: np.random.Generator, people: _Users, count: int, start: int,
                 end: int) -> None:
        self.people = people
        self.end = end
        user = rng.choice(len(people.weight), size=count, p=people.weight)
        base = np.maximum(people.signup[user], start)
        room = np.maximum(end - base, 1).astype(np.float64)
        # New users come back less as time since signup grows (mean 4 days); existing users
        # are spread almost evenly over the window.
        mean = np.where(people.new[user], 4.0 * DAY, 60.0 * DAY)
        u = rng.random(count)
        offset = -mean * np.log1p(-u * -np.expm1(-room / mean))
        when = _diurnal(rng, base + offset.astype(np.int64))
        when = np.where(when <= base, when + DAY, when)  # keep the time of day, not a clip
        when = np.where(when >= end, when - DAY, when)
        when = np.clip(when, base + MINUTE, end - MINUTE)
        # A user's earliest session holds the signup (new users) and experiment assignment.
        order = np.lexsort((when, user))
        first = np.zeros(count, dtype=bool)
        first[order[np.r_[True, user[order][1:] != user[order][:-1]]]] = True
        new_first = first & people.new[user]
        when = np.where(new_first, people.signup[user], when)
        self.user, self.start, self.first, self.new_first = user, when, first, new_first

        incident = _incidents(start, end)
        in_incident = np.zeros(count, dtype=bool)
        for lo, hi in incident:
            in_incident |= (when >= lo) & (when < hi)
        self.incident = incident

        r = rng.random((count, N_SLOTS), dtype=np.float32)
        mask = np.zeros((count, N_SLOTS), dtype=bool)
        variant = people.variant[user]
        mask[:, S_EXPERIMENT] = first & (variant < 3)
        mask[:, S_SIGNUP] = new_first
        mask[:, S_LOGIN] = ~new_first & (r[:, S_LOGIN] < 0.7)
        pages = np.minimum(rng.geometric(0.3, count), MAX_PAGEVIEWS)
        for j in range(MAX_PAGEVIEWS):
            s = S_PAGES + 4 * j
            viewed = pages > j
            mask[:, s] = viewed
            mask[:, s + 1] = viewed & (r[:, s + 1] < 0.55)
            mask[:, s + 2] = mask[:, s + 1] & (r[:, s + 2] < 0.25)
            mask[:, s + 3] = viewed & (r[:, s + 3] < 0.45)
        mask[:, S_PRODUCTS] = r[:, S_PRODUCTS] < 0.30
        mask[:, S_FORM] = mask[:, S_PRODUCTS] & (r[:, S_FORM] < 0.45)
        mask[:, S_PURCHASE] = mask[:, S_FORM] & (r[:, S_PURCHASE] < PURCHASE_RATE[variant])
        mask[:, S_CONVERSION] = mask[:, S_PURCHASE]
        mask[:, S_ERROR] = r[:, S_ERROR] < np.where(in_incident, 0.4, 0.03)
        self.mask = mask
        self.counts = mask.sum(axis=1)
        self.total = int(self.counts.sum())

    def build(self, rng: np.random.Generator, n: int) -> pa.Table:
        people, end = self.people, self.end
        # Keep every first session (signups, assignments), then others, until n events.
        order = np.lexsort((rng.random(len(self.user)), ~self.first))
        cum = np.cumsum(self.counts[order])
        keep = np.sort(order[: int(np.searchsorted(cum, n)) + 1])
        sess_local, slot = np.nonzero(self.mask[keep])
        # Exactly n events: the last kept session may lose its tail (slots are in order, so
        # what stays is a prefix: a click still follows its pageview).
        sess = keep[sess_local][:n]
        slot = slot[:n]
        etype = SLOT_TYPE[slot]
        m = len(sess)

        # Timestamps: session start plus cumulative gaps, sessions shifted to end before `end`.
        gaps = 1000 + rng.exponential(12_000.0, m)
        boundary = np.r_[True, sess[1:] != sess[:-1]]
        gaps[boundary] = 0
        cs = np.cumsum(gaps)
        first_idx = np.flatnonzero(boundary)
        run = np.diff(np.r_[first_idx, m])
        rel = cs - np.repeat(cs[first_idx], run)
        # A session that would run past `end` is compressed to fit (its start, and so the
        # order of a user's sessions relative to the signup, stays put).
        start = self.start[sess]
        span = np.repeat(rel[np.r_[first_idx[1:] - 1, m - 1]], run)
        room = (end - 1 - start).astype(np.float64)
        rel = np.where(span > room, rel * (room / np.maximum(span, 1.0)), rel)
        ts = np.maximum(start + rel.astype(np.int64), 0)

        user = self.user[sess]
        variant = people.variant[user]
        props = _properties(rng, etype, slot, ts, variant, self.incident)

        order_ts = np.argsort(ts, kind="stable")
        ts, etype, user, sess = ts[order_ts], etype[order_ts], user[order_ts], sess[order_ts]
        ids = _uuid_strings(rng.integers(0, 2**63, (m, 2), dtype=np.int64).view(np.uint64))
        session_names = _hex_strings(rng.integers(0, 2**63, len(self.user), dtype=np.int64)
                                     .view(np.uint64), prefix=b"s_")
        cols: dict[str, pa.Array] = {
            "id": ids,
            "type": pc.take(pa.array(EVENT_TYPES, pa.string()), pa.array(etype)),
            "userId": pc.take(people.names, pa.array(user)),
            "sessionId": pc.take(session_names, pa.array(sess)),
            "timestamp": pa.array(ts, pa.int64()),
        }
        for key, typ in PROPERTY_TYPES.items():
            values, present = props[key]
            values = values[order_ts]
            present = present[order_ts]
            if pa.types.is_string(typ):
                vocab = pa.array(_VOCAB[key], pa.string())
                cols["properties." + key] = pc.take(
                    vocab, pa.array(values.astype(np.int32), mask=~present))
            else:
                cols["properties." + key] = pa.array(values, typ, mask=~present)
        return pa.table(cols)


def _incidents(start: int, end: int) -> list[tuple[int, int]]:
    """Latency incidents: 40 minutes at fixed points of the window plus one 2 h before end."""
    span = end - start
    points = [start + int(span * f) for f in (0.31, 0.74)] + [end - 2 * HOUR]
    return [(p, p + 40 * MINUTE) for p in points if p >= start]


_VOCAB: dict[str, tuple[str, ...]] = {
    "page": PAGES, "referrer": REFERRERS, "element": (*ELEMENTS, "product_card"),
    "category": (*CATEGORIES, "products"), "plan": PLANS, "source": REFERRERS,
    "method": LOGIN_METHODS + HTTP_METHODS, "currency": CURRENCIES, "product": PRODUCTS,
    "experiment": (EXPERIMENT_NAME,), "variant": VARIANTS, "form": ("checkout",),
    "message": ERROR_MESSAGES, "endpoint": ENDPOINTS,
}


def _zipf_choice(rng: np.random.Generator, k: int, size: int, a: float = 1.0) -> np.ndarray:
    w = 1.0 / np.arange(1, k + 1) ** a
    return rng.choice(k, size=size, p=w / w.sum())


def _properties(rng: np.random.Generator, etype: np.ndarray, slot: np.ndarray, ts: np.ndarray,
                variant: np.ndarray, incidents: list[tuple[int, int]]
                ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(values, present) per property key; string values are codes into _VOCAB[key]."""
    m = len(etype)
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for key, typ in PROPERTY_TYPES.items():
        if pa.types.is_string(typ):
            out[key] = (np.zeros(m, np.int16), np.zeros(m, bool))
        elif pa.types.is_integer(typ):
            out[key] = (np.zeros(m, np.int64), np.zeros(m, bool))
        else:
            out[key] = (np.zeros(m, np.float64), np.zeros(m, bool))

    def put(key: str, rows: np.ndarray, values: Any) -> None:
        out[key][0][rows] = values
        out[key][1][rows] = True

    pv = np.flatnonzero(etype == PV)
    put("page", pv, _zipf_choice(rng, len(PAGES), len(pv), 0.9))
    put("referrer", pv, _zipf_choice(rng, len(REFERRERS), len(pv), 1.2))
    put("duration", pv, np.round(rng.lognormal(np.log(15_000), 0.9, len(pv))))

    clicks = np.flatnonzero((etype == CLICK) & (slot != S_PRODUCTS))
    # A click belongs to the pageview just before it (or before the first click after it).
    prev_is_click = np.zeros(m, dtype=bool)
    prev_is_click[1:] = etype[:-1] == CLICK
    second = (slot[clicks] - S_PAGES) % 4 == 2
    view = clicks - 1 - (second & prev_is_click[clicks])
    put("page", clicks, out["page"][0][view])
    put("element", clicks, _zipf_choice(rng, len(ELEMENTS), len(clicks)))
    put("category", clicks, _zipf_choice(rng, len(CATEGORIES), len(clicks)))
    products = np.flatnonzero(slot == S_PRODUCTS)
    put("page", products, PAGES.index("/products"))
    put("element", products, len(ELEMENTS))
    put("category", products, len(CATEGORIES))

    forms = np.flatnonzero(etype == FORM)
    put("form", forms, 0)
    put("page", forms, PAGES.index("/pricing"))

    signups = np.flatnonzero(etype == SIGNUP)
    put("plan", signups, rng.choice(3, len(signups), p=[0.7, 0.22, 0.08]))
    put("source", signups, _zipf_choice(rng, len(REFERRERS), len(signups), 1.2))
    logins = np.flatnonzero(etype == LOGIN)
    put("method", logins, rng.choice(4, len(logins), p=[0.5, 0.3, 0.15, 0.05]))

    buys = np.flatnonzero(etype == PURCHASE)
    product = _zipf_choice(rng, len(PRODUCTS), len(buys), 0.8)
    quantity = np.minimum(rng.geometric(0.7, len(buys)), 5)
    amount = PRICES[product]
    put("product", buys, product)
    put("amount", buys, amount)
    put("quantity", buys, quantity)
    put("currency", buys, rng.choice(3, len(buys), p=[0.6, 0.3, 0.1]))
    # A conversion sits right after its purchase, but not every purchase has one: truncating
    # to exactly n events can cut the last session between the two. So each conversion takes
    # the revenue of the purchase before it, rather than pairing the two lists by position.
    conv = np.flatnonzero(etype == CONVERSION)
    paid = conv - 1
    put("revenue", conv, np.round(out["amount"][0][paid] * out["quantity"][0][paid], 2))

    assigned = np.flatnonzero(etype == EXPERIMENT)
    put("experiment", assigned, 0)
    put("variant", assigned, variant[assigned])

    errors = np.flatnonzero(etype == ERROR)
    kind = rng.choice(len(ERROR_MESSAGES), len(errors), p=[0.3, 0.25, 0.15, 0.15, 0.1, 0.05])
    put("message", errors, kind)
    put("code", errors, ERROR_CODES[kind])
    put("page", errors, _zipf_choice(rng, len(PAGES), len(errors), 0.9))

    api = np.flatnonzero(etype == API)
    endpoint = _zipf_choice(rng, len(ENDPOINTS), len(api), 0.7)
    spike = np.zeros(len(api), dtype=bool)
    for lo, hi in incidents:
        spike |= (ts[api] >= lo) & (ts[api] < hi)
    duration = rng.lognormal(np.log(ENDPOINT_MEDIAN_MS[endpoint]), 0.5)
    duration *= np.where(spike, 8.0, 1.0) * np.where(rng.random(len(api)) < 0.003, 15.0, 1.0)
    fail_rate = np.where(spike, 0.25, 0.01)
    r = rng.random(len(api))
    status = np.where(r < fail_rate, 500, np.where(r < fail_rate + 0.03, 404, 200))
    put("endpoint", api, endpoint)
    put("method", api, len(LOGIN_METHODS) + (rng.random(len(api)) < ENDPOINT_POST_SHARE[endpoint]))
    put("status", api, status)
    put("duration", api, np.round(duration, 2))
    return out


def _hex_digits(words: np.ndarray) -> np.ndarray:
    """(n, 16) ASCII hex digits of big-endian uint64 values."""
    raw = words.astype(">u8").view(np.uint8).reshape(-1, 8)
    digits = np.empty((len(words), 16), dtype=np.uint8)
    digits[:, 0::2] = _HEX[raw >> 4]
    digits[:, 1::2] = _HEX[raw & 15]
    return digits


def _fixed_strings(chars: np.ndarray) -> pa.Array:
    """A pyarrow string array from an (n, width) ASCII matrix, without Python objects."""
    n, width = chars.shape
    offsets = np.arange(0, (n + 1) * width, width, dtype=np.int32)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets),
                                       pa.py_buffer(np.ascontiguousarray(chars)))


def _hex_strings(words: np.ndarray, prefix: bytes = b"") -> pa.Array:
    digits = _hex_digits(words)
    if prefix:
        head = np.broadcast_to(np.frombuffer(prefix, np.uint8), (len(words), len(prefix)))
        digits = np.hstack([head, digits])
    return _fixed_strings(digits)


def _uuid_strings(pairs: np.ndarray) -> pa.Array:
    """Canonical version-4 UUID text for (n, 2) uint64 random words."""
    hi = (pairs[:, 0] & np.uint64(0xFFFFFFFFFFFF0FFF)) | np.uint64(0x4000)
    lo = (pairs[:, 1] & np.uint64(0x3FFFFFFFFFFFFFFF)) | np.uint64(0x8000000000000000)
    h, low = _hex_digits(hi), _hex_digits(lo)
    out = np.empty((len(pairs), 36), dtype=np.uint8)
    out[:, 0:8] = h[:, 0:8]
    out[:, 9:13] = h[:, 8:12]
    out[:, 14:18] = h[:, 12:16]
    out[:, 19:23] = low[:, 0:4]
    out[:, 24:36] = low[:, 4:16]
    out[:, [8, 13, 18, 23]] = ord("-")
    return _fixed_strings(out)


def table_events(table: pa.Table, batch_rows: int = 10_000) -> Iterator[dict[str, Any]]:
    """JSON-ready event dicts for a demo table (nulls dropped, `properties` nested; no `id`
    key when the table has no id column)."""
    keys = [(name, name.removeprefix("properties.")) for name in table.column_names
            if name.startswith("properties.")]
    for batch in table.to_batches(max_chunksize=batch_rows):
        n = batch.num_rows
        props: list[dict[str, Any]] = [{} for _ in range(n)]
        types = batch.column("type").to_pylist()
        for name, key in keys:  # visit only present values: ~3 per event, not ~20
            col = batch.column(name)
            if col.null_count == n:
                continue
            values = col.to_pylist()
            present = np.flatnonzero(col.is_valid().to_numpy(zero_copy_only=False)).tolist()
            if pa.types.is_floating(col.type):
                for i in present:
                    v = values[i]
                    props[i][key] = int(v) if (types[i], key) in _INT_IN_JSON else v
            else:
                for i in present:
                    props[i][key] = values[i]
        users = batch.column("userId").to_pylist()
        sessions = batch.column("sessionId").to_pylist()
        stamps = batch.column("timestamp").to_pylist()
        if "id" not in batch.schema.names:  # (a table without ids: the server generates them)
            for i in range(n):
                yield {"type": types[i], "userId": users[i], "sessionId": sessions[i],
                       "timestamp": stamps[i], "properties": props[i]}
            continue
        ids = batch.column("id").to_pylist()
        for i in range(n):
            yield {"id": ids[i], "type": types[i], "userId": users[i],
                   "sessionId": sessions[i], "timestamp": stamps[i], "properties": props[i]}


def iter_demo_events(n: int, users: int = 10_000, days: float = 30, seed: int = 1,
                     end_ms: int | None = None) -> Iterator[dict[str, Any]]:
    """`n` demo events as JSON-ready dicts, oldest first (for NDJSON files and live trickles).

    The same events as `generate_arrow` with the same arguments; pageview durations are
    integers, as the vocabulary says.
    """
    yield from table_events(generate_arrow(n, users=users, days=days, seed=seed, end_ms=end_ms))


# -- a live trickle that continues the history ---------------------------------------------

def hourly_rates(table: pa.Table, end_ms: int) -> np.ndarray:
    """Events per second in each UTC hour of the day, over the history's last week (24
    values; a week, since one day of a few users' sessions is noisy).

    A live trickle paced by these continues the history at its own level and daily shape
    (the history grows denser towards its end, as returning users accumulate), so charts
    show no cliff or spike where the history meets the live data. (The very last day is
    left out: sessions and sign-ups that would fall after `end_ms` crowd into its last hour.)
    """
    ts = np.asarray(table.column("timestamp"), dtype=np.int64)
    week = ts[(ts >= end_ms - 8 * DAY) & (ts < end_ms - DAY)]
    return np.bincount((week % DAY) // HOUR, minlength=24)[:24] / (7 * HOUR / 1000)


def trickle_pace(rates: np.ndarray, at_ms: int, owed: float) -> tuple[int, float]:
    """(events to send for the second at `at_ms`, what is still owed): one second's rate is
    added to `owed` and its whole part sent, so a low rate still sends an event every few
    seconds, evenly, instead of rounding to nothing (or to one a second)."""
    owed += float(rates[(at_ms % DAY) // HOUR])
    due = int(owed)
    return due, owed - due
