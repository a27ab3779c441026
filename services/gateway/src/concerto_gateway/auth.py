"""API keys, roles and rate limits at the edge."""

from __future__ import annotations

import secrets
from enum import StrEnum

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader
from limits import parse
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import MovingWindowRateLimiter

from concerto_runtime import Problem


class Role(StrEnum):
    CUSTOMER = "customer"
    ADMIN = "admin"


api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="`dev-key` (customer) or `dev-admin-key` (admin) locally")


def new_rate_limiter() -> MovingWindowRateLimiter:
    """Each app counts its own calls (create_app keeps one in app.state.rate_limiter)."""
    return MovingWindowRateLimiter(MemoryStorage())


def _role_of(request: Request, key: str | None) -> Role | None:
    settings = request.app.state.settings
    if key is None:
        return None
    # Constant-time comparisons: no timing hints about the keys. As bytes: compare_digest
    # refuses str with non-ASCII characters, and a header may carry any latin-1 text.
    given = key.encode()
    if secrets.compare_digest(given, settings.admin_api_key.get_secret_value().encode()):
        return Role.ADMIN
    if secrets.compare_digest(given, settings.api_key.get_secret_value().encode()):
        return Role.CUSTOMER
    return None


def require(role: Role):
    """Dependency: the caller's key must be valid (401), have the role (403) and be within its rate (429)."""

    async def check(request: Request, key: str | None = Depends(api_key_header)) -> Role:
        caller = _role_of(request, key)
        if caller is None:
            raise Problem(401, "Unauthorized", "a valid X-API-Key header is required")
        if role == Role.ADMIN and caller != Role.ADMIN:
            raise Problem(403, "Forbidden", "this operation needs the admin role")
        limit = parse(request.app.state.settings.rate_limit)
        if not await request.app.state.rate_limiter.hit(limit, "api-key", caller):
            raise Problem(
                429, "Too many requests", f"rate limit of {limit} exceeded; retry shortly", headers={"Retry-After": "1"}
            )
        return caller

    return check
