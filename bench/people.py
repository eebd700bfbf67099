"""`python -m bench people`: person-aware funnels and retention vs user-based, same run.

The demo data set (10M events, 100k users by default) is given identities: 20% of the users
sent their first half of events under an anonymous id (`anon-<user>`) and were then linked
to their user id (one `$identify` link each), so the store holds 120k distinct ids for 100k
persons. Each query is timed person-aware (the default) and user-based two ways, best of N
after a first call: `identity=raw` on the same store (links ignored: the anonymous halves
count apart, so later funnel steps see fewer users and less work), and over the original
data set (every user one id: the same per-person sequences, what rta answered before persons
existed for apps that never sent anonymous ids, the overhead of persons alone). DuckDB
answers over the same events joined to the id -> person table at query time (a view), its
funnel counts checked equal once.
"""

from __future__ import annotations

import sys
import tempfile
import time
from functools import partial
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from bench.behaviour import STEPS3, STEPS5, funnel_body, funnel_sql, retention_sql
from bench.common import (
    best_of,
    build_store,
    dataset_args,
    duckdb_from_table,
    fmt_count,
    fmt_seconds,
    generate_events,
    print_table,
    ratio,
)
from rta.core.config import EngineConfig
from rta.core.engine import Engine
from rta.core.identity import IDENTIFY, RAW, Link, identity_mode
from rta.core.queries import behaviour
from rta.core.queries.timeparse import DAY, HOUR


