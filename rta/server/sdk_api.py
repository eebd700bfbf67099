"""Registration point for this API area; its routes land with the issue that builds it."""

from __future__ import annotations

from quart import Blueprint

bp = Blueprint("sdk_api", __name__)
