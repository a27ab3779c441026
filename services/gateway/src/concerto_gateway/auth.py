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
_limiter = MovingWindowRateLimiter(MemoryStorage())


def _role_of(request: Request, key: str | None) -> Role | None:
    settings = request.app.state.settings
    if key is None:
        return None
    # Constant-time comparisons: no timing hints about the keys.
    if secrets.compare_digest(key, settings.admin_api_key.get_secret_value()):
        return Role.ADMIN
    if secrets.compare_digest(key, settings.api_key.get_secret_value()):
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
        if not await _limiter.hit(limit, "api-key", caller):
            raise Problem(429, "Too many requests", f"rate limit of {limit} exceeded; retry shortly")
        return caller

    return check
