"""The console's sign-in: the gateway relays a user name and password to the identity provider
(here the real development issuer, on a local port) and hands the page the access token, which
the gateway then accepts like any client's. A wrong password is a 401 that spends the client
address's failed-sign-in budget; a provider out of reach is a 502."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest

from concerto_dev_issuer.app import IssuerSettings, create_app as create_issuer, signing_key
from concerto_gateway.app import create_app
from concerto_gateway.settings import GatewaySettings
from concerto_runtime.testing import local_server

PROBLEM_JSON = "application/problem+json"


@pytest.fixture(scope="module")
async def issuer_url(tmp_path_factory) -> AsyncIterator[str]:
    """The development issuer, and a stand-in order context that lists no orders."""
    settings = IssuerSettings(OAUTH_AUDIENCE="concerto-api", DEV_ISSUER_PASSWORD="demo")
    app = create_issuer(settings, signing_key(tmp_path_factory.mktemp("issuer") / "key.pem"))

    @app.get("/orders")
    async def no_orders(limit: int = 20, offset: int = 0) -> dict:
        return {"items": [], "total": 0, "limit": limit, "offset": offset}

    async with local_server(app) as url:
        settings.issuer = url  # what its tokens say, now that the port is known
        yield url


@asynccontextmanager
async def gateway(issuer_url: str, **overrides) -> AsyncIterator[httpx.AsyncClient]:
    settings = GatewaySettings(**{
        "oauth_issuer": issuer_url, "oauth_audience": "concerto-api", "order_url": issuer_url, "rate_limit": "1000/second",
    } | overrides)  # fmt: skip
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway.test") as client:
            yield client


async def sign_in(client: httpx.AsyncClient, username: str, password: str) -> httpx.Response:
    return await client.post("/console/sign-in", data={"username": username, "password": password})


async def test_a_signed_in_customer_gets_a_token_the_gateway_accepts(issuer_url):
    async with gateway(issuer_url) as client:
        answer = await sign_in(client, "cust-42", "demo")
        token = answer.json()["access_token"]
        orders = await client.get("/api/v1/orders", headers={"Authorization": f"Bearer {token}"})
        admin = await client.get("/api/v1/admin/sagas", headers={"Authorization": f"Bearer {token}"})

    assert answer.status_code == 200 and answer.headers["Cache-Control"] == "no-store"
    assert orders.status_code == 200 and orders.json()["total"] == 0
    assert admin.status_code == 403, "a customer's token is not an operator's"


async def test_a_wrong_password_is_401_and_spends_the_failed_sign_in_budget(issuer_url):
    async with gateway(issuer_url, failed_auth_rate_limit="2/minute") as client:
        answers = [await sign_in(client, "operator", "not-the-password") for _ in range(3)]
        operator = await sign_in(client, "operator", "demo")

    assert [a.status_code for a in answers] == [401, 401, 429]
    assert answers[0].headers["content-type"] == PROBLEM_JSON
    assert "Retry-After" in answers[2].headers
    assert operator.status_code == 200, "the right password is never refused for the wrong ones before it"


async def test_an_unreachable_identity_provider_is_502(issuer_url):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))  # bound, never listening: connection refused
        refused = f"http://127.0.0.1:{sock.getsockname()[1]}/token"
        async with gateway(issuer_url, oauth_token_url=refused) as client:
            answer = await sign_in(client, "operator", "demo")

    assert answer.status_code == 502 and answer.headers["content-type"] == PROBLEM_JSON


async def test_the_sign_in_form_fields_are_bounded(issuer_url):
    async with gateway(issuer_url) as client:
        answer = await sign_in(client, "x" * 65, "demo")

    assert answer.status_code == 422
