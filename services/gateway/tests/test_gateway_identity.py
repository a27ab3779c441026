"""Customer identity at the edge: bearer tokens (JWT, RS256) verified against the issuer's JWKS,
and an order, an account, a list that belong to the customer who is signed in. The issuer's key
is made here and its JWKS served over HTTP beside stand-ins for the order and loyalty contexts,
on a real local port."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from concerto_gateway.app import create_app
from concerto_gateway.settings import GatewaySettings
from concerto_runtime.service_tokens import HEADER, caller_of, new_key_pair
from concerto_runtime.testing import eventually, local_server

ISSUER, AUDIENCE = "http://issuer.test", "concerto-api"
GATEWAY_KEY, GATEWAY_PUBLIC_KEY = new_key_pair()  # the gateway's service-token key (ADR 12)
PARTNER = {"X-API-Key": "partner-key"}
ORDERS = {"ord-a": "cust-a", "ord-b": "cust-b"}


class Issuer:
    """Signs tokens like the dev issuer (or any OpenID provider) would."""

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key())) | {"kid": "k1", "use": "sig", "alg": "RS256"}
        self.jwks = {"keys": [public]}

    def token(self, sub: str, *, roles=("customer",), audience=AUDIENCE, issuer=ISSUER, expires_in=300, key=None, kid="k1") -> dict:
        now = int(time.time())
        claims = {"iss": issuer, "aud": audience, "sub": sub, "iat": now, "exp": now + expires_in, "roles": roles}  # a tuple: a JSON array
        return {"Authorization": f"Bearer {jwt.encode(claims, key or self.key, algorithm='RS256', headers={'kid': kid})}"}

    def add_key(self, kid: str) -> tuple[rsa.RSAPrivateKey, dict]:
        """Another signing key, published in the JWKS beside the first (a key rotation)."""
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key())) | {"kid": kid, "use": "sig", "alg": "RS256"}
        self.jwks["keys"].append(public)
        return key, public


@asynccontextmanager
async def contexts(issuer: Issuer) -> AsyncIterator[tuple[str, list[str]]]:
    """The order and loyalty contexts, as far as these tests need them, and the issuer's JWKS."""
    calls: list[str] = []
    app = FastAPI()

    @app.get("/jwks.json")
    async def jwks():
        return issuer.jwks

    @app.get("/orders/{order_id}")
    async def order(order_id: str, request: Request):
        # Every call the gateway makes says it is the gateway's (ADR 12).
        assert caller_of(request.headers[HEADER], "order", {"gateway": GATEWAY_PUBLIC_KEY}) == "gateway"
        calls.append(f"GET /orders/{order_id}")
        return {"order_id": order_id, "customer_id": ORDERS[order_id], "status": "PENDING"}

    @app.post("/orders/{order_id}/cancel", status_code=202)
    async def cancel(order_id: str):
        calls.append(f"POST /orders/{order_id}/cancel")
        return {"order_id": order_id, "customer_id": ORDERS[order_id], "status": "CANCELLED"}

    @app.get("/orders")
    async def orders(customer_id: str, limit: int = 20, offset: int = 0):
        calls.append(f"GET /orders?customer_id={customer_id}")
        return {"items": [], "total": 0, "limit": limit, "offset": offset}

    @app.get("/customers/{customer_id}/loyalty")
    async def loyalty(customer_id: str):
        calls.append(f"GET /customers/{customer_id}/loyalty")
        return {"customer_id": customer_id, "points": 0, "tier": "standard", "history": []}

    async with local_server(app) as url:
        yield url, calls


@pytest.fixture(scope="module")
def issuer() -> Issuer:
    return Issuer()


@asynccontextmanager
async def gateway(issuer: Issuer, upstream: str, **overrides) -> AsyncIterator[httpx.AsyncClient]:
    settings = GatewaySettings(
        **{
            "api_key": "partner-key", "admin_api_key": "admin-key", "rate_limit": "1000/second",
            "oauth_issuer": ISSUER, "oauth_audience": AUDIENCE, "oauth_jwks_url": f"{upstream}/jwks.json",
            "order_url": upstream, "payment_url": upstream, "fulfillment_url": upstream, "loyalty_url": upstream,
            "monitor_url": upstream, "upstream_timeout_seconds": 2.0, "service_signing_key": GATEWAY_KEY,
        } | overrides
    )  # fmt: skip
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway.test") as client:
            yield client


