"""The annotation filter against a naive reference (hypothesis: ties, repeats, bounds), and
share-link verification rules, on the sqlite metadata store."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rta.core import annotation_store
from rta.core.metadata import MetadataStore
from rta.core.share_links import ShareLinkStore

DASHBOARDS = ("d1", "d2")
times = st.integers(0, 20)  # few distinct values: many ties and repeats


@given(notes=st.lists(st.tuples(times, st.sampled_from((None, *DASHBOARDS))), max_size=12),
       lo=st.none() | times, hi=st.none() | times,
       dashboard=st.sampled_from((None, *DASHBOARDS)))
@settings(max_examples=40, deadline=None)
def test_query_matches_a_naive_filter(notes: list[tuple[int, str | None]], lo: int | None,
                                      hi: int | None, dashboard: str | None) -> None:
    meta = MetadataStore(None)
    for d in DASHBOARDS:
        meta.create("dashboard", {"name": d, "widgets": []}, doc_id=d)
    made = [annotation_store.create(meta, {"text": f"n{i}", "timestamp": ts,
                                           "dashboardId": d}) for i, (ts, d) in enumerate(notes)]
    if lo is not None and hi is not None and lo > hi:
        with pytest.raises(Exception, match="from"):
            annotation_store.query(meta, lo, hi, dashboard)
        return
    got = annotation_store.query(meta, lo, hi, dashboard)
    want = sorted((a for a in made if (lo is None or a["timestamp"] >= lo)
                   and (hi is None or a["timestamp"] <= hi)
                   and (dashboard is None or a["dashboardId"] in (None, dashboard))),
                  key=lambda a: (a["timestamp"], a["createdAt"], a["id"]))
    assert [a["id"] for a in got] == [a["id"] for a in want]


def test_share_links_verify_expire_and_revoke() -> None:
    meta = MetadataStore(None)
    meta.create("dashboard", {"name": "d", "widgets": []}, doc_id="d")
    store = ShareLinkStore(meta)
    secret, record = store.create("d", {"expiresAt": 2_000_000_000_000})
    found = store.verify(secret, now=1_999_999_999_999)
    assert found is not None and found["id"] == record["id"]
    assert store.verify(secret, now=2_000_000_000_000) is None  # expired at expiresAt
    assert store.alive(record["id"], now=1_000) and not store.alive(record["id"],
                                                                    now=2_000_000_000_000)
    assert store.verify(secret + "x") is None and store.verify("rts_") is None
    other, _ = store.create("d")
    assert [r["id"] for r in store.revoke("d", record["id"])] == [record["id"]]
    assert store.verify(secret, now=1_000) is None  # at once: no cached copy survives
    assert store.verify(other) is not None
    assert store.revoke("d") and store.verify(other) is None and store.list_links("d") == []


def strip(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in d.items() if k not in ("id", "createdAt", "updatedAt")}
            for d in docs]
