"""The gateway's own decisions, through httpx's ASGITransport against create_app (its lifespan
run as the server would): keys and roles,
rate limits, validation, correlation ids, the OpenAPI document, and what it answers when a
service behind it cannot be reached.

No upstream service runs here. The upstream URLs point at a local port that is bound but not
listening, so a call that gets past the gateway's checks meets a real "connection refused"."""

from __future__ import annotations

import re
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import httpx
import pytest
from fastapi import FastAPI

from concerto_gateway.app import create_app
from concerto_gateway.settings import GatewaySettings
from concerto_runtime.testing import local_server

CUSTOMER_KEY = "test-customer-key"
ADMIN_KEY = "test-admin-key"
CUSTOMER = {"X-API-Key": CUSTOMER_KEY}
ADMIN = {"X-API-Key": ADMIN_KEY}
PROBLEM_JSON = "application/problem+json"


def valid_order() -> dict:
    return {
        "customer": {"id": "cust-42", "email": "ada@example.com", "name": "Ada Lovelace"},
        "items": [{"sku": "CON-BATON", "quantity": 2}],
        "shipping_address": {
            "name": "Ada Lovelace", "line1": "12 St James's Square", "city": "London", "postal_code": "SW1Y 4JH", "country": "GB",
        },
        "payment": {"token": "tok_visa"},
    }


@pytest.fixture(scope="module")
def refused_url() -> Iterator[str]:
    """A local address that refuses connections: bound (so nothing else takes the port) but
    never listening."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


@pytest.fixture(scope="module")
def silent_url() -> Iterator[str]:
    """A local address that accepts connections (in the kernel's backlog) but never answers."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


def settings(upstream_url: str, **overrides) -> GatewaySettings:
    values = {
        "api_key": CUSTOMER_KEY,
        "admin_api_key": ADMIN_KEY,
        "rate_limit": "1000/second",
        "order_url": upstream_url,
        "payment_url": upstream_url,
        "fulfillment_url": upstream_url,
        "loyalty_url": upstream_url,
        "monitor_url": upstream_url,
        "upstream_timeout_seconds": 2.0,
    }
    return GatewaySettings(**(values | overrides))


@asynccontextmanager
async def gateway(gateway_settings: GatewaySettings) -> AsyncIterator[httpx.AsyncClient]:
    """A client of a fresh gateway app, inside the app's lifespan (which opens its upstream clients)."""
    app = create_app(gateway_settings)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway.test") as client:
            yield client


@pytest.fixture(scope="module")
async def client(refused_url) -> AsyncIterator[httpx.AsyncClient]:
    async with gateway(settings(refused_url)) as client:
        yield client


def assert_problem(response, status: int, title: str | None = None) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    body = response.json()
    assert body["status"] == status
    assert body["type"] == "about:blank"
    assert body["title"] and body["detail"]
    if title:
        assert body["title"] == title
    return body


# --- health ----------------------------------------------------------------------------------


async def test_gateway_app_liveness_needs_no_key(client):
    response = await client.get("/health/live")
    assert response.status_code == 200
    assert response.json() == {"status": "alive"}


async def test_gateway_app_not_ready_while_services_are_unreachable(client):
    body = assert_problem(await client.get("/health/ready"), 503, "Not ready")
    assert body["detail"] == "not ready: order, payment, fulfillment, loyalty, monitor"


# --- keys and roles --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/products"),
        ("GET", "/api/v1/orders/ord-1"),
        ("POST", "/api/v1/orders/ord-1/cancel"),
        ("GET", "/api/v1/customers/cust-42/loyalty"),
        ("PUT", "/api/v1/admin/inventory/CON-BATON"),
        ("GET", "/api/v1/orders/ord-1/timeline"),
        ("GET", "/api/v1/admin/sagas"),
        ("POST", "/api/v1/admin/dead-letters/1/redrive"),
        ("GET", "/api/v1/admin/orders/not-started"),
        ("PUT", "/api/v1/admin/consumers/order"),
    ],
)
async def test_gateway_app_without_a_key_is_401(client, method, path):
    body = assert_problem(await client.request(method, path, json={"quantity": 1}), 401, "Unauthorized")
    assert body["detail"] == "one valid credential is required: a bearer token or an X-API-Key"
    assert body["instance"] == path


