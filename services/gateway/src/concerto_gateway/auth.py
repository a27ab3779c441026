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
import math
import secrets
import time
from dataclasses import dataclass
from enum import StrEnum

import jwt
from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from limits import parse
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string

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
    # Who calls: `customer:<sub>`, `operator:<sub>` or `api-key:<role>`. Their rate budget is
    # kept under this name, and an operator's audited decisions name them by it.
    budget: str

    def may_act_for(self, customer_id: str) -> bool:
        return self.customer_id is None or self.customer_id == customer_id


class TokenVerifier:
    """Checks an access token: signed by a key in the issuer's JWKS, for our audience, not expired."""

    def __init__(self, issuer: str, audience: str, jwks_url: str, keys_lifespan_seconds: float = 300) -> None:
        self.issuer, self.audience = issuer, audience
        # The key set is cached whole and fetched again once it is `keys_lifespan_seconds` old (or
        # for a key id it lacks, at most every 30 s), so a key the issuer has withdrawn is trusted
        # no longer than that. No per-key cache (`cache_keys`): pyjwt keeps those keys until restart.
        self._keys = jwt.PyJWKClient(jwks_url, cache_keys=False, cache_jwk_set=True, lifespan=keys_lifespan_seconds, timeout=5)

    async def claims(self, token: str) -> dict:
        # The JWKS is fetched over HTTP on first use (and on an unknown key id): off the event loop.
        key = await asyncio.to_thread(self._keys.get_signing_key_from_jwt, token)
        return jwt.decode(
            token, key.key, algorithms=["RS256"], audience=self.audience, issuer=self.issuer, options={"require": ["exp", "iat", "sub"]}
        )


def new_rate_limiter(storage_uri: str) -> MovingWindowRateLimiter:
    """The budgets, counted where RATE_LIMIT_STORAGE_URI says: `memory://` in this process, or a
    store several gateway replicas share (`redis://host:6379`), so a caller's budget is one
    budget however the calls are spread. The gateway uses the storage's asyncio flavour."""
    return MovingWindowRateLimiter(storage_from_string(storage_uri if storage_uri.startswith("async+") else f"async+{storage_uri}"))


KEY_HOLDERS = (("admin_api_key", Caller(Role.ADMIN, None, "api-key:admin")), ("api_key", Caller(Role.CUSTOMER, None, "api-key:partner")))


def _key_caller(request: Request, key: str) -> Caller | None:
    settings = request.app.state.settings
    if not settings.api_keys_enabled:
        return None
    # Constant-time comparisons: no timing hints about the keys. As bytes: compare_digest
    # refuses str with non-ASCII characters, and a header may carry any latin-1 text.
    given = key.encode()
    for setting, caller in KEY_HOLDERS:
        configured = getattr(settings, setting)
        if configured and configured.get_secret_value() and secrets.compare_digest(given, configured.get_secret_value().encode()):
            return caller
    return None


async def _token_caller(request: Request, token: str) -> Caller | None:
    try:
        claims = await request.app.state.token_verifier.claims(token)
    except jwt.PyJWKClientConnectionError:
        raise Problem(503, "Service unavailable", "the identity provider's keys cannot be fetched", headers={"Retry-After": "5"}) from None
    except jwt.PyJWTError:
        return None
    roles = claims.get("roles", [])
    # A list of role names or no way in: `"admin" in roles` holds for a string such as "not-admin".
    if not isinstance(roles, list) or not all(isinstance(role, str) for role in roles):
        return None
    if "admin" in roles:
        return Caller(Role.ADMIN, None, f"operator:{claims['sub']}")
    return Caller(Role.CUSTOMER, str(claims["sub"]), f"customer:{claims['sub']}")


async def spend(request: Request, limit_setting: str, budget: str) -> None:
    """One call from `budget` (429 with Retry-After once it is spent)."""
    limit, limiter = parse(limit_setting), request.app.state.rate_limiter
    if not await limiter.hit(limit, budget):
        # Retry-After: when the oldest call in the window leaves it and the budget has room again.
        reset_at = (await limiter.get_window_stats(limit, budget)).reset_time
        retry_after = max(1, math.ceil(reset_at - time.time()))
        raise Problem(429, "Too many requests", f"rate limit of {limit} exceeded", headers={"Retry-After": str(retry_after)})


def failed_auth_budget(request: Request) -> str:
    """Whose budget a call without a valid credential spends: its client address's (a wrong key,
    token or console sign-in alike). The address is the peer's, or the one X-Forwarded-For
    names when the peer is one of TRUSTED_PROXIES (create_app)."""
    return f"unauthenticated:{request.client.host if request.client else 'unknown'}"


def require(role: Role):
    """Dependency: a valid token or key (401), the role (403), within its budget (429)."""

    async def check(
        request: Request, key: str | None = Depends(api_key_header), token: HTTPAuthorizationCredentials | None = Depends(bearer)
    ) -> Caller:
        settings = request.app.state.settings
        # One credential per call: with a token and a key (even an empty one), which one is the
        # caller? Neither.
        if "authorization" in request.headers and "x-api-key" in request.headers:
            caller = None
        else:
            caller = await _token_caller(request, token.credentials) if token else _key_caller(request, key) if key else None
        if caller is None:
            await spend(request, settings.failed_auth_rate_limit, failed_auth_budget(request))
            raise Problem(
                401, "Unauthorized", "one valid credential is required: a bearer token or an X-API-Key", headers={"WWW-Authenticate": "Bearer"}
            )
        if role == Role.ADMIN and caller.role != Role.ADMIN:
            raise Problem(403, "Forbidden", "this operation needs the admin role")
        await spend(request, settings.rate_limit, caller.budget)
        return caller

    return check
