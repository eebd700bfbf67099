"""Effective settings: flags > environment (RTA_*, and the seed's PORT, MAX_EVENTS,
RETENTION_DAYS, ENABLE_COMPRESSION) > ~/.config/rta/config.toml > defaults.

Every value remembers where it came from so `rta config show` can say so.
"""

from __future__ import annotations

import os
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rta.core.config import EngineConfig
from rta.core.events import Limits

# key -> (type, default, help)
SPEC: dict[str, tuple[type, Any, str]] = {
    "server": (str, "http://127.0.0.1:8080", "URL the CLI talks to"),
    "token": (str, "", "API token the CLI sends"),
    "host": (str, "127.0.0.1", "address `rta serve` binds"),
    "port": (int, 8080, "port `rta serve` listens on"),
    "data_dir": (str, "", "where the daemon keeps its data (default: the user data dir)"),
    "max_events": (int, 100_000, "events held in the in-memory head before sealing"),
    "retention_days": (float, 0.0, "drop data older than this many days (0 keeps it all)"),
    "compression": (bool, True, "gzip responses when the client accepts it"),
    "fsync": (bool, True, "fsync the write-ahead log before acknowledging"),
    "cache_ttl_ms": (int, 30_000, "how long query results are cached"),
    "column_cache_mb": (int, 1024, "MiB of decoded segment columns kept in RAM for queries"),
    "alert_interval_ms": (int, 1000, "how often alert rules are evaluated"),
    "dedup_window_ms": (int, 86_400_000, "how long event ids are remembered for dedup"),
    "max_event_bytes": (int, 32 * 1024, "largest event accepted"),
    "max_batch_events": (int, 10_000, "most events in one batch"),
    "max_batch_bytes": (int, 10 * 1024 * 1024, "largest batch body"),
    "future_tolerance_ms": (int, 3_600_000, "how far ahead of the clock a timestamp may be"),
    "max_event_properties": (int, 1000, "most property keys in one event (after flattening)"),
    "max_batch_property_keys": (int, 10_000, "most distinct property keys in one batch"),
    "max_property_keys": (int, 100_000, "most distinct property keys the store keeps"),
    "max_event_types": (int, 10_000, "most distinct event types the store keeps"),
    "body_timeout": (float, 30.0, "seconds a request head or body may stall before the "
                     "connection is closed (a 408 once the head has arrived)"),
    "max_connections_per_address": (int, 256,
                                    "open connections allowed per client address (0: no cap)"),
    "log_format": (str, "text", "text or json"),
    "auth": (str, "auto", "auto (required off loopback), on or off"),
    "cors_origins": (str, "", "comma-separated origins allowed to call the API (* for any)"),
    "rate_limit_rps": (float, 0.0, "requests per second per token or address (0: off)"),
    "rate_limit_burst": (float, 0.0, "token-bucket burst (default: twice the rate)"),
    "max_concurrent_queries": (int, 4, "queries running at once; more wait their turn"),
    "query_timeout_ms": (int, 30_000, "a query running longer is cancelled with a 504"),
    "allow_private_webhooks": (bool, False, "let alert webhooks target private/loopback hosts"),
    "share_frame_ancestors": (str, "'self'", "origins whose pages may embed share links in "
                              "an iframe (CSP frame-ancestors), e.g. 'self' https://wiki.example"),
    "webhook_timeout": (float, 5.0, "seconds before a webhook attempt times out"),
    "webhook_retries": (int, 3, "retries after a failed webhook attempt"),
    "webhook_backoff": (float, 0.5, "first retry delay in seconds (doubles each time)"),
    "live_events_rate": (float, 1000.0, "events/s the live tail sends before sampling"),
    "ws_queue": (int, 256, "messages queued per WebSocket client before coalescing/dropping"),
    "visit_timeout_minutes": (float, 30.0, "web analytics: minutes of inactivity that end a "
                              "visit (for events sent without a session id)"),
    "web_own_hosts": (str, "", "web analytics: comma-separated hosts of your own sites, "
                      "whose referrals are not counted as sources"),
    "backend": (str, "embedded", "where events are stored and queried: embedded or clickhouse"),
    "clickhouse_url": (str, "", "ClickHouse to use with backend clickhouse: "
                       "http(s)://user:pass@host:8123/db or chdb:///path"),
    "clickhouse_cluster": (str, "", "cluster name for ON CLUSTER DDL and a Distributed table"),
    "clickhouse_local_days": (float, 2.0, "days of events the local store keeps for live "
                              "views and alerts when ClickHouse holds the history"),
    "clickhouse_max_backlog_mb": (int, 10_240, "MiB of events waiting to ship to ClickHouse "
                                  "before ingest answers 503"),
    "trusted_proxies": (str, "", "comma-separated CIDRs of proxies whose X-Forwarded-For "
                        "names the client (for the country lookup)"),
    "geoip_database": (str, "", "MaxMind-format .mmdb file for country, region and city "
                       "(default: geoip2fast's bundled country data)"),
    "posthog_autocapture": (bool, True, "let posthog-js autocapture clicks (told through "
                            "its remote config)"),
    "segment_group_type": (str, "company", "group type of Segment group() calls and of "
                           "context.groupId (docs/people.md, Groups)"),
    # email for reports and alerts (rta.core.mailer); the password is never shown or logged
    "smtp_host": (str, "", "SMTP server for report and alert emails (empty: no email)"),
    "smtp_port": (int, 0, "SMTP port (0: 465 with smtp_tls tls, else 25)"),
    "smtp_tls": (str, "none", "none, starttls or tls (implicit TLS, usually port 465)"),
    "smtp_user": (str, "", "SMTP login name (empty: no login)"),
    "smtp_password": (str, "", "SMTP password (never shown by rta config show or the API)"),
    "smtp_from": (str, "", "From address of report and alert emails"),
    "public_url": (str, "", "URL people open this server at, for links in reports, "
                   "notifications and share links (default: the address it listens on)"),
}
SECRET_KEYS = ("token", "smtp_password")  # shown as *** wherever settings are printed
SERVER_OPTIONS = ("host", "auth", "cors_origins", "rate_limit_rps", "rate_limit_burst",
                  "max_concurrent_queries", "query_timeout_ms", "allow_private_webhooks",
                  "webhook_timeout", "webhook_retries", "webhook_backoff", "live_events_rate",
                  "ws_queue", "body_timeout", "max_connections_per_address",
                  "trusted_proxies", "geoip_database", "posthog_autocapture",
                  "segment_group_type",
                  "smtp_host", "smtp_port", "smtp_tls", "smtp_user", "smtp_password",
                  "smtp_from", "public_url",
                  "share_frame_ancestors")
