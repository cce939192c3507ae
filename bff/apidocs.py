"""``GET /schema``: Swagger UI served from the package, with no third-party origin.

Litestar's render plugins load their scripts from a CDN. On a government intranet there is
none, and a third-party script on the identity provider's own origin could read anything a
citizen or an operator does on it. So the Swagger UI distribution files come from the
``swagger-ui-py`` package (pinned in ``requirements.lock``) and are served under
``/schema/assets/``; the page has no inline script (its start-up code is ``/schema/ui.js``)
and every ``/schema`` response carries a Content-Security-Policy that allows only this origin.
"""

from __future__ import annotations

import html
import importlib.util
from pathlib import Path
from typing import Any

from litestar import Request, Router, get
from litestar.datastructures import ResponseHeader
from litestar.openapi.plugins import OpenAPIRenderPlugin
from litestar.static_files import create_static_files_router

__all__ = ["DOCS_CSP", "OfflineSwaggerPlugin", "docs_router", "swagger_assets"]

DOCS_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
"""Swagger UI sets inline styles and data: images; scripts and requests stay on this origin."""


def swagger_assets() -> Path:
    """The Swagger UI ``dist`` folder inside the installed ``swagger-ui-py`` package.

    Found without importing the package (its ``__init__`` loads web-framework adapters).
    """
    spec = importlib.util.find_spec("swagger_ui")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the swagger-ui-py package is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "static"


_INIT_JS = b"""window.ui = SwaggerUIBundle({
  url: "%(base)s/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
  layout: "BaseLayout"
});
"""


class OfflineSwaggerPlugin(OpenAPIRenderPlugin):
    """Swagger UI at the documentation root, every asset same-origin."""

    def __init__(self, base: str = "/schema") -> None:
        """Args: base: the OpenAPI router's path (``OpenAPIConfig.path``)."""
        self.base = base.rstrip("/")
        super().__init__(path="/swagger", favicon=f'<link rel="icon" href="{self.base}/assets/favicon-32x32.png">')

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        """The page: stylesheet, the two Swagger UI bundles, then ``ui.js``; nothing inline."""
        title = str(openapi_schema.get("info", {}).get("title", "API"))
        assets = f"{self.base}/assets"
        return (
            "<!DOCTYPE html><html><head>"
            f'<meta charset="utf-8"><title>{html.escape(title)}</title>{self.favicon}'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<link rel="stylesheet" href="{assets}/swagger-ui.css">'
            '</head><body><div id="swagger-ui"></div>'
            f'<script src="{assets}/swagger-ui-bundle.js"></script>'
            f'<script src="{assets}/swagger-ui-standalone-preset.js"></script>'
            f'<script src="{self.base}/ui.js"></script>'
            "</body></html>"
        ).encode()

    def receive_router(self, router: Router) -> None:
        """Add the assets and the start-up script to the documentation router."""
        init = _INIT_JS % {b"base": self.base.encode()}

        @get("/ui.js", media_type="text/javascript", include_in_schema=False, sync_to_thread=False)
        def ui_js() -> bytes:
            return init

        router.register(ui_js)
        router.register(create_static_files_router(path="/assets", directories=[swagger_assets()], name="apidocs"))


def docs_router(base: str = "/schema") -> Router:
    """The router ``OpenAPIConfig(openapi_router=...)`` fills: every answer carries the CSP."""
    return Router(
        path=base,
        route_handlers=[],
        # The documentation pages are not part of the API they document.
        include_in_schema=False,
        response_headers=[
            ResponseHeader(name="Content-Security-Policy", value=DOCS_CSP),
            ResponseHeader(name="X-Content-Type-Options", value="nosniff"),
        ],
    )
