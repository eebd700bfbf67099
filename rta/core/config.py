"""Engine configuration: everything the core needs, with the product's defaults.

Thread rule: immutable; any thread.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rta.core.events import Limits


@dataclass(frozen=True)
class EngineConfig:
    data_dir: str | None = None  # None: in-memory only (tests, throwaway use)
    max_events: int = 100_000  # in-memory head bound (MAX_EVENTS); sealed data stays on disk
    retention_days: float = 0  # 0 keeps data forever
    dedup_window_ms: int = 24 * 3600 * 1000
    fsync: bool = True
    cache_ttl_ms: int = 30_000
    column_cache_mb: int = 1024  # decoded segment columns kept for queries (LRU)
    alert_interval_ms: int = 1000
    max_property_keys: int = 100_000  # distinct property keys kept; new ones past it refused
    max_event_types: int = 10_000  # distinct event types kept; new ones past it refused
    limits: Limits = field(default_factory=Limits)
    # Where queries are answered (#17): "embedded" (this machine's store) or "clickhouse"
    # (events ship from the local WAL to `clickhouse_url`; the local store keeps only the
    # last `clickhouse_local_days` for live views and alerts).
    backend: str = "embedded"
    clickhouse_url: str | None = None
    clickhouse_cluster: str | None = None
    clickhouse_local_days: float = 2.0
    clickhouse_max_backlog_mb: int = 10_240
    # Web analytics (#19): what ends a visit, and which referrers are the site itself.
    visit_timeout_minutes: float = 30.0
    web_own_hosts: str = ""  # comma-separated

    @property
    def retention_ms(self) -> int | None:
        return int(self.retention_days * 86_400_000) if self.retention_days > 0 else None

    @property
    def local_retention_ms(self) -> int | None:
        """What the local store keeps: everything kept, or with ClickHouse holding the
        history, a recent window for live views and alerts."""
        if self.backend != "clickhouse":
            return self.retention_ms
        window = int(self.clickhouse_local_days * 86_400_000)
        kept = self.retention_ms
        return window if kept is None else min(window, kept)
