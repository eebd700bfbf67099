"""Reaching ClickHouse: a server over HTTP(S), or ClickHouse in-process through chdb.

    http(s)://user:password@host:8123/database     a server or a cluster's node
    chdb:///path/to/dir[?database=name]             in-process (tests, one machine)

clickhouse-connect serves both URL kinds through one client API and moves results as Arrow.
A client holds one session and is not safe for concurrent queries, so `ClickHouse` keeps one
client per thread for servers; chdb runs in this process and its one engine is shared, so
every call to it is serialised by a lock.

Thread rule: `ClickHouse` methods are safe from any thread (blocking I/O: call them from
worker threads, never the event loop).
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pyarrow as pa

from rta.core.errors import BackendUnavailable

DEFAULT_DATABASE = "rta"
# chdb runs one ClickHouse engine per process, at one path: one client each, calls serialised.
_CHDB_CLIENTS: dict[str, Any] = {}
_CHDB_LOCK = threading.RLock()
# clickhouse-connect and urllib3 log every failed attempt as a warning with a traceback-like
# line; rta reports the failure itself, once, in one line.
for _name in ("clickhouse_connect", "urllib3.connectionpool"):
    logging.getLogger(_name).setLevel(logging.ERROR)


class ClickHouseError(BackendUnavailable):
    """ClickHouse could not be reached or refused a statement; the message names which
    (a 503 with a JSON error body at the API, never a stack trace)."""


@dataclass(frozen=True)
class Target:
    """A parsed ClickHouse URL: where, which database, and how to show it (no password)."""

    url: str
    kind: str  # "http" | "chdb"
    database: str
    display: str

    @property
    def in_process(self) -> bool:
        return self.kind == "chdb"


def parse_url(url: str, database: str | None = None) -> Target:
    """Read a ClickHouse URL; ValueError naming what is wrong with it."""
    parts = urlsplit(url)
    if parts.scheme == "chdb":
        path = unquote(parts.netloc + parts.path)
        if not path:
            raise ValueError(f"{url!r}: a chdb URL names a directory: chdb:///path/to/dir")
        named = parse_qs(parts.query).get("database", [None])[0]  # (chdb:///dir?database=x)
        return Target(f"chdb://{path}", "chdb", database or named or DEFAULT_DATABASE,
                      f"chdb://{path}")
    if parts.scheme in ("http", "https"):
        if not parts.hostname:
            raise ValueError(f"{url!r}: no host (http://user:password@host:8123/database)")
        db = database or parts.path.strip("/") or DEFAULT_DATABASE
        port = f":{parts.port}" if parts.port else ""
        user = f"{unquote(parts.username)}@" if parts.username else ""
        return Target(url, "http", db, f"{parts.scheme}://{user}{parts.hostname}{port}/{db}")
    raise ValueError(f"{url!r}: use http(s)://host:8123/database or chdb:///path/to/dir")


class ClickHouse:
    """A ClickHouse connection for rta: SQL with server-side parameters, Arrow in and out."""

    def __init__(self, target: Target, statement_timeout_s: float = 60.0) -> None:
        self.target = target
        # A query's HTTP request gives up after query_timeout_ms (30 s), but its worker
        # thread cannot be cancelled: ClickHouse itself stops a statement past this bound,
        # so an abandoned query does not run on. (Streamed exports have no bound.)
        self.statement_timeout_s = statement_timeout_s
        self.database = target.database
        self._local = threading.local()
        self._lock = _CHDB_LOCK if target.in_process else None

    @classmethod
    def open(cls, url: str, database: str | None = None) -> ClickHouse:
        """Connect and check the server answers; ClickHouseError naming the URL if not."""
        target = parse_url(url, database)
        conn = cls(target)
        try:
            conn._call("command", "SELECT 1")
        except ClickHouseError as exc:
            reason = _one_line(exc.__cause__) if exc.__cause__ is not None else str(exc)
            raise ClickHouseError(f"cannot reach ClickHouse at {target.display}: {reason}"
                                  ) from None
        return conn

    def _client(self) -> Any:
        import clickhouse_connect

        if self.target.in_process:
            with _CHDB_LOCK:
                found = _CHDB_CLIENTS.get(self.target.url)
                if found is None:
                    found = _CHDB_CLIENTS[self.target.url] = clickhouse_connect.get_client(
                        dsn=self.target.url)
            return found
        client = getattr(self._local, "client", None)
        if client is None:
            parts = urlsplit(self.target.url)
            client = clickhouse_connect.get_client(
                host=parts.hostname, port=parts.port or (8443 if parts.scheme == "https"
                                                         else 8123),
                username=unquote(parts.username or "default"),
                password=unquote(parts.password or ""), secure=parts.scheme == "https",
                autogenerate_session_id=False)
            self._local.client = client
        return client

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        try:
            if self._lock is None:
                return getattr(self._client(), method)(*args, **kwargs)
            with self._lock:
                return getattr(self._client(), method)(*args, **kwargs)
        except ClickHouseError:
            raise
        except Exception as exc:  # clickhouse-connect raises its own and OS errors
            raise ClickHouseError(f"ClickHouse ({self.target.display}): {_one_line(exc)}"
                                  ) from exc

    def command(self, sql: str, parameters: dict[str, Any] | None = None,
                settings: dict[str, Any] | None = None) -> Any:
        """Run a statement (DDL, small scalar answers)."""
        return self._call("command", sql, parameters=parameters, settings=settings)

    def rows(self, sql: str, parameters: dict[str, Any] | None = None,
             settings: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        """A query's rows as Python tuples (small answers)."""
        return list(self._call("query", sql, parameters=parameters,
                               settings=self._bounded(settings)).result_rows)

    def arrow(self, sql: str, parameters: dict[str, Any] | None = None,
              settings: dict[str, Any] | None = None) -> pa.Table:
        """A query's answer as an Arrow table (columnar answers)."""
        return self._call("query_arrow", sql, parameters=parameters,
                          settings=self._bounded(settings), use_strings=True)

    def _bounded(self, settings: dict[str, Any] | None) -> dict[str, Any]:
        return {"max_execution_time": self.statement_timeout_s, **(settings or {})}

    def arrow_stream(self, sql: str, parameters: dict[str, Any] | None = None,
                     settings: dict[str, Any] | None = None) -> Iterator[pa.RecordBatch]:
        """A query's answer as Arrow record batches, read as the caller consumes them (a
        streamed export). chdb's engine stays locked until the stream is closed."""
        if self._lock is not None:
            with self._lock:
                yield from self._stream(sql, parameters, settings)
        else:
            yield from self._stream(sql, parameters, settings)

    def _stream(self, sql: str, parameters: dict[str, Any] | None,
                settings: dict[str, Any] | None) -> Iterator[pa.RecordBatch]:
        try:
            stream = self._client().query_arrow_stream(sql, parameters=parameters,
                                                       settings=settings, use_strings=True)
            with stream:
                yield from stream
        except ClickHouseError:
            raise
        except GeneratorExit:
            raise
        except Exception as exc:
            raise ClickHouseError(f"ClickHouse ({self.target.display}): {_one_line(exc)}"
                                  ) from exc

    def insert_arrow(self, table: str, data: pa.Table,
                     settings: dict[str, Any] | None = None) -> None:
        """Insert an Arrow table into `table` of this database."""
        self._call("insert_arrow", table, data, database=self.database, settings=settings)

    def close(self) -> None:
        """Close this thread's server client (chdb's engine lives as long as the process)."""
        client = getattr(self._local, "client", None)
        if client is not None:
            client.close()
            self._local.client = None


def _one_line(exc: BaseException) -> str:
    """The reason in one line: the OS error inside an HTTP client's wrapping when there is
    one ('[Errno 111] Connection refused'), else the first line of the message."""
    text = str(exc).strip() or type(exc).__name__
    errno = re.search(r"\[Errno -?\d+\] [^'\")]+", text)
    if errno:
        return errno.group(0).strip()
    return text.splitlines()[0][:500]
