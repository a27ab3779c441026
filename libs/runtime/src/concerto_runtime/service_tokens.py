"""Calls between Concerto's own processes carry a service token: a short JWT (HS256) that the
caller signs with the secret the services share, naming who calls (`iss`) and whom (`aud`),
valid for a minute. A service answers only the callers it trusts; everything but its health
checks needs such a token (ADR 12). Without SERVICE_TOKEN_SECRET a service trusts no one."""

from __future__ import annotations

import time

import jwt
from fastapi import Request

from concerto_runtime.problems import Problem

HEADER = "X-Service-Token"
LIFETIME_SECONDS = 60


def service_token(secret: str, caller: str, audience: str) -> str:
    now = int(time.time())
    return jwt.encode({"iss": caller, "aud": audience, "iat": now, "exp": now + LIFETIME_SECONDS}, secret, algorithm="HS256")


def caller_of(secret: str, token: str, audience: str) -> str:
    """Who signed the token, if it is for `audience` and still valid; raises jwt.PyJWTError."""
    claims = jwt.decode(token, secret, algorithms=["HS256"], audience=audience, options={"require": ["iss", "exp", "iat"]})
    return claims["iss"]


def trusted_callers(*callers: str):
    """Dependency for a service's routes: the call must carry a valid token from one of `callers`."""

    async def check(request: Request) -> str:
        runtime = request.app.state.runtime
        secret = runtime.settings.service_token_secret
        token = request.headers.get(HEADER)
        if secret is None or token is None:
            raise Problem(401, "Unauthorized", f"an {HEADER} from {' or '.join(callers)} is required")
        try:
            caller = caller_of(secret.get_secret_value(), token, runtime.name)
        except jwt.PyJWTError:
            raise Problem(401, "Unauthorized", f"the {HEADER} is not valid for the {runtime.name} service") from None
        if caller not in callers:
            raise Problem(403, "Forbidden", f"the {runtime.name} service does not take this call from {caller}")
        return caller

    return check