@pytest.mark.parametrize("key", ["wrong-key", "", CUSTOMER_KEY.upper(), CUSTOMER_KEY + " x", "dev-key"])
async def test_gateway_app_with_a_wrong_key_is_401(client, key):
    assert_problem(await client.get("/api/v1/products", headers={"X-API-Key": key}), 401, "Unauthorized")


async def test_gateway_app_with_a_non_ascii_key_is_401(client):
    # Header bytes arrive latin-1 decoded; a key outside ASCII is just another wrong key.
    response = await client.get("/api/v1/products", headers={"X-API-Key": "clé-à-molette".encode()})
    assert_problem(response, 401, "Unauthorized")


async def test_gateway_app_checks_the_key_before_the_body(client):
    # No key, no validation errors: an anonymous caller learns nothing about the schema.
    assert_problem(await client.post("/api/v1/orders", json={"items": []}), 401)


async def test_gateway_app_customer_key_on_an_admin_route_is_403(client):
    body = assert_problem(await client.put("/api/v1/admin/inventory/CON-BATON", json={"quantity": 5}, headers=CUSTOMER), 403, "Forbidden")
    assert body["detail"] == "this operation needs the admin role"
    assert body["instance"] == "/api/v1/admin/inventory/CON-BATON"


async def test_gateway_app_admin_key_passes_customer_routes(client):
    # Past the key check, on to the (unreachable) service.
    assert_problem(await client.get("/api/v1/products", headers=ADMIN), 503)


# --- validation ------------------------------------------------------------------------------


def field_errors(body: dict) -> list[str]:
    return [error["field"] for error in body["errors"]]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda o: o.update(items=[]), "body.items"),
        (lambda o: o.pop("items"), "body.items"),
        (lambda o: o["items"][0].update(quantity=0), "body.items.0.quantity"),
        (lambda o: o["items"][0].update(quantity=101), "body.items.0.quantity"),
        (lambda o: o["customer"].update(email="not-an-email"), "body.customer.email"),
        (lambda o: o["shipping_address"].update(country="gb"), "body.shipping_address.country"),
        (lambda o: o["payment"].update(token=""), "body.payment.token"),
        (lambda o: o.update(channel="fax"), "body.channel"),
        (lambda o: o.update(card_number="4242424242424242"), "body.card_number"),  # unknown fields are refused
    ],
)
async def test_gateway_app_invalid_order_is_422_naming_the_field(client, change, field):
    order = valid_order()
    change(order)
    body = assert_problem(await client.post("/api/v1/orders", json=order, headers=CUSTOMER), 422, "Invalid request")
    assert field in field_errors(body)
    assert field in body["detail"]
    assert body["instance"] == "/api/v1/orders"


async def test_gateway_app_invalid_stock_level_is_422_naming_the_field(client):
    body = assert_problem(await client.put("/api/v1/admin/inventory/CON-BATON", json={"quantity": -1}, headers=ADMIN), 422)
    assert field_errors(body) == ["body.quantity"]


async def test_gateway_app_overlong_idempotency_key_is_422(client):
    response = await client.post("/api/v1/orders", json=valid_order(), headers=CUSTOMER | {"Idempotency-Key": "k" * 201})
    body = assert_problem(response, 422)
    assert field_errors(body) == ["header.idempotency-key"]


@pytest.mark.parametrize("given", ["has space", "a/b", "x" * 101, "ünïcode", ""])
async def test_gateway_app_invalid_correlation_id_is_422(client, given):
    response = await client.get("/api/v1/products", headers=CUSTOMER | {"X-Correlation-ID": given.encode()})
    body = assert_problem(response, 422, "Invalid request")
    assert "X-Correlation-ID" in body["detail"]
    assert "X-Correlation-ID" not in response.headers  # not echoed back


