"""The parity suite on a real ClickHouse server or cluster: with RTA_CLICKHOUSE_URL set,
every test under tests/clickhouse runs its databases there (harness.chdb_database); this
file says so, or says why it cannot."""

from __future__ import annotations

import pytest

from rta.core.clickhouse.connection import ClickHouse
from tests.clickhouse.harness import SERVER_URL


@pytest.mark.skipif(SERVER_URL is None, reason="RTA_CLICKHOUSE_URL is not set: the ClickHouse "
                    "parity suite ran in-process on chdb only (set it to an http(s):// server "
                    "or cluster node to run the same suite there)")
def test_the_suite_runs_on_the_server_named() -> None:
    assert SERVER_URL is not None
    ch = ClickHouse.open(SERVER_URL)
    version = ch.rows("SELECT version()")[0][0]
    assert int(str(version).split(".")[0]) >= 23, f"rta's SQL needs ClickHouse 23+, not {version}"
