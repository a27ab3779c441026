"""Calls between Concerto's own processes carry a service token: a short JWT (HS256) that the
caller signs with the secret the services share, naming who calls (`iss`) and whom (`aud`),
valid for a minute. A service answers only the callers it trusts; everything but its health
checks needs such a token (ADR 12). Without SERVICE_TOKEN_SECRET a service trusts no one."""

from __future__ import annotations

import time
from dataclasses import dataclass

import httpx
import jwt
from fastapi import Request
from pydantic import SecretStr

from concerto_runtime.problems import Problem

HEADER = "X-Service-Token"
LIFETIME_SECONDS = 60


def service_token(secret: str, caller: str, audience: str) -> str:
    now = int(time.time())
    return jwt.encode({"iss": caller, "aud": audience, "iat": now, "exp": now + LIFETIME_SECONDS}, secret, algorithm="HS256")


class SignedAs(httpx.Auth):
    """An httpx auth that signs each request as `caller`, for `audience`, when it is sent."""

    def __init__(self, secret: str, caller: str, audience: str) -> None:
        self.secret, self.caller, self.audience = secret, caller, audience

    def auth_flow(self, request: httpx.Request):
        request.headers[HEADER] = service_token(self.secret, self.caller, self.audience)
        yield request


def caller_of(secret: str, token: str, audience: str) -> str:
    """Who signed the token, if it is for `audience` and still valid; raises jwt.PyJWTError."""
    claims = jwt.decode(token, secret, algorithms=["HS256"], audience=audience, options={"require": ["iss", "exp", "iat"]})
    return claims["iss"]


@dataclass(frozen=True)
class ServiceIdentity:
    """Who an app is (the audience its callers' tokens must name) and the secret it checks them
    with. Every app that takes service tokens keeps one in `app.state.service_identity`."""

    name: str
    secret: SecretStr | None


def trusted_callers(*callers: str):
    """Dependency for an app's routes: the call must carry a valid token from one of `callers`."""

    async def check(request: Request) -> str:
        identity: ServiceIdentity = request.app.state.service_identity
        token = request.headers.get(HEADER)
        if identity.secret is None or token is None:
            raise Problem(401, "Unauthorized", f"an {HEADER} from {' or '.join(callers)} is required")
        try:
            caller = caller_of(identity.secret.get_secret_value(), token, identity.name)
        except jwt.PyJWTError:
            raise Problem(401, "Unauthorized", f"the {HEADER} is not valid for the {identity.name} service") from None
        if caller not in callers:
            raise Problem(403, "Forbidden", f"the {identity.name} service does not take this call from {caller}")
        return caller

    return check
