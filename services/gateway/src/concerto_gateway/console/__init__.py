"""The operator console: one web page (plain HTML, CSS and JavaScript, shipped in this package)
that a presenter projects to show orders moving through the saga, stuck sagas, dead letters,
the payment gateways and the contexts' consumers.

The page and its assets carry no data, so they are served without an API key; the page asks
for the admin key and sends it as X-API-Key with every call to /api/v1, like any other client.
It is kept out of the OpenAPI schema: it is not part of the API."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, JSONResponse

from concerto_runtime import Problem

STATIC = Path(__file__).parent / "static"

# The only files served: a fixed list, so no request path ever reaches the file system.
ASSETS = {
    "console.js": "text/javascript; charset=utf-8",
    "console.css": "text/css; charset=utf-8",
}

# The page holds an admin key: it runs only its own script, talks only to this gateway and
# cannot be framed. Temporal UI links are plain navigations, which the policy does not limit.
HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # Edited during a workshop: always revalidate, so a reload shows the change.
    "Cache-Control": "no-cache",
}

router = APIRouter(prefix="/console", include_in_schema=False)


@router.get("")
async def console_page() -> FileResponse:
    return FileResponse(STATIC / "index.html", media_type="text/html; charset=utf-8", headers=HEADERS)


@router.get("/config.json")
async def console_config(request: Request) -> JSONResponse:
    """What the page needs to know besides the API: where the Temporal UI is, as a browser reaches it."""
    settings = request.app.state.settings
    return JSONResponse(
        {"temporal_ui_url": settings.temporal_ui_url.rstrip("/"), "temporal_namespace": settings.temporal_namespace},
        headers=HEADERS,
    )


@router.get("/static/{name}")
async def console_asset(name: str) -> FileResponse:
    if name not in ASSETS:
        raise Problem(404, "Not found", "no such console asset")
    return FileResponse(STATIC / name, media_type=ASSETS[name], headers=HEADERS)
