"""Annotations and share links on the shared ClickHouse metadata store: the same answers as
the sqlite store, and what one daemon writes another reads (a link revoked through one is
refused by the other)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from rta.core import annotation_store
from rta.core.clickhouse.connection import ClickHouse
from rta.core.clickhouse.metadata_store import ClickHouseMetadataStore
from rta.core.metadata import Metadata, MetadataStore
from rta.core.share_links import ShareLinkStore
from tests.clickhouse.harness import chdb_database
from tests.core.test_annotation_store import strip

NOTES = [(500, None), (100, "d1"), (100, "d2"), (300, "d1"), (100, None), (900, "d2")]
QUERIES = [(None, None, None), (100, 100, None), (101, 900, "d1"), (None, 300, "d2"),
           (0, 1000, "d1")]


@pytest.fixture
def ch() -> Iterator[ClickHouse]:
    conn = chdb_database()
    yield conn
    conn.command(f"DROP DATABASE IF EXISTS `{conn.database}`")


def ordered(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Oldest first (checked); equal times in either order (created in the same ms, their
    order is by random id), so compared by text."""
    assert [d["timestamp"] for d in docs] == sorted(d["timestamp"] for d in docs)
    return sorted(strip(docs), key=lambda d: (d["timestamp"], d["text"]))


def scenario(write: Metadata, read: Metadata) -> dict[str, Any]:
    """Write through one store, read through the other (two daemons on one database)."""
    for name in ("d1", "d2"):
        write.create("dashboard", {"name": name, "widgets": []}, doc_id=name)
    for i, (ts, d) in enumerate(NOTES):
        annotation_store.create(write, {"text": f"n{i}", "timestamp": ts, "dashboardId": d},
                                author="ci" if i % 2 else None)
    answers = [ordered(annotation_store.query(read, lo, hi, d)) for lo, hi, d in QUERIES]
    doomed = annotation_store.query(read, 900, 900)[0]
    annotation_store.delete(read, doomed["id"])
    answers.append(ordered(annotation_store.query(write, None, None, None)))
    links_w, links_r = ShareLinkStore(write), ShareLinkStore(read)
    secret, record = links_w.create("d1", {"expiresIn": "1d"})
    verified = links_r.verify(secret)
    assert verified is not None and verified["dashboardId"] == "d1"
    links_w.revoke("d1", record["id"])
    links_r._cache = None  # (the other daemon's 1 s re-read, without the wait)
    return {"annotations": answers, "after_revoke": links_r.verify(secret),
            "alive": links_r.alive(record["id"])}


def test_same_answers_as_sqlite_across_two_daemons(ch: ClickHouse) -> None:
    local = MetadataStore(None)
    got = scenario(ClickHouseMetadataStore(ch), ClickHouseMetadataStore(ch))
    want = scenario(local, local)
    assert got == want
    assert want["after_revoke"] is None and want["alive"] is False
    assert [a["text"] for a in want["annotations"][0]] == ["n1", "n2", "n4", "n3", "n0", "n5"]
    assert [a["text"] for a in want["annotations"][2]] == ["n3", "n0"]  # d1 and global