async def test_gateway_app_invalid_correlation_id_is_422_before_the_key_check(client):
    assert_problem(await client.get("/api/v1/products", headers={"X-Correlation-ID": "no spaces please"}), 422)


# --- correlation ids -------------------------------------------------------------------------


@pytest.mark.parametrize("given", ["abc-123", "corr.1:2_3", "x" * 100])
async def test_gateway_app_echoes_a_given_correlation_id(client, given):
    response = await client.get("/health/live", headers={"X-Correlation-ID": given})
    assert response.headers["X-Correlation-ID"] == given


async def test_gateway_app_makes_up_a_correlation_id_when_none_is_given(client):
    first = (await client.get("/health/live")).headers["X-Correlation-ID"]
    second = (await client.get("/health/live")).headers["X-Correlation-ID"]
    assert re.fullmatch(r"[A-Za-z0-9._:-]{1,100}", first)
    assert first != second


async def test_gateway_app_echoes_the_correlation_id_on_problems(client):
    headers = {"X-Correlation-ID": "corr-problem-1"}
    assert (await client.get("/api/v1/products", headers=headers)).headers["X-Correlation-ID"] == "corr-problem-1"  # 401
    assert (await client.get("/api/v1/products", headers=CUSTOMER | headers)).headers["X-Correlation-ID"] == "corr-problem-1"  # 503
    response = await client.post("/api/v1/orders", json={}, headers=CUSTOMER | headers)  # 422
    assert response.status_code == 422
    assert response.headers["X-Correlation-ID"] == "corr-problem-1"


# --- rate limits -----------------------------------------------------------------------------


async def test_gateway_app_third_call_within_the_limit_is_429(refused_url):
    async with gateway(settings(refused_url, rate_limit="2/minute")) as client:
        assert (await client.get("/api/v1/products", headers=CUSTOMER)).status_code == 503  # within the limit...
        assert (await client.get("/api/v1/products", headers=CUSTOMER)).status_code == 503
        body = assert_problem(await client.get("/api/v1/products", headers=CUSTOMER), 429, "Too many requests")
        assert "2 per 1 minute" in body["detail"]
        # The limit is per key: the admin key has its own.
        assert (await client.get("/api/v1/products", headers=ADMIN)).status_code == 503
        # Refused keys are refused before they are counted.
        assert_problem(await client.get("/api/v1/products"), 401)


async def test_gateway_app_rate_limit_does_not_count_unauthenticated_calls(refused_url):
    async with gateway(settings(refused_url, rate_limit="3/minute")) as client:
        for _ in range(5):
            assert_problem(await client.get("/api/v1/products", headers={"X-API-Key": "wrong"}), 401)
        assert (await client.get("/api/v1/products", headers=CUSTOMER)).status_code == 503


async def test_gateway_app_each_app_counts_its_own_calls(refused_url):
    # Two gateways (or two tests) with the same limit do not share one budget.
    for _ in range(2):
        async with gateway(settings(refused_url, rate_limit="1/minute")) as client:
            assert (await client.get("/api/v1/products", headers=CUSTOMER)).status_code == 503
            assert_problem(await client.get("/api/v1/products", headers=CUSTOMER), 429)


# --- the OpenAPI document and the docs -------------------------------------------------------


