"""The operator console: one web page (plain HTML, CSS and JavaScript, shipped in this package)
that a presenter projects to show orders moving through the saga, stuck sagas, dead letters,
the payment gateways and the contexts' consumers.

The page and its assets carry no data, so they are served without a credential. The page signs
its user in: a user name and password go to `POST /console/sign-in`, which relays them to the
identity provider's token endpoint (an OAuth 2.0 password grant, `OAUTH_TOKEN_URL`), and the
access token comes back to the page, which sends it as a bearer token with every call to
/api/v1 like any other client. So the page talks to its own origin only, whichever provider
stands behind it. The operator (`operator` at the development issuer) has the admin role; a demo
customer's token is handed out the same way, for the "Demo customer tokens" card and for curl.
The admin API key still works, as a second way in. None of it is in the OpenAPI schema: the
console is not part of the API."""

from __future__ import annotations

from pathlib import Path

from typing import Annotated

import httpx
from fastapi import APIRouter, Form, Request
from fastapi.responses import FileResponse, JSONResponse

from concerto_gateway.auth import spend
from concerto_runtime import Problem

STATIC = Path(__file__).parent / "static"

# The only files served: a fixed list, so no request path ever reaches the file system.
ASSETS = {
    "console.js": "text/javascript; charset=utf-8",
    "console.css": "text/css; charset=utf-8",
}

# The page holds an operator's token: it runs only its own script, talks only to this gateway and
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


@router.post("/sign-in")
async def sign_in(
    request: Request, username: Annotated[str, Form(min_length=1, max_length=64)], password: Annotated[str, Form(min_length=1, max_length=200)]
) -> JSONResponse:
    """A password grant at the identity provider, for the page: the token, or why not."""
    settings = request.app.state.settings
    token_url = settings.oauth_token_url or f"{settings.oauth_issuer}/token"
    try:
        async with httpx.AsyncClient(timeout=settings.upstream_timeout_seconds) as provider:
            answer = await provider.post(token_url, data={"grant_type": "password", "username": username, "password": password})
    except httpx.HTTPError:
        raise Problem(502, "Identity provider unreachable", "the sign-in could not reach the identity provider") from None
    if answer.status_code == 400 and _oauth_error(answer) == "invalid_grant":
        # A wrong password spends the client address's budget, like a wrong key or token.
        address = request.client.host if request.client else "unknown"
        await spend(request, settings.failed_auth_rate_limit, f"unauthenticated:{address}")
        raise Problem(401, "Unauthorized", "unknown user or wrong password")
    if answer.status_code != 200:
        raise Problem(502, "Identity provider error", f"the identity provider answered {answer.status_code}")
    token = answer.json()
    return JSONResponse({"access_token": token["access_token"], "expires_in": token.get("expires_in")}, headers=HEADERS | {"Cache-Control": "no-store"})


def _oauth_error(answer: httpx.Response) -> str | None:
    """The `error` of an RFC 6749 error answer, if that is what it is."""
    try:
        return answer.json().get("error")
    except ValueError:
        return None


@router.get("/static/{name}")
async def console_asset(name: str) -> FileResponse:
    if name not in ASSETS:
        raise Problem(404, "Not found", "no such console asset")
    return FileResponse(STATIC / name, media_type=ASSETS[name], headers=HEADERS)
