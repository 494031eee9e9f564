"""OpenAPI 3.0.3 document and offline Swagger UI for the Certyneo-compatible API.

FastAPI (with Pydantic v2) generates OpenAPI 3.1 documents whose schemas use JSON Schema
2020-12 keywords (``anyOf`` with ``{"type": "null"}``, ``const``, ``examples``, numeric
``exclusiveMinimum``, ``prefixItems``, ``contentMediaType`` ...).  Certyneo clients and most
code generators expect OpenAPI 3.0, so :func:`to_openapi30` rewrites the generated document
into a valid 3.0.3 one.  :func:`install_openapi` wires the converted document into an app
together with a ``/docs`` page that uses the Swagger UI files shipped by the
``swagger-ui-bundle`` package (no CDN, no network).
"""

from __future__ import annotations

import copy
import html
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route

from bot.web.openapi30 import HTTP_METHODS, OPENAPI_VERSION, to_openapi30

__all__ = [
    "DEFAULT_SECURITY_SCHEMES",
    "DOCS_PATH",
    "EXTENSION_KEY",
    "EXTENSION_SUFFIX",
    "OPENAPI_PATH",
    "OPENAPI_VERSION",
    "STATIC_FILES",
    "STATIC_PREFIX",
    "install_openapi",
    "mark_extensions",
    "to_openapi30",
]

OPENAPI_PATH = "/openapi.json"
DOCS_PATH = "/docs"
STATIC_PREFIX = "/docs/static"
EXTENSION_KEY = "x-signbot-extension"
EXTENSION_SUFFIX = "(signbot extension)"

#: Security schemes added by :func:`install_openapi` when the caller passes
#: ``security_schemes=None``.  The API accepts ``Authorization: Bearer sk_test_...`` and,
#: for Certyneo compatibility, the bare key without the ``Bearer`` prefix.
DEFAULT_SECURITY_SCHEMES: dict[str, dict[str, Any]] = {
    "bearerAuth": {
        "type": "http",
        "scheme": "bearer",
        "description": "API key sent as `Authorization: Bearer sk_test_...`.",
    },
    "apiKeyHeader": {
        "type": "apiKey",
        "in": "header",
        "name": "Authorization",
        "description": "API key sent as `Authorization: sk_test_...` (the `Bearer ` prefix "
        "is optional).",
    },
}

#: The only swagger-ui-bundle files served under ``/docs/static/`` and their media types.
STATIC_FILES: dict[str, str] = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui-standalone-preset.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "favicon-32x32.png": "image/png",
    "favicon-16x16.png": "image/png",
}

_STATIC_CACHE_CONTROL = "public, max-age=31536000, immutable"

# --------------------------------------------------------------------------------------
# signbot extensions
# --------------------------------------------------------------------------------------


def mark_extensions(
    doc: dict[str, Any], is_extension: Callable[[str, str], bool]
) -> dict[str, Any]:
    """Flag signbot-only operations.

    ``is_extension(method, path)`` is called with the upper-case HTTP method (``"GET"``) and
    the OpenAPI path template (``"/v1/envelopes/{envelope_id}"``).  Flagged operations get
    ``"x-signbot-extension": true`` and `` (signbot extension)`` appended to their summary.
    Returns a new document; the input is not mutated.
    """
    out = copy.deepcopy(doc)
    paths = out.get("paths")
    if not isinstance(paths, dict):
        return out
    for path, item in paths.items():
        if not isinstance(item, dict):
            continue
        for method in HTTP_METHODS:
            op = item.get(method)
            if not isinstance(op, dict) or not is_extension(method.upper(), path):
                continue
            op[EXTENSION_KEY] = True
            summary = op.get("summary")
            if not summary:
                op["summary"] = EXTENSION_SUFFIX
            elif not str(summary).endswith(EXTENSION_SUFFIX):
                op["summary"] = f"{summary} {EXTENSION_SUFFIX}"
    return out


# --------------------------------------------------------------------------------------
# FastAPI wiring
# --------------------------------------------------------------------------------------


def _swagger_ui_dir() -> Path:
    from swagger_ui_bundle import swagger_ui_path

    return Path(swagger_ui_path)