async def test_a_customer_sees_and_cancels_only_their_own_orders(issuer):
    alice, bob = issuer.token("cust-a"), issuer.token("cust-b")
    async with contexts(issuer) as (url, calls), gateway(issuer, url) as client:
        own = await client.get("/api/v1/orders/ord-a", headers=alice)
        other = await client.get("/api/v1/orders/ord-a", headers=bob)
        cancel_other = await client.post("/api/v1/orders/ord-a/cancel", headers=bob)
        cancel_own = await client.post("/api/v1/orders/ord-b/cancel", headers=bob)
        partner = await client.get("/api/v1/orders/ord-b", headers=PARTNER)

    assert own.status_code == 200 and own.json()["customer_id"] == "cust-a"
    assert (other.status_code, other.json()["title"]) == (404, "Order not found"), "someone else's order is as if it did not exist"
    assert cancel_other.status_code == 404
    assert cancel_own.status_code == 202
    assert "POST /orders/ord-a/cancel" not in calls, "nobody cancels someone else's order"
    assert partner.status_code == 200, "the partner channel acts for any customer"


async def test_a_customer_lists_their_own_orders_and_reads_their_own_account(issuer):
    alice = issuer.token("cust-a")
    async with contexts(issuer) as (url, calls), gateway(issuer, url) as client:
        listed = await client.get("/api/v1/orders", params={"customer_id": "cust-b"}, headers=alice)
        own_account = await client.get("/api/v1/customers/cust-a/loyalty", headers=alice)
        other_account = await client.get("/api/v1/customers/cust-b/loyalty", headers=alice)
        partner_without_customer = await client.get("/api/v1/orders", headers=PARTNER)

    assert listed.status_code == 200
    assert "GET /orders?customer_id=cust-a" in calls and "GET /orders?customer_id=cust-b" not in calls, "the token says whose"
    assert own_account.status_code == 200
    assert other_account.status_code == 404 and "GET /customers/cust-b/loyalty" not in calls
    assert partner_without_customer.status_code == 422


async def test_a_customer_places_orders_only_for_themselves(issuer):
    order = {
        "customer": {"id": "cust-a", "email": "ada@example.com", "name": "Ada"},
        "items": [{"sku": "CON-BATON", "quantity": 1}],
        "shipping_address": {"name": "Ada", "line1": "1 Way", "city": "London", "postal_code": "N1 9GU", "country": "GB"},
        "payment": {"token": "tok_visa"},
    }
    async with contexts(issuer) as (url, _), gateway(issuer, url) as client:
        answer = await client.post("/api/v1/orders", json=order, headers=issuer.token("cust-b"))
    assert answer.status_code == 403


async def test_a_token_that_is_not_good_is_401(issuer):
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    bad = {
        "expired": issuer.token("cust-a", expires_in=-60),
        "for another audience": issuer.token("cust-a", audience="someone-else"),
        "from another issuer": issuer.token("cust-a", issuer="http://evil.test"),
        "signed by another key": issuer.token("cust-a", key=stranger),
        "not a JWT": {"Authorization": "Bearer not-a-token"},
    }
    async with contexts(issuer) as (url, _), gateway(issuer, url) as client:
        answers = {what: await client.get("/api/v1/orders/ord-a", headers=headers) for what, headers in bad.items()}
    for what, answer in answers.items():
        assert answer.status_code == 401, what
        assert answer.headers["WWW-Authenticate"] == "Bearer", what


async def test_admin_routes_need_the_admin_role(issuer):
    async with contexts(issuer) as (url, _), gateway(issuer, url) as client:
        customer = await client.get("/api/v1/admin/sagas", headers=issuer.token("cust-a"))
        operator = await client.get("/api/v1/admin/sagas", headers=issuer.token("operator", roles=["admin"]))
    assert customer.status_code == 403
    assert operator.status_code != 403  # through to the (stand-in) monitor


async def test_the_api_keys_can_be_turned_off(issuer):
    async with contexts(issuer) as (url, _), gateway(issuer, url, api_keys_enabled=False) as client:
        partner = await client.get("/api/v1/orders/ord-a", headers=PARTNER)
        customer = await client.get("/api/v1/orders/ord-a", headers=issuer.token("cust-a"))
    assert partner.status_code == 401
    assert customer.status_code == 200


async def test_failed_sign_ins_are_rate_limited_by_client_address(issuer):
    async with contexts(issuer) as (url, _), gateway(issuer, url, failed_auth_rate_limit="3/minute") as client:
        answers = [(await client.get("/api/v1/products", headers={"X-API-Key": f"guess-{n}"})).status_code for n in range(5)]
        still_served = await client.get("/api/v1/orders/ord-a", headers=issuer.token("cust-a"))
    assert answers == [401, 401, 401, 429, 429]
    assert still_served.status_code == 200, "a customer with a good token has their own budget"