def with_identities(table: pa.Table, share: float, seed: int = 7) -> tuple[pa.Table, list[Link]]:
    """`table` where a `share` of users sent their first half of events anonymously, and
    the links that join each anonymous id to its user (column-wise: dictionary codes)."""
    enc = pc.dictionary_encode(table.column("userId").combine_chunks())
    names = enc.dictionary.to_pylist()
    codes = enc.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
    ts = table.column("timestamp").to_numpy()
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(len(names), int(len(names) * share), replace=False))
    rank = np.full(len(names), -1, dtype=np.int64)
    rank[chosen] = np.arange(len(chosen))
    picked = np.flatnonzero((codes >= 0) & (rank[np.maximum(codes, 0)] >= 0))
    # each chosen user's median event time splits anonymous from identified
    order = np.lexsort((ts[picked], codes[picked]))
    pu, pt = codes[picked][order], ts[picked][order]
    starts = np.flatnonzero(np.r_[True, pu[1:] != pu[:-1]])
    ends = np.r_[starts[1:], len(pu)]
    cut = np.full(len(names), np.iinfo(np.int64).max, dtype=np.int64)
    cut[pu[starts]] = pt[(starts + ends) // 2]
    before = picked[ts[picked] < cut[codes[picked]]]
    renamed = codes.copy()
    renamed[before] = len(names) + rank[codes[before]]
    anon = ["anon-" + str(names[c]) for c in chosen.tolist()]
    users = pa.DictionaryArray.from_arrays(
        pa.array(renamed.astype(np.int32), mask=renamed < 0),
        pa.array([*names, *anon], pa.string())).cast(pa.string())
    out = table.set_column(table.schema.get_field_index("userId"), "userId", users)
    links = [Link(IDENTIFY, str(names[c]), a) for c, a in zip(chosen.tolist(), anon,
                                                               strict=True)]
    return out, links


def _fetch(con: Any, sql: str) -> Any:
    return con.execute(sql).fetchall()


def _raw(fn: Any) -> Any:
    token = identity_mode.set(RAW)
    try:
        return fn()
    finally:
        identity_mode.reset(token)


def main(argv: list[str] | None = None) -> None:
    ap = dataset_args("python -m bench people", __doc__, repeat=3, requests=0)
    ap.add_argument("--share", type=float, default=0.2, help="users with two distinct ids")
    args = ap.parse_args(argv)
    base = generate_events(args.events, users=args.users, days=args.days)
    table, links = with_identities(base, args.share)
    end = int(table.column("timestamp").to_numpy().max()) + 1
    start = end - args.days * DAY
    ret_start = (end // DAY - args.days) * DAY
    con = duckdb_from_table(table)
    person = pa.table({"did": [x.source for x in links], "pid": [x.target for x in links]})
    con.register("person_arrow", person)
    con.execute("CREATE TABLE person_map AS SELECT * FROM person_arrow")
    con.execute("CREATE VIEW events_p AS SELECT e.* REPLACE (coalesce(m.pid, e.userId) "
                "AS userId) FROM events e LEFT JOIN person_map m ON e.userId = m.did")

    def persons_sql(sql: str) -> str:
        return sql.replace("FROM events", "FROM events_p").replace("JOIN events",
                                                                     "JOIN events_p")

    cohort = {"entryEvent": "pageview", "retentionEvent": "login", "periods": args.days,
              "periodLength": DAY, "startTime": ret_start, "endTime": end - 1}
    cases = [
        ("3-step funnel, 1h window",
         lambda eng: behaviour.run_funnel(eng, funnel_body(STEPS3, start, end, HOUR), end),
         funnel_sql(STEPS3, start, end, HOUR)),
        ("5-step funnel, 1d window",
         lambda eng: behaviour.run_funnel(eng, funnel_body(STEPS5, start, end, DAY), end),
         funnel_sql(STEPS5, start, end, DAY)),
        (f"{args.days}-day daily retention",
         lambda eng: behaviour.run_cohort(eng, cohort, end),
         retention_sql("pageview", "login", ret_start, end, DAY, args.days, end + 1)),
    ]
    with tempfile.TemporaryDirectory(prefix="rta-bench-people-") as tmp, \
            tempfile.TemporaryDirectory(prefix="rta-bench-users-") as plain_dir:
        build_store(table, tmp).close()
        build_store(base, plain_dir).close()
        engine = Engine(EngineConfig(data_dir=tmp, fsync=False, cache_ttl_ms=0))
        plain = Engine(EngineConfig(data_dir=plain_dir, fsync=False, cache_ttl_ms=0))
        try:
            t0 = time.perf_counter()
            engine.persons.link(links)
            folded = time.perf_counter() - t0
            rows: list[list[str]] = [["query", "persons", "users, same data", "persons/users",
                                      "users, raw ids", "DuckDB persons", "persons/DuckDB",
                                      "persons 1st call"]]
            for name, fn, sql in cases:
                first = best_of(partial(fn, engine), 1)
                ours = best_of(partial(fn, engine), args.repeat)
                fn(plain)
                users = best_of(partial(fn, plain), args.repeat)
                _raw(partial(fn, engine))
                raw = best_of(partial(_raw, partial(fn, engine)), args.repeat)
                theirs = best_of(partial(_fetch, con, persons_sql(sql)), args.repeat)
                rows.append([name, fmt_seconds(ours), fmt_seconds(users), ratio(ours, users),
                             fmt_seconds(raw), fmt_seconds(theirs), ratio(ours, theirs),
                             fmt_seconds(first)])
            check(engine, con, persons_sql(funnel_sql(STEPS3, start, end, HOUR)),
                  funnel_body(STEPS3, start, end, HOUR), end)
            if behaviour.run_funnel(engine, funnel_body(STEPS5, start, end, DAY), end) != \
                    behaviour.run_funnel(plain, funnel_body(STEPS5, start, end, DAY), end):
                print("people: persons and the original users disagree", file=sys.stderr)
            rows.append([f"fold {len(links):,} links (+ remap on 1st call)",
                         fmt_seconds(folded), "-", "-", "-", "-", "-", "-"])
        finally:
            engine.close()
            plain.close()
    distinct = len(pc.unique(table.column("userId")))
    print_table(f"Person-aware queries, {fmt_count(args.events)} events, {distinct:,} distinct "
                f"ids, {distinct - len(links):,} persons ({len(links):,} with two ids), best of "
                f"{args.repeat}", rows)


def check(engine: Engine, con: Any, sql: str, body: dict[str, Any], end: int) -> None:
    """The person-aware funnel's step counts equal DuckDB's (printed if not)."""
    got = [s["count"] for s in behaviour.run_funnel(engine, body, end)["steps"]]
    want = list(con.execute(sql).fetchall()[0])
    if got != want:
        print(f"people: funnel counts differ: rta {got}, DuckDB {want}", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1:])
