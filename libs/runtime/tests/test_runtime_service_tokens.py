"""Only the gateway may call a service's API: a call without a service token, with one signed
by another secret, meant for another service, stale, or from a caller the route does not trust
is refused; the gateway's is answered."""

from __future__ import annotations

import time

import httpx
import jwt
import pytest
from fastapi import Depends, FastAPI
from pydantic import SecretStr

from concerto_runtime import install_problem_handlers
from concerto_runtime.service_tokens import HEADER, ServiceIdentity, service_token, trusted_callers

SECRET = "a-secret-only-the-services-know-0123456789"


@pytest.fixture
async def order_service():
    app = FastAPI()
    install_problem_handlers(app)
    app.state.service_identity = ServiceIdentity("order", SecretStr(SECRET))

    @app.get("/orders/{order_id}", dependencies=[Depends(trusted_callers("gateway"))])
    async def order(order_id: str) -> dict:
        return {"order_id": order_id}

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://order.test") as client:
        yield client


def stale_token() -> str:
    then = int(time.time()) - 3600
    return jwt.encode({"iss": "gateway", "aud": "order", "iat": then, "exp": then + 60}, SECRET, algorithm="HS256")


# Each token is made when its test runs (made at collection, a 60 s token would have expired).
@pytest.mark.parametrize(
    ("make_token", "status"),
    [
        (lambda: None, 401),
        (lambda: service_token("someone-else's-secret-0123456789abcdef", "gateway", "order"), 401),
        (lambda: service_token(SECRET, "gateway", "payment"), 401),  # meant for another service
        (stale_token, 401),
        (lambda: service_token(SECRET, "monitor", "order"), 403),  # a service, but not one this route trusts
        (lambda: service_token(SECRET, "gateway", "order"), 200),
    ],
    ids=["none", "another secret", "another service", "stale", "untrusted caller", "the gateway"],
)
async def test_a_service_answers_only_the_callers_it_trusts(order_service, make_token, status):
    token = make_token()
    answer = await order_service.get("/orders/ord-1", headers={HEADER: token} if token else {})
    assert answer.status_code == status, answer.text
