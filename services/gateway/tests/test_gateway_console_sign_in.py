"""The console's sign-in: the gateway relays a user name and password to the identity provider
(here the real development issuer, on a local port) and hands the page the access token, which
the gateway then accepts like any client's. Every sign-in spends one of the client address's
failed-credential budget (the one wrong keys and tokens spend) before the provider is asked, so
a burst gets no more guesses than the budget; a wrong password is a 401; once the budget is
spent, no password reaches the provider, the right one included. A provider out of reach, or
answering without a token, is a 502."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

import httpx
import pytest
from fastapi import Form
from fastapi.responses import JSONResponse

from concerto_dev_issuer.app import IssuerSettings, create_app as create_issuer, signing_key
from concerto_gateway.app import create_app
from concerto_gateway.settings import GatewaySettings
from concerto_runtime.testing import local_server

PROBLEM_JSON = "application/problem+json"
GUESSES: list[str] = []  # the passwords that reached the counting provider


@pytest.fixture(scope="module")
async def issuer_url(tmp_path_factory) -> AsyncIterator[str]:
    """The development issuer, standing in too for the order context (no orders), the saga
    monitor (no sagas), a provider that answers 200 without a token and one that refuses a
    password with 403."""
    settings = IssuerSettings(OAUTH_AUDIENCE="concerto-api", DEV_ISSUER_PASSWORD="demo")
    app = create_issuer(settings, signing_key(tmp_path_factory.mktemp("issuer") / "key.pem"))

    @app.get("/orders")
    async def no_orders(limit: int = 20, offset: int = 0) -> dict:
        return {"items": [], "total": 0, "limit": limit, "offset": offset}

    @app.get("/sagas")
    async def no_sagas(limit: int = 20, offset: int = 0) -> dict:
        return {"items": [], "total": 0, "limit": limit, "offset": offset}

    @app.post("/no-token")
    async def no_token() -> dict:
        return {"token_type": "Bearer"}

    @app.post("/counting-token")  # refuses every password, and counts them
    async def counting(password: Annotated[str, Form()]) -> JSONResponse:
        GUESSES.append(password)
        return JSONResponse({"error": "invalid_grant", "error_description": "wrong password"}, status_code=400)

    @app.post("/refuses-with-403")  # as Auth0 answers a wrong password
    async def refuses() -> JSONResponse:
        return JSONResponse({"error": "invalid_grant", "error_description": "Wrong email or password."}, status_code=403)

    async with local_server(app) as url:
        settings.issuer = url  # what its tokens say, now that the port is known
        yield url


@asynccontextmanager
async def gateway(issuer_url: str, **overrides) -> AsyncIterator[httpx.AsyncClient]:
    settings = GatewaySettings(**{
        "oauth_issuer": issuer_url, "oauth_audience": "concerto-api", "order_url": issuer_url, "monitor_url": issuer_url, "rate_limit": "1000/second",
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


async def test_the_operators_token_opens_the_admin_api(issuer_url):
    async with gateway(issuer_url) as client:
        answer = await sign_in(client, "operator", "demo")
        sagas = await client.get("/api/v1/admin/sagas", headers={"Authorization": f"Bearer {answer.json()['access_token']}"})

    assert answer.status_code == 200 and answer.json()["expires_in"] > 0
    assert sagas.status_code == 200, sagas.text


async def test_a_wrong_password_is_401_and_repeated_ones_are_429_even_for_the_right_password(issuer_url):
    async with gateway(issuer_url, failed_auth_rate_limit="4/minute") as client:
        signed_in = await sign_in(client, "operator", "demo")  # a right guess spends one too
        wrong = [await sign_in(client, "operator", "not-the-password") for _ in range(4)]
        right = await sign_in(client, "operator", "demo")

    assert signed_in.status_code == 200
    assert [a.status_code for a in wrong] == [401, 401, 401, 429]
    assert wrong[0].headers["content-type"] == PROBLEM_JSON and wrong[0].json()["status"] == 401
    assert wrong[3].headers["content-type"] == PROBLEM_JSON and int(wrong[3].headers["Retry-After"]) >= 1
    assert right.status_code == 429, "once the failures are spent, a right guess must look like a wrong one"


async def test_a_burst_of_parallel_sign_ins_gets_no_more_guesses_than_the_budget(issuer_url):
    """Fifty tries at once: the budget is spent before the provider is asked, in one step, so
    at most the budget's five passwords reach it and the other 45 are 429s."""
    GUESSES.clear()
    async with gateway(issuer_url, failed_auth_rate_limit="5/minute", oauth_token_url=f"{issuer_url}/counting-token") as client:
        answers = await asyncio.gather(*(sign_in(client, "operator", f"guess-{n}") for n in range(50)))

    assert len(GUESSES) <= 5, f"{len(GUESSES)} passwords reached the provider"
    assert sorted(a.status_code for a in answers) == [401] * len(GUESSES) + [429] * (50 - len(GUESSES))
    assert all(a.headers["content-type"] == PROBLEM_JSON for a in answers)


async def test_wrong_credentials_on_the_api_spend_the_same_budget_as_wrong_passwords(issuer_url):
    async with gateway(issuer_url, failed_auth_rate_limit="2/minute") as client:
        refused = [await client.get("/api/v1/orders", headers={"Authorization": "Bearer not-a-token"}) for _ in range(2)]
        answer = await sign_in(client, "operator", "demo")

    assert [r.status_code for r in refused] == [401, 401]
    assert answer.status_code == 429 and answer.headers["content-type"] == PROBLEM_JSON


async def test_an_unreachable_identity_provider_is_502(issuer_url):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))  # bound, never listening: connection refused
        refused = f"http://127.0.0.1:{sock.getsockname()[1]}/token"
        async with gateway(issuer_url, oauth_token_url=refused) as client:
            answer = await sign_in(client, "operator", "demo")

    assert answer.status_code == 502 and answer.headers["content-type"] == PROBLEM_JSON


async def test_a_wrong_password_refused_with_403_by_the_provider_is_401(issuer_url):
    async with gateway(issuer_url, oauth_token_url=f"{issuer_url}/refuses-with-403") as client:
        answer = await sign_in(client, "operator", "demo")

    assert answer.status_code == 401 and answer.headers["content-type"] == PROBLEM_JSON


async def test_a_provider_answer_without_a_token_is_502(issuer_url):
    async with gateway(issuer_url, oauth_token_url=f"{issuer_url}/no-token") as client:
        answer = await sign_in(client, "operator", "demo")

    assert answer.status_code == 502 and answer.headers["content-type"] == PROBLEM_JSON


async def test_the_sign_in_form_fields_are_bounded(issuer_url):
    async with gateway(issuer_url) as client:
        answer = await sign_in(client, "x" * 65, "demo")

    assert answer.status_code == 422
