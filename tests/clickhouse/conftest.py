from __future__ import annotations

import pytest

pytest.importorskip("chdb", reason="the ClickHouse parity tests need chdb (pip install "
                    "'rta[clickhouse]')")
pytest.importorskip("clickhouse_connect", reason="pip install 'rta[clickhouse]'")