SEED_ENV = {"PORT": "port", "MAX_EVENTS": "max_events", "RETENTION_DAYS": "retention_days",
            "ENABLE_COMPRESSION": "compression"}


def config_path() -> Path:
    if os.environ.get("RTA_CONFIG"):
        return Path(os.environ["RTA_CONFIG"])
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(Path.home(), ".config")
    return Path(base) / "rta" / "config.toml"


def default_data_dir() -> str:
    if sys.platform == "darwin":
        return str(Path.home() / "Library" / "Application Support" / "rta")
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(Path.home(), ".local", "share")
    return os.path.join(base, "rta")


# Values a key may take beyond its type: a mistyped `--auth true` must not mean "off".
CHOICES: dict[str, tuple[str, ...]] = {"auth": ("auto", "on", "off"),
                                       "log_format": ("text", "json"),
                                       "backend": ("embedded", "clickhouse"),
                                       "smtp_tls": ("none", "starttls", "tls")}
# Inclusive lower (and upper) bounds of numeric keys; unlisted numbers must be >= 0.
RANGES: dict[str, tuple[float, float | None]] = {
    "port": (0, 65535), "smtp_port": (0, 65535), "max_events": (1, None),
    "max_event_bytes": (1, None),
    "max_batch_events": (1, None), "max_batch_bytes": (1, None),
    "max_concurrent_queries": (1, None), "query_timeout_ms": (1, None),
    "alert_interval_ms": (1, None), "ws_queue": (1, None), "max_event_properties": (1, None),
    "max_batch_property_keys": (1, None), "max_property_keys": (1, None),
    "max_event_types": (1, None), "body_timeout": (0.1, None)}


def convert(key: str, raw: Any) -> Any:
    """`raw` (a flag, environment or file value) as the key's type, checked."""
    value = _typed(key, raw)
    if key in CHOICES:
        value = str(value).strip().lower()
        if value not in CHOICES[key]:
            raise ValueError(f"{key} must be one of {', '.join(CHOICES[key])}, not {raw!r}")
    elif isinstance(value, int | float) and not isinstance(value, bool):
        lo, hi = RANGES.get(key, (0, None))
        if value != value or value in (float("inf"), float("-inf")) or value < lo or (
                hi is not None and value > hi):
            span = f"from {lo} to {hi}" if hi is not None else f"at least {lo}"
            raise ValueError(f"{key} must be {span}, not {raw!r}")
    elif key == "server" and not str(value).startswith(("http://", "https://")):
        raise ValueError(f"server must be an http:// or https:// URL, not {raw!r}")
    elif key == "segment_group_type" and (not value or "." in value or len(value) > 100):
        raise ValueError(f"segment_group_type must be 1 to 100 characters without '.', "
                         f"not {raw!r}")
    elif key == "trusted_proxies":
        from rta.server.client_ip import parse_networks  # (ipaddress only: cheap)
        parse_networks(value)
    return value


