"""The operator console: one web page (plain HTML, CSS and JavaScript, shipped in this package)
that a presenter projects to show orders moving through the saga, stuck sagas, dead letters,
the payment gateways and the contexts' consumers.

The page and its assets carry no data, so they are served without a credential.

Signing in: the page's form sends a user name and password to `POST /console/sign-in` (form
fields `username`, `password`). The gateway relays them to the identity provider's token endpoint
as an OAuth 2.0 password grant (`OAUTH_TOKEN_URL`, by default the issuer's `/token`) and answers
`{"access_token", "expires_in"}`; a wrong password is a 401 problem, a provider out of reach or
answering nonsense a 502. The page keeps the token in its tab (sessionStorage) and sends it as a
bearer token with every call to /api/v1, like any other client: the gateway checks it there, and
the operator (`operator` at the development issuer) has the admin role. So the page talks to its
own origin only (its CSP allows nothing else), whichever provider stands behind the gateway.

Every sign-in is a guess at a password: before the provider is asked, it spends one of the client
address's failed-credential budget (`FAILED_AUTH_RATE_LIMIT`, shared with wrong keys and tokens on
/api/v1), in one atomic step (`limits`' hit), so fifty tries at once get no more guesses than the
budget holds. Nothing is given back, for a wrong password or a right one. Once the budget is spent,
sign-ins from that address are refused (429) before any password reaches the provider, so a right
guess cannot be told from a wrong one by the answer.

A demo customer's token is handed out the same way, for the "Demo customer tokens" card and for
curl. The admin API key still works, as a second way in. None of it is in the OpenAPI schema: the
console is not part of the API."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import httpx
from fastapi import APIRouter, Form, Request
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel, ValidationError

from concerto_gateway.auth import failed_auth_budget, spend
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


class _TokenAnswer(BaseModel):
    """What the page needs of an RFC 6749 token answer."""

    access_token: str
    expires_in: int | None = None


@router.post("/sign-in")
async def sign_in(
    request: Request, username: Annotated[str, Form(min_length=1, max_length=64)], password: Annotated[str, Form(min_length=1, max_length=200)]
) -> JSONResponse:
    """A password grant at the identity provider, for the page: the token, or why not."""
    settings = request.app.state.settings
    # Spent before the provider is asked, and at once (checked then spent, a burst would pass).
    await spend(request, settings.failed_auth_rate_limit, failed_auth_budget(request))
    token_url = settings.oauth_token_url or f"{settings.oauth_issuer}/token"
    try:
        async with httpx.AsyncClient(timeout=settings.upstream_timeout_seconds) as provider:
            answer = await provider.post(token_url, data={"grant_type": "password", "username": username, "password": password})
    except httpx.HTTPError:
        raise Problem(502, "Identity provider unreachable", "the sign-in could not reach the identity provider") from None
    # RFC 6749 says 400 for a wrong password; some providers answer 401 or 403.
    if answer.is_client_error and _oauth_error(answer) == "invalid_grant":
        raise Problem(401, "Unauthorized", "unknown user or wrong password")
    if answer.status_code != 200:
        raise Problem(502, "Identity provider error", f"the identity provider answered {answer.status_code}")
    try:
        token = _TokenAnswer.model_validate_json(answer.content)
    except ValidationError:
        raise Problem(502, "Identity provider error", "the identity provider's answer holds no access token") from None
    return JSONResponse(token.model_dump(), headers=HEADERS | {"Cache-Control": "no-store"})


def _oauth_error(answer: httpx.Response) -> str | None:
    """The `error` of an RFC 6749 error answer, if that is what it is."""
    try:
        body = answer.json()
    except ValueError:
        return None
    return body.get("error") if isinstance(body, dict) else None


@router.get("/static/{name}")
async def console_asset(name: str) -> FileResponse:
    if name not in ASSETS:
        raise Problem(404, "Not found", "no such console asset")
    return FileResponse(STATIC / name, media_type=ASSETS[name], headers=HEADERS)
