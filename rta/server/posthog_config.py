"""The PostHog SDKs' configuration routes: `/flags`, `/decide`, `/array/<token>/config[.js]`.

posthog-js asks for its remote config on every page load (first as a script,
`/array/<token>/config.js`, which sets `window._POSTHOG_REMOTE_CONFIG[token]`, then as JSON)
and for feature flags (`POST /flags/?v=2`); older SDKs ask `/decide`. Until the config
arrives it keeps autocapture off. rta has no feature flags, session recording, surveys or
site apps, so every answer says so, in the shapes the SDKs read (posthog-js's
`RemoteConfig` and `FlagsResponse` types), and autocapture is on unless the setting
`posthog_autocapture` is false. The routes are open to every origin like the capture
routes (`security.SDK_PREFIXES`). Nothing here reads or stores what the SDK sends.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from quart import Blueprint, Response, current_app, request

from rta.server.http import drain, json_response

bp = Blueprint("posthog_config", __name__)


def autocapture_enabled() -> bool:
    return bool(current_app.config["RTA_OPTIONS"].get("posthog_autocapture", True))


def remote_config(autocapture: bool) -> dict[str, Any]:
    """posthog-js's `RemoteConfig`: capture only, nothing else switched on."""
    return {
        "supportedCompression": ["gzip", "gzip-js"],
        "autocapture_opt_out": not autocapture,
        "autocaptureExceptions": False,
        "capturePerformance": False,
        "sessionRecording": False,
        "surveys": False,
        "productTours": False,
        "heatmaps": False,
        "captureDeadClicks": False,
        "conversations": False,
        # `$elements_chain` as one string (an array of element objects is not a scalar)
        "elementsChainAsString": True,
        "errorTracking": {"autocaptureExceptions": False, "suppressionRules": []},
        "logs": {"captureConsoleLogs": False},
        "toolbarParams": {},
        "toolbarVersion": "toolbar",
        "isAuthenticated": False,
        "siteApps": [],
    }


def flags_answer() -> dict[str, Any]:
    """`/flags?v=2` (`flags`) and the older shape (`featureFlags`): no flags."""
    return {"flags": {}, "featureFlags": {}, "featureFlagPayloads": {},
            "errorsWhileComputingFlags": False, "quotaLimited": [],
            "requestId": str(uuid.uuid4())}


async def _flags_and_config(with_config: bool) -> Response:
    await drain()  # (the SDK's person and group properties: not needed for no flags)
    answer = flags_answer()
    if with_config:
        autocapture = autocapture_enabled()
        answer.update(remote_config(autocapture))
        answer["config"] = {"enable_collect_everything": autocapture}
    return json_response(answer)


async def flags() -> Response:
    """GET/POST /flags (posthog-js asks `/flags/?v=2`; `config=true` adds the config)."""
    return await _flags_and_config(request.args.get("config", "").lower() in ("true", "1"))


async def decide() -> Response:
    """GET/POST /decide (older SDKs): flags and config in one answer."""
    return await _flags_and_config(True)


for _path, _view in (("/flags", flags), ("/decide", decide)):
    for _variant in (_path, _path + "/"):
        bp.add_url_rule(_variant, _view.__name__ + _variant.replace("/", "_"), _view,
                        methods=["GET", "POST"], strict_slashes=True)


@bp.get("/array/<token>/config")
async def array_config(token: str) -> Response:
    """GET /array/<token>/config: posthog-js's remote config as JSON."""
    return json_response(remote_config(autocapture_enabled()))


@bp.get("/array/<token>/config.js")
async def array_config_js(token: str) -> Response:
    """GET /array/<token>/config.js: the same config as the script posthog-js loads first."""
    payload = json.dumps({"config": remote_config(autocapture_enabled()), "siteApps": []},
                         separators=(",", ":"))
    body = ("(function(){var w=window;w._POSTHOG_REMOTE_CONFIG=w._POSTHOG_REMOTE_CONFIG||{};"
            f"w._POSTHOG_REMOTE_CONFIG[{json.dumps(token)}]={payload};}})();\n")
    return Response(body, 200, content_type="text/javascript; charset=utf-8",
                    headers={"Cache-Control": "no-cache"})