async def test_a_call_with_a_token_and_a_key_is_refused(issuer):
    """One credential per call: a wrong key beside a good token (or the reverse) is no way in,
    and two good ones do not let the caller choose who they are."""
    async with contexts(issuer) as (url, _), gateway(issuer, url) as client:
        answers = [
            (await client.get("/api/v1/orders/ord-a", headers=issuer.token("cust-a") | key)).status_code
            for key in ({"X-API-Key": "wrong"}, {"X-API-Key": ""}, PARTNER)
        ]
    assert answers == [401, 401, 401]


async def test_a_key_withdrawn_from_the_jwks_is_not_trusted_once_the_key_set_expires():
    """The issuer withdraws a key (it leaked, say): once the cached key set is older than its
    lifespan, the gateway fetches it again and refuses that key's tokens; the other key's pass."""
    issuer = Issuer()  # its own: the key set changes
    second, second_public = issuer.add_key("k2")
    by_second = issuer.token("cust-a", key=second, kid="k2")
    async with contexts(issuer) as (url, _), gateway(issuer, url, oauth_jwks_lifespan_seconds=0.5) as client:
        trusted = await client.get("/api/v1/orders/ord-a", headers=by_second)
        issuer.jwks["keys"].remove(second_public)

        async def refused() -> bool:
            return (await client.get("/api/v1/orders/ord-a", headers=by_second)).status_code == 401

        await eventually(refused, timeout=10, interval=0.1, what="a token of the withdrawn key to be refused")
        by_first = await client.get("/api/v1/orders/ord-a", headers=issuer.token("cust-a"))

    assert trusted.status_code == 200
    assert by_first.status_code == 200, "the key still in the set is still trusted"


@pytest.mark.parametrize("roles", ["not-an-admin", "admin", {"admin": True}, ["admin", 1]], ids=["a string", "admin as a string", "an object", "not all strings"])
async def test_a_token_whose_roles_are_not_a_list_of_names_is_401(issuer, roles):
    """`"admin" in "not-an-admin"` is true: a roles claim that is not a list of strings makes no
    operator, and no customer either."""
    async with contexts(issuer) as (url, _), gateway(issuer, url) as client:
        answer = await client.get("/api/v1/orders/ord-a", headers=issuer.token("mallory", roles=roles))
    assert answer.status_code == 401, answer.text
    assert answer.headers["content-type"] == "application/problem+json"


async def test_the_timeline_passes_only_for_an_order_the_order_context_proves_is_the_customers(issuer):
    """The order context answers something other than 200 (a refusal of its own, a conflict, a
    budget): the customer gets 404 and the monitor is never asked; its 503 (try again) is passed on."""
    asked_the_monitor: list[str] = []
    app = FastAPI()

    @app.get("/jwks.json")
    async def jwks():
        return issuer.jwks

    @app.get("/orders/{order_id}")
    async def order(order_id: str):
        if order_id == "ord-a":
            return {"order_id": order_id, "customer_id": "cust-a", "status": "PENDING"}
        status = int(order_id.removeprefix("ord-answers-"))
        problem = {"type": "about:blank", "title": "Refused", "status": status, "detail": "the order context says no"}
        return JSONResponse(problem, status_code=status, media_type="application/problem+json", headers={"Retry-After": "1"})

    @app.get("/sagas/{order_id}/timeline")
    async def timeline(order_id: str):
        asked_the_monitor.append(order_id)
        return {"order_id": order_id, "status": "RUNNING", "events": [], "expected": []}

    alice = issuer.token("cust-a")
    async with local_server(app) as url, gateway(issuer, url) as client:
        refused = {status: await client.get(f"/api/v1/orders/ord-answers-{status}/timeline", headers=alice) for status in (400, 401, 403, 409, 429)}
        unavailable = await client.get("/api/v1/orders/ord-answers-503/timeline", headers=alice)
        own = await client.get("/api/v1/orders/ord-a/timeline", headers=alice)

    for status, answer in refused.items():
        assert (answer.status_code, answer.headers["content-type"]) == (404, "application/problem+json"), f"order context {status}: {answer.text}"
    assert unavailable.status_code == 503 and unavailable.headers["Retry-After"] == "1"
    assert own.status_code == 200
    assert asked_the_monitor == ["ord-a"], "the monitor is asked only for an order proved the customer's"
