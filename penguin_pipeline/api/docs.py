"""The API's documentation pages, served with no CDN: they render on a machine without internet.

FastAPI's /docs and /redoc and vetiver's root page (`/` -> `/__docs__`, RapiDoc) load their
JavaScript and CSS from public CDNs, so offline they are blank pages. Here Swagger UI and ReDoc come
from the `fastapi-offline` package's static files (Swagger UI 5, ReDoc 2, ~2.8 MB), mounted on the
app itself, as FastAPI's "self-hosting JavaScript and CSS for docs" describes.

`add_offline_docs(app)` works on any FastAPI app (vetiver's or a plain one): it removes the app's
CDN-backed doc routes and adds its own, so it can move with the app.
"""

from __future__ import annotations

from importlib.resources import files

from fastapi import FastAPI, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

STATIC_URL = "/docs-static"
STATIC_DIR = files("fastapi_offline") / "static"
# Swagger UI's online validator badge would call validator.swagger.io: off.
SWAGGER_PARAMETERS = {"validatorUrl": None}


def add_offline_docs(
    app: FastAPI,
    docs_url: str = "/docs",
    redoc_url: str = "/redoc",
    also_swagger_at: tuple[str, ...] = ("/__docs__",),
) -> None:
    """Serve Swagger UI at `docs_url` (and at each of `also_swagger_at`, vetiver's root page) and
    ReDoc at `redoc_url`, all from local static files."""
    openapi_url = app.openapi_url or "/openapi.json"
    oauth2_url = app.swagger_ui_oauth2_redirect_url or f"{docs_url}/oauth2-redirect"
    swagger_paths = (docs_url, *also_swagger_at)
    replaced = {*swagger_paths, oauth2_url, redoc_url}
    app.router.routes[:] = [
        r for r in app.router.routes if getattr(r, "path", None) not in replaced
    ]
    app.mount(STATIC_URL, StaticFiles(directory=str(STATIC_DIR)), name="docs-static")

    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{app.title} - Swagger UI",
            oauth2_redirect_url=oauth2_url,
            swagger_js_url=f"{root}{STATIC_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{STATIC_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}{STATIC_URL}/favicon.png",
            swagger_ui_parameters={**(app.swagger_ui_parameters or {}), **SWAGGER_PARAMETERS},
        )

    async def oauth2_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_redoc_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{STATIC_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{STATIC_URL}/favicon.png",
            with_google_fonts=False,
        )

    for path in swagger_paths:
        app.add_api_route(
            path, swagger_ui, methods=["GET"], include_in_schema=False, response_class=HTMLResponse
        )
    app.add_api_route(
        oauth2_url,
        oauth2_redirect,
        methods=["GET"],
        include_in_schema=False,
        response_class=HTMLResponse,
    )
    app.add_api_route(
        redoc_url, redoc, methods=["GET"], include_in_schema=False, response_class=HTMLResponse
    )
