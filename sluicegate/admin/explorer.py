"""``/admin/docs``: an interactive explorer of the Admin API, served by the gateway itself.

Swagger UI's files come from the ``swagger-ui-py`` package, so nothing is
fetched from a CDN: the explorer works on a machine with no way out. The page
sits behind the admin key like the rest of ``/admin``; a browser, which cannot
send a bearer token on its own, is asked for the key as the password of HTTP
Basic authentication (any user name), and then sends it with every request
the explorer makes.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response

from sluicegate.errors import NotFound


def _static() -> Path | None:
    # Found without importing the package: its own code is for other frameworks.
    spec = importlib.util.find_spec("swagger_ui")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "static"


_STATIC = _static()
# Only what the page loads; the package holds an editor too.
ASSETS = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "favicon-32x32.png": "image/png",
}
_PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>sluicegate Admin API</title>
  <link rel="icon" type="image/png" href="/admin/docs/favicon-32x32.png">
  <link rel="stylesheet" href="/admin/docs/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/admin/docs/swagger-ui-bundle.js"></script>
  <script src="/admin/docs/explorer.js"></script>
</body>
</html>
"""
# validatorUrl: null keeps Swagger UI from calling its public validator.
_SCRIPT = """window.onload = function () {
  window.ui = SwaggerUIBundle({
    url: "/admin/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    validatorUrl: null,
    tryItOutEnabled: true
  });
};
"""
_NO_STORE = {"cache-control": "no-store"}


async def page(request: Request) -> Response:
    return HTMLResponse(_PAGE, headers=_NO_STORE)


async def asset(request: Request) -> Response:
    name = request.path_params["asset"]
    if name == "explorer.js":
        return Response(_SCRIPT, media_type="text/javascript", headers=_NO_STORE)
    media_type = ASSETS.get(name)
    if media_type is None or _STATIC is None:
        raise NotFound(f"Unknown path GET {request.url.path}.", code="unknown_path")
    return FileResponse(_STATIC / name, media_type=media_type)
