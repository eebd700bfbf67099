"""The browser dashboard: the repository's top-level `web/` served at `/`.

`GET /` is the dashboard page; its modules, styles and the vendored Chart.js are served from
their paths under `/`. Files are read once and kept in memory with a strong ETag: HTML, JS and
CSS revalidate on every load (`no-cache`, answered with 304 when unchanged) so an upgrade is
seen at once; vendored files carry their version in the name and are cached for a year.
"""

from __future__ import annotations

import hashlib
import mimetypes
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path, PurePosixPath

from quart import Blueprint, Response, request

from rta.core.errors import NotFoundError

bp = Blueprint("web", __name__)
INDEX = "dashboard.html"
STATIC_DIRS = ("js", "css", "vendor", "img")
TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
         ".mjs": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
         ".svg": "image/svg+xml", ".json": "application/json", ".map": "application/json",
         ".md": "text/markdown; charset=utf-8", ".txt": "text/plain; charset=utf-8",
         ".png": "image/png", ".ico": "image/x-icon", ".woff2": "font/woff2"}


@dataclass(frozen=True)
class Asset:
    body: bytes
    content_type: str
    etag: str
    cache_control: str


_cache: dict[str, Asset] = {}


def web_root() -> Traversable:
    """The directory holding the dashboard. A wheel installs `web/` as the package data
    `rta/web` (pyproject's package-dir); an editable install or a checkout on sys.path has no
    `rta/web` (setuptools' editable finder cannot import a data-only package), so there it
    is the checkout's `web/` beside `rta/`: the files edited there are the ones served."""
    installed = resources.files("rta").joinpath("web")
    if installed.joinpath(INDEX).is_file():
        return installed
    return Path(__file__).resolve().parents[2] / "web"


def load_asset(path: str) -> Asset:
    """The file at `path` under `web_root()` (no traversal outside it), cached in memory."""
    asset = _cache.get(path)
    if asset is not None:
        return asset
    parts = PurePosixPath(path).parts
    if not parts or any(p in ("..", ".") or p.startswith(".") for p in parts) or \
            PurePosixPath(path).is_absolute():
        raise NotFoundError(f"no such file: /{path}", [{"field": "path", "value": path}])
    node = web_root()
    for part in parts:
        node = node.joinpath(part)
    if not node.is_file():
        raise NotFoundError(f"no such file: /{path}", [{"field": "path", "value": path}])
    body = node.read_bytes()
    suffix = PurePosixPath(path).suffix.lower()
    ctype = TYPES.get(suffix) or mimetypes.guess_type(path)[0] or "application/octet-stream"
    immutable = parts[0] == "vendor"
    asset = Asset(body, ctype, '"' + hashlib.sha256(body).hexdigest()[:32] + '"',
                  "public, max-age=31536000, immutable" if immutable else "no-cache")
    _cache[path] = asset
    return asset


def serve(path: str) -> Response:
    asset = load_asset(path)
    headers = {"ETag": asset.etag, "Cache-Control": asset.cache_control,
               "X-Content-Type-Options": "nosniff"}
    if asset.content_type.startswith("text/html"):
        headers["Content-Security-Policy"] = (
            "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; "
            "style-src 'self' 'unsafe-inline'; script-src 'self'")
        headers["Referrer-Policy"] = "same-origin"
    inm = request.headers.get("If-None-Match")
    if inm is not None and asset.etag in [t.strip() for t in inm.split(",")]:
        return Response(b"", status=304, headers=headers)
    return Response(asset.body, status=200, content_type=asset.content_type, headers=headers)


@bp.get("/")
async def index() -> Response:
    return serve(INDEX)


@bp.get(f"/{INDEX}")
async def index_file() -> Response:
    return serve(INDEX)


@bp.get("/favicon.svg")
@bp.get("/favicon.ico")
async def favicon() -> Response:
    return serve("img/favicon.svg")


@bp.get("/<any(js, css, vendor, img):folder>/<path:path>")
async def static_file(folder: str, path: str) -> Response:
    return serve(f"{folder}/{path}")