def _typed(key: str, raw: Any) -> Any:
    kind = SPEC[key][0]
    if kind is bool:
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"{key} must be true or false, not {raw!r}")
    try:
        return kind(raw)
    except (TypeError, ValueError):
        raise ValueError(f"{key} must be {kind.__name__}, not {raw!r}") from None


@dataclass
class Settings:
    values: dict[str, Any] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)

    def __getattr__(self, key: str) -> Any:
        try:
            return self.__dict__["values"][key]
        except KeyError:
            raise AttributeError(key) from None

    def server_options(self) -> dict[str, Any]:
        return {k: self.values[k] for k in SERVER_OPTIONS}

    def engine_config(self) -> EngineConfig:
        return EngineConfig(
            data_dir=self.values["data_dir"] or default_data_dir(),
            max_events=self.max_events, retention_days=self.retention_days,
            dedup_window_ms=self.dedup_window_ms, fsync=self.fsync,
            cache_ttl_ms=self.cache_ttl_ms, alert_interval_ms=self.alert_interval_ms,
            column_cache_mb=self.column_cache_mb,
            max_property_keys=self.max_property_keys, max_event_types=self.max_event_types,
            backend=self.backend, clickhouse_url=self.clickhouse_url or None,
            clickhouse_cluster=self.clickhouse_cluster or None,
            clickhouse_local_days=self.clickhouse_local_days,
            clickhouse_max_backlog_mb=self.clickhouse_max_backlog_mb,
            visit_timeout_minutes=self.visit_timeout_minutes,
            web_own_hosts=self.web_own_hosts,
            limits=Limits(max_event_bytes=self.max_event_bytes,
                          max_event_properties=self.max_event_properties,
                          max_batch_property_keys=self.max_batch_property_keys,
                          max_batch_events=self.max_batch_events,
                          max_batch_bytes=self.max_batch_bytes,
                          future_tolerance_ms=self.future_tolerance_ms))


def read_config_file(path: Path | None = None) -> dict[str, Any]:
    p = path or config_path()
    if not p.exists():
        return {}
    with open(p, "rb") as f:
        data = tomllib.load(f)
    return {k.replace("-", "_"): v for k, v in data.items()}


def load_settings(flags: dict[str, Any] | None = None,
                  env: dict[str, str] | None = None) -> Settings:
    environ = os.environ if env is None else env
    file_values = read_config_file()
    settings = Settings()
    for key, (_kind, default, _help) in SPEC.items():
        value, source = default, "default"
        if key in file_values:
            value, source = convert(key, file_values[key]), f"file:{config_path()}"
        for name, target in SEED_ENV.items():
            if target == key and environ.get(name):
                value, source = convert(key, environ[name]), f"env:{name}"
        env_name = "RTA_" + key.upper()
        if environ.get(env_name):
            value, source = convert(key, environ[env_name]), f"env:{env_name}"
        if flags and flags.get(key) is not None:
            value, source = convert(key, flags[key]), "flag"
        settings.values[key] = value
        settings.sources[key] = source
    if not settings.values["data_dir"]:
        settings.values["data_dir"] = default_data_dir()
    return settings


def write_config_value(key: str, raw: str, path: Path | None = None) -> Path:
    """Set one key in the config file (keeping the others)."""
    if key not in SPEC:
        raise KeyError(key)
    value = convert(key, raw)
    p = path or config_path()
    data = read_config_file(p)
    data[key] = value
    p.parent.mkdir(parents=True, exist_ok=True)
    lines = []
    for k, v in sorted(data.items()):
        if isinstance(v, bool):
            lines.append(f"{k} = {'true' if v else 'false'}")
        elif isinstance(v, int | float):
            lines.append(f"{k} = {v}")
        else:
            escaped = str(v).replace("\\", "\\\\").replace('"', '\\"')
            lines.append(f'{k} = "{escaped}"')
    p.write_text("\n".join(lines) + "\n")
    return p