async def test_gateway_app_openapi_documents_placing_an_order(client):
    document = (await client.get("/openapi.json")).json()
    place = document["paths"]["/api/v1/orders"]["post"]
    assert "202" in place["responses"]
    assert "200" not in place["responses"]
    assert place["responses"]["202"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/OrderAccepted"}
    for status in ("401", "403", "422", "429", "503"):
        assert PROBLEM_JSON in place["responses"][status]["content"], status
    assert place["requestBody"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/PlaceOrderRequest"}


async def test_gateway_app_openapi_documents_bearer_tokens_and_the_api_key(client):
    document = (await client.get("/openapi.json")).json()
    schemes = document["components"]["securitySchemes"]
    assert schemes["HTTPBearer"] == {"type": "http", "scheme": "bearer", "bearerFormat": "JWT", "description": schemes["HTTPBearer"]["description"]}
    assert (schemes["APIKeyHeader"]["type"], schemes["APIKeyHeader"]["in"], schemes["APIKeyHeader"]["name"]) == ("apiKey", "header", "X-API-Key")
    for path, operations in document["paths"].items():
        for operation in operations.values():
            if path.startswith("/api/v1/"):
                assert sorted(operation["security"], key=str) == [{"APIKeyHeader": []}, {"HTTPBearer": []}], path  # either one
            else:
                assert "security" not in operation, path  # health checks are open


async def test_gateway_app_openapi_lists_every_route(client):
    assert set((await client.get("/openapi.json")).json()["paths"]) == {
        "/api/v1/orders",
        "/api/v1/orders/{order_id}",
        "/api/v1/orders/{order_id}/cancel",
        "/api/v1/products",
        "/api/v1/customers/{customer_id}/loyalty",
        "/api/v1/admin/inventory/{sku}",
        "/api/v1/admin/figures",
        "/api/v1/admin/payment-gateways",
        "/api/v1/admin/payment-gateways/{name}/faults",
        "/api/v1/admin/payment-gateways/{name}/charges",
        "/api/v1/admin/payments/{order_id}",
        "/api/v1/admin/payments/{order_id}/refund/retry",
        "/api/v1/admin/payments/{order_id}/refund/refunded-by-hand",
        "/api/v1/orders/{order_id}/timeline",
        "/api/v1/admin/sagas",
        "/api/v1/admin/orders/not-started",
        "/api/v1/admin/orders/{order_id}/logs",
        "/api/v1/admin/dead-letters",
        "/api/v1/admin/dead-letters/{dead_letter_id}/redrive",
        "/api/v1/admin/consumers/{context}",
        "/health/live",
        "/health/ready",
    }


async def test_gateway_app_serves_the_docs(client):
    response = await client.get("/docs")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "swagger-ui" in response.text
    assert "/openapi.json" in response.text


# --- unknown routes --------------------------------------------------------------------------


async def test_gateway_app_unknown_route_is_a_404_problem(client):
    body = assert_problem(await client.get("/api/v1/nothing-here", headers=CUSTOMER), 404, "Not Found")
    assert body["instance"] == "/api/v1/nothing-here"


async def test_gateway_app_wrong_method_is_a_405_problem(client):
    assert_problem(await client.delete("/api/v1/products", headers=CUSTOMER), 405, "Method Not Allowed")


# --- the monitor's and the consumers' admin routes -------------------------------------------


async def test_gateway_app_unknown_context_for_consumer_controls_is_404(client):
    body = assert_problem(await client.put("/api/v1/admin/consumers/shipping", json={}, headers=ADMIN), 404, "Unknown context")
    assert "order, payment, fulfillment, loyalty, monitor" in body["detail"]


@pytest.mark.parametrize(
    ("method", "path", "json"),
    [
        ("GET", "/api/v1/admin/sagas?status=LOST", None),
        ("GET", "/api/v1/admin/sagas?limit=0", None),
        ("GET", "/api/v1/admin/dead-letters?offset=-1", None),
        ("POST", "/api/v1/admin/dead-letters/abc/redrive", None),
        ("PUT", "/api/v1/admin/consumers/order", {"paused": "sometimes"}),
        ("PUT", "/api/v1/admin/consumers/order", {"pause": True}),
    ],
)
async def test_gateway_app_invalid_monitor_admin_input_is_422(client, method, path, json):
    assert_problem(await client.request(method, path, json=json, headers=ADMIN), 422)


# --- unreachable services --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "headers", "json", "service"),
    [
        ("POST", "/api/v1/orders", CUSTOMER, valid_order(), "payment"),  # the card token is vaulted first
        ("GET", "/api/v1/orders/ord-1", CUSTOMER, None, "order"),
        ("POST", "/api/v1/orders/ord-1/cancel", CUSTOMER, None, "order"),
        ("GET", "/api/v1/products", CUSTOMER, None, "order"),
        ("GET", "/api/v1/customers/cust-42/loyalty", CUSTOMER, None, "loyalty"),
        ("PUT", "/api/v1/admin/inventory/CON-BATON", ADMIN, {"quantity": 5}, "fulfillment"),
        ("GET", "/api/v1/orders/ord-1/timeline", CUSTOMER, None, "monitor"),
        ("GET", "/api/v1/admin/sagas?status=STUCK", ADMIN, None, "monitor"),
        ("GET", "/api/v1/admin/dead-letters", ADMIN, None, "monitor"),
        ("GET", "/api/v1/admin/orders/not-started", ADMIN, None, "order"),
        ("POST", "/api/v1/admin/dead-letters/7/redrive", ADMIN, None, "monitor"),
        ("PUT", "/api/v1/admin/consumers/fulfillment", ADMIN, {"paused": True}, "fulfillment"),
    ],
)
async def test_gateway_app_unreachable_service_is_503(client, method, path, headers, json, service):
    response = await client.request(method, path, json=json, headers=headers | {"X-Correlation-ID": "corr-503"})
    body = assert_problem(response, 503, "Service unavailable")
    assert body["detail"] == f"the {service} service is unreachable"
    assert body["instance"] == path.split("?")[0]
    assert response.headers["X-Correlation-ID"] == "corr-503"


async def test_gateway_app_silent_service_is_503_after_the_timeout(silent_url):
    async with gateway(settings(silent_url, upstream_timeout_seconds=0.2)) as client:
        body = assert_problem(await client.get("/api/v1/products", headers=CUSTOMER), 503, "Service unavailable")
    assert body["detail"] == "the order service did not answer in time"


# --- replicas ----------------------------------------------------------------------------------


@asynccontextmanager
async def context_replica(name: str) -> AsyncIterator[tuple[str, list[str]]]:
    """A stand-in for one instance of a context on a real local port: it answers the calls the
    tests make, and notes each one as 'METHOD path'."""
    calls: list[str] = []
    replica = FastAPI()

    @replica.get("/products")
    async def products() -> dict:
        calls.append("GET /products")
        return {"items": [], "currency": "EUR", "served_by": name}

    @replica.put("/consumer")
    async def consumer(controls: dict) -> dict:
        calls.append("PUT /consumer")
        return {"paused": False, "fail_event_types": []} | controls

    async with local_server(replica) as url:
        yield url, calls


async def test_gateway_app_spreads_calls_over_replicas_and_skips_one_that_is_down(refused_url):
    async with context_replica("a") as (first, first_calls), context_replica("b") as (second, second_calls):
        async with gateway(settings(refused_url, order_url=f"{first},{refused_url},{second}")) as client:
            answers = [await client.get("/api/v1/products", headers=CUSTOMER) for _ in range(6)]

    assert [a.status_code for a in answers] == [200] * 6, "the replica that is down is skipped"
    assert len(first_calls) >= 2 and len(second_calls) >= 2, (first_calls, second_calls)
    assert len(first_calls) + len(second_calls) == 6


async def test_gateway_app_sets_consumer_controls_on_every_replica(refused_url):
    async with context_replica("a") as (first, first_calls), context_replica("b") as (second, second_calls):
        async with gateway(settings(refused_url, loyalty_url=f"{first},{second}")) as client:
            answer = await client.put("/api/v1/admin/consumers/loyalty", json={"paused": True}, headers=ADMIN)
        async with gateway(settings(refused_url, loyalty_url=f"{first},{refused_url}")) as client:
            one_down = await client.put("/api/v1/admin/consumers/loyalty", json={"paused": True}, headers=ADMIN)

    assert answer.status_code == 200 and answer.json()["paused"] is True
    assert first_calls == ["PUT /consumer", "PUT /consumer"] and second_calls == ["PUT /consumer"]
    assert_problem(one_down, 503, "Service unavailable")