def _docs_html(title: str, root_path: str, asset_version: str) -> str:
    static = html.escape(f"{root_path}{STATIC_PREFIX}", quote=True)
    version = html.escape(asset_version, quote=True)

    def asset(name: str) -> str:
        return f"{static}/{name}?v={version}"

    config = {
        "url": f"{root_path}{OPENAPI_PATH}",
        "dom_id": "#swagger-ui",
        "deepLinking": True,
        "persistAuthorization": True,
        "displayRequestDuration": True,
        # Swagger UI would otherwise send the spec to validator.swagger.io.
        "validatorUrl": None,
        "layout": "BaseLayout",
    }
    # Safe inside <script>: no "</script>" or "<!--" can survive this escaping.
    config_js = (
        json.dumps(config).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    )
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)} - API documentation</title>
<link rel="stylesheet" type="text/css" href="{asset("swagger-ui.css")}">
<link rel="icon" type="image/png" sizes="32x32" href="{asset("favicon-32x32.png")}">
<link rel="icon" type="image/png" sizes="16x16" href="{asset("favicon-16x16.png")}">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{asset("swagger-ui-bundle.js")}"></script>
<script src="{asset("swagger-ui-standalone-preset.js")}"></script>
<script>
window.ui = SwaggerUIBundle(Object.assign({config_js}, {{
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset]
}}));
</script>
</body>
</html>
"""


def _add_security(
    doc: dict[str, Any],
    security_schemes: dict[str, Any],
    security: list[dict[str, list[str]]] | None,
) -> dict[str, Any]:
    if security_schemes:
        schemes = doc.setdefault("components", {}).setdefault("securitySchemes", {})
        for name, scheme in security_schemes.items():
            schemes.setdefault(name, copy.deepcopy(scheme))
    if security is not None:
        doc["security"] = copy.deepcopy(security)
    return doc


def install_openapi(
    app: FastAPI,
    *,
    extension_routes: Callable[[str, str], bool],
    title: str,
    version: str,
    description: str,
    security_schemes: dict[str, Any] | None = None,
    security: list[dict[str, list[str]]] | None = None,
) -> None:
    """Serve an OpenAPI 3.0.3 document at ``/openapi.json`` and Swagger UI at ``/docs``.

    * ``app.openapi`` is replaced by a cached generator: FastAPI's ``get_openapi`` ->
      :func:`to_openapi30` -> :func:`mark_extensions` (with ``extension_routes``).
    * ``security_schemes``: added to ``components.securitySchemes`` unless the app already
      defines a scheme of the same name.  ``None`` means :data:`DEFAULT_SECURITY_SCHEMES`
      (``bearerAuth`` + ``apiKeyHeader``); pass ``{}`` to add none.
    * ``security``: when given, set as the document's global ``security`` requirement.
    * ``/docs/static/{file}`` serves only :data:`STATIC_FILES` from swagger-ui-bundle.

    The app should be created with ``FastAPI(openapi_url=None, docs_url=None,
    redoc_url=None)``; FastAPI's own CDN-based pages are removed here if present anyway.
    """
    schemes = DEFAULT_SECURITY_SCHEMES if security_schemes is None else security_schemes
    bundle_dir = _swagger_ui_dir()
    asset_version = bundle_dir.name  # e.g. "swagger-ui-4.15.5": busts long-lived caches

    def build() -> dict[str, Any]:
        raw = get_openapi(
            title=title,
            version=version,
            description=description,
            routes=app.routes,
            tags=app.openapi_tags,
            servers=app.servers or None,
            terms_of_service=app.terms_of_service,
            contact=app.contact,
            license_info=app.license_info,
            separate_input_output_schemas=app.separate_input_output_schemas,
        )
        doc = mark_extensions(to_openapi30(raw), extension_routes)
        return _add_security(doc, schemes, security)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build()
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

    # Drop FastAPI's built-in (CDN-based) pages if the app was created with them.
    builtin = {app.openapi_url, app.docs_url, app.redoc_url}
    if app.docs_url and app.swagger_ui_oauth2_redirect_url:
        builtin.add(app.swagger_ui_oauth2_redirect_url)
    builtin.discard(None)
    if builtin:
        app.router.routes[:] = [
            r for r in app.router.routes if not (isinstance(r, Route) and r.path in builtin)
        ]
        app.openapi_url = app.docs_url = app.redoc_url = None

    async def openapi_json(request: Request) -> JSONResponse:
        return JSONResponse(app.openapi())

    async def docs_page(request: Request) -> HTMLResponse:
        root_path = str(request.scope.get("root_path", "")).rstrip("/")
        return HTMLResponse(
            _docs_html(title, root_path, asset_version),
            headers={"Cache-Control": "no-cache"},
        )

    async def docs_static(file: str) -> Response:
        media_type = STATIC_FILES.get(file)
        path = bundle_dir / file
        if media_type is None or not path.is_file():
            raise HTTPException(status_code=404, detail="Not Found")
        return FileResponse(
            path, media_type=media_type, headers={"Cache-Control": _STATIC_CACHE_CONTROL}
        )

    before = len(app.router.routes)
    app.add_api_route(OPENAPI_PATH, openapi_json, methods=["GET", "HEAD"], include_in_schema=False)
    app.add_api_route(
        DOCS_PATH,
        docs_page,
        methods=["GET", "HEAD"],
        include_in_schema=False,
        response_class=HTMLResponse,
    )
    app.add_api_route(
        STATIC_PREFIX + "/{file}", docs_static, methods=["GET", "HEAD"], include_in_schema=False
    )
    # Put these routes first so a catch-all route registered earlier cannot shadow them.
    added: list[BaseRoute] = app.router.routes[before:]
    del app.router.routes[before:]
    app.router.routes[0:0] = added
