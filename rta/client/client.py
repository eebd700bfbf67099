"""RtaClient: the HTTP client the CLI (and users) drive the daemon with.

The transport is injectable (httpx's MockTransport/ASGITransport) so the client can be
tested without sockets.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

ARROW_STREAM = "application/vnd.apache.arrow.stream"


class ClientError(Exception):
    """Base error of the client."""


class DaemonUnreachable(ClientError):
    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"cannot reach the rta daemon at {url}: {reason}. "
                         "Start it with `rta serve` or point --server at it.")
        self.url = url


class NotAnRtaDaemon(DaemonUnreachable):
    """Something answers at the URL, but not in rta's JSON: a proxy, another web server."""

    def __init__(self, url: str, response: httpx.Response) -> None:
        ClientError.__init__(self, f"{url} answered {response.status_code} "
                                   f"({response.headers.get('content-type') or 'no content type'})"
                                   f" to {response.request.method} {response.request.url.path}, "
                                   "not in rta's JSON: is --server an rta daemon?")
        self.url = url


class ApiError(ClientError):
    """A 4xx/5xx answer, carrying the server's JSON error body."""

    def __init__(self, status: int, body: Any) -> None:
        err = body.get("error", {}) if isinstance(body, dict) else {}
        self.status = status
        self.code = err.get("code", "http_error")
        self.message = err.get("message", str(body))
        self.details = err.get("details", [])
        super().__init__(f"{status} {self.code}: {self.message}")


class RtaClient:
    def __init__(self, base_url: str = "http://127.0.0.1:8080", token: str | None = None,
                 timeout: float = 60.0, transport: httpx.BaseTransport | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        headers = {"User-Agent": "rta-cli"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout,
                                  transport=transport)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> RtaClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise DaemonUnreachable(self.base_url, str(exc) or type(exc).__name__) from exc
        if response.status_code >= 400:
            raise self._error(response)
        return response

    def _error(self, response: httpx.Response) -> ClientError:
        """The daemon's JSON error; anything else means it is not the daemon answering."""
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("error"), dict):
            return NotAnRtaDaemon(self.base_url, response)
        return ApiError(response.status_code, body)

    def _json(self, response: httpx.Response) -> Any:
        try:
            return response.json()
        except ValueError:
            raise NotAnRtaDaemon(self.base_url, response) from None

    def request(self, method: str, path: str, json_body: Any = None,
                params: dict[str, Any] | None = None) -> Any:
        """Send a JSON request and return the decoded JSON answer."""
        kwargs: dict[str, Any] = {"params": _clean(params)}
        if json_body is not None:
            kwargs["json"] = json_body
        response = self._send(method, path, **kwargs)
        if not response.content:
            return None
        return self._json(response)

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=params)

    def post(self, path: str, body: Any = None, **params: Any) -> Any:
        return self.request("POST", path, json_body=body, params=params)

    @contextmanager
    def stream(self, method: str, path: str, json_body: Any = None,
               params: dict[str, Any] | None = None) -> Iterator[httpx.Response]:
        """A streamed response (exports); errors are raised before the body is read."""
        try:
            with self._http.stream(method, path, json=json_body,
                                   params=_clean(params)) as response:
                if response.status_code >= 400:
                    response.read()
                    raise self._error(response)
                yield response
        except httpx.TransportError as exc:
            raise DaemonUnreachable(self.base_url, str(exc) or type(exc).__name__) from exc

    def ingest(self, events: list[dict[str, Any]], partial: bool = False) -> dict[str, Any]:
        """Send one batch (gzip-compressed NDJSON)."""
        body = gzip.compress(b"\n".join(
            json.dumps(e, separators=(",", ":"), ensure_ascii=False).encode() for e in events),
            compresslevel=1)
        response = self._send(
            "POST", "/events/batch", content=body,
            params={"partial": "true"} if partial else None,
            headers={"Content-Type": "application/x-ndjson", "Content-Encoding": "gzip"})
        result: dict[str, Any] = self._json(response)
        return result

    def ingest_arrow(self, body: bytes, partial: bool = False) -> dict[str, Any]:
        """Send one batch as an Arrow IPC stream (`arrow_stream(table)`); a server that
        predates Arrow bodies answers 415 (`ApiError.status`), and the caller sends JSON."""
        response = self._send(
            "POST", "/events/batch", content=body,
            params={"partial": "true"} if partial else None,
            headers={"Content-Type": ARROW_STREAM})
        result: dict[str, Any] = self._json(response)
        return result

    def health(self) -> Any:
        return self.get("/health")

    def stats(self) -> Any:
        return self.get("/stats")


def _clean(params: dict[str, Any] | None) -> dict[str, Any] | None:
    if params is None:
        return None
    return {k: v for k, v in params.items() if v is not None}


def arrow_stream(table: Any, compression: str | None = "lz4") -> bytes:
    """A pyarrow Table as the body of an Arrow batch (buffers lz4-compressed by Arrow)."""
    import pyarrow as pa

    sink = pa.BufferOutputStream()
    options = pa.ipc.IpcWriteOptions(compression=compression)
    with pa.ipc.new_stream(sink, table.schema, options=options) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue().to_pybytes())
