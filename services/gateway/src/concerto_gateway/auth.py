"""Who is calling, and how often: bearer tokens, API keys, roles and rate limits at the edge.

Three kinds of caller (ADR 11):
- a **customer**, signed in with an OAuth 2.0 bearer token (a JWT from the identity provider,
  verified against its JWKS): they act for themselves only, so their customer id comes from the
  token, never from the request;
- an **operator**, with a token carrying the `admin` role or the admin API key;
- a **trusted partner** (scripts, the README's curl examples), with the customer API key: may act
  for any customer. `API_KEYS_ENABLED=false` turns both keys off.
Every caller has its own rate budget; calls that fail to authenticate count against the
client's address, so guessing keys or tokens is limited too.
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass
from enum import StrEnum

import jwt
from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from limits import parse
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import MovingWindowRateLimiter

from concerto_runtime import Problem


class Role(StrEnum):
    CUSTOMER = "customer"
    ADMIN = "admin"


api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="`dev-key` (trusted partner) or `dev-admin-key` (admin) locally")
bearer = HTTPBearer(auto_error=False, bearerFormat="JWT", description="An access token from the identity provider (locally: the dev issuer)")


@dataclass(frozen=True)
class Caller:
    role: Role
    customer_id: str | None  # a signed-in customer; None for an operator or a partner
    budget: str  # whose rate budget the call spends

    def may_act_for(self, customer_id: str) -> bool:
        return self.customer_id is None or self.customer_id == customer_id


class TokenVerifier:
    """Checks an access token: signed by a key in the issuer's JWKS, for our audience, not expired."""

    def __init__(self, issuer: str, audience: str, jwks_url: str) -> None:
        self.issuer, self.audience = issuer, audience
        self._keys = jwt.PyJWKClient(jwks_url, cache_keys=True, lifespan=300, timeout=5)

    async def claims(self, token: str) -> dict:
        # The JWKS is fetched over HTTP on first use (and on an unknown key id): off the event loop.
        key = await asyncio.to_thread(self._keys.get_signing_key_from_jwt, token)
        return jwt.decode(
            token, key.key, algorithms=["RS256"], audience=self.audience, issuer=self.issuer, options={"require": ["exp", "iat", "sub"]}
        )


def new_rate_limiter() -> MovingWindowRateLimiter:
    """Each app counts its own calls (create_app keeps one in app.state.rate_limiter)."""
    return MovingWindowRateLimiter(MemoryStorage())


def _key_caller(request: Request, key: str) -> Caller | None:
    settings = request.app.state.settings
    if not settings.api_keys_enabled:
        return None
    # Constant-time comparisons: no timing hints about the keys. As bytes: compare_digest
    # refuses str with non-ASCII characters, and a header may carry any latin-1 text.
    given = key.encode()
    if secrets.compare_digest(given, settings.admin_api_key.get_secret_value().encode()):
        return Caller(Role.ADMIN, None, "api-key:admin")
    if secrets.compare_digest(given, settings.api_key.get_secret_value().encode()):
        return Caller(Role.CUSTOMER, None, "api-key:partner")
    return None


async def _token_caller(request: Request, token: str) -> Caller | None:
    try:
        claims = await request.app.state.token_verifier.claims(token)
    except jwt.PyJWKClientConnectionError:
        raise Problem(503, "Service unavailable", "the identity provider's keys cannot be fetched", headers={"Retry-After": "5"}) from None
    except jwt.PyJWTError:
        return None
    if "admin" in claims.get("roles", []):
        return Caller(Role.ADMIN, None, f"operator:{claims['sub']}")
    return Caller(Role.CUSTOMER, str(claims["sub"]), f"customer:{claims['sub']}")


async def _spend(request: Request, limit_setting: str, budget: str) -> None:
    limit = parse(limit_setting)
    if not await request.app.state.rate_limiter.hit(limit, budget):
        raise Problem(429, "Too many requests", f"rate limit of {limit} exceeded; retry shortly", headers={"Retry-After": "1"})


def require(role: Role):
    """Dependency: a valid token or key (401), the role (403), within its budget (429)."""

    async def check(
        request: Request, key: str | None = Depends(api_key_header), token: HTTPAuthorizationCredentials | None = Depends(bearer)
    ) -> Caller:
        settings = request.app.state.settings
        caller = (await _token_caller(request, token.credentials) if token else None) or (_key_caller(request, key) if key else None)
        if caller is None:
            address = request.client.host if request.client else "unknown"
            await _spend(request, settings.failed_auth_rate_limit, f"unauthenticated:{address}")
            raise Problem(401, "Unauthorized", "a valid bearer token (or X-API-Key) is required", headers={"WWW-Authenticate": "Bearer"})
        if role == Role.ADMIN and caller.role != Role.ADMIN:
            raise Problem(403, "Forbidden", "this operation needs the admin role")
        await _spend(request, settings.rate_limit, caller.budget)
        return caller

    return check
