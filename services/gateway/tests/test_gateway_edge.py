"""The edge's limits (OWASP API4 and API8): how big a body may be, what a string may hold, when
a refused caller may try again, and one rate budget per caller shared by several gateway
replicas through a real Redis (Debian's redis-server, started here on a free port).

The upstream URLs refuse connections, as in test_gateway_app.py: a call that gets past the
gateway's checks answers 503, so a 413, 422 or 429 is the gateway's own decision."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import httpx
import pytest

from concerto_gateway.app import create_app
from concerto_gateway.settings import GatewaySettings
from concerto_runtime.testing import eventually

PARTNER = {"X-API-Key": "partner-key"}
PROBLEM_JSON = "application/problem+json"


@pytest.fixture(scope="module")
def refused_url() -> Iterator[str]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


@asynccontextmanager
async def gateway(upstream: str, **overrides) -> AsyncIterator[httpx.AsyncClient]:
    urls = {f"{name}_url": upstream for name in ("order", "payment", "fulfillment", "loyalty", "monitor")}
    settings = GatewaySettings(**({"api_key": "partner-key", "admin_api_key": "admin-key", "rate_limit": "1000/second"} | urls | overrides))
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway.test") as client:
            yield client


def an_order(**changes) -> dict:
    order = {
        "customer": {"id": "cust-42", "email": "ada@example.com", "name": "Ada Lovelace"},
        "items": [{"sku": "CON-BATON", "quantity": 1}],
        "shipping_address": {"name": "Ada Lovelace", "line1": "12 St James's Square", "city": "London", "postal_code": "SW1Y 4JH", "country": "GB"},
        "payment": {"token": "tok_visa"},
    }  # fmt: skip
    for path, value in changes.items():
        *parents, leaf = path.split("__")
        target = order
        for parent in parents:
            target = target[parent]
        target[leaf] = value
    return order


# --- body size -------------------------------------------------------------------------------


async def test_a_body_over_the_ceiling_is_413_before_it_is_read(refused_url):
    async with gateway(refused_url, max_body_bytes=2048) as client:
        fits = await client.post("/api/v1/orders", json=an_order(), headers=PARTNER)
        declared = await client.post("/api/v1/orders", json=an_order(customer__name="A" * 3000), headers=PARTNER)

    assert fits.status_code == 503, "a normal order passes the ceiling (and meets the refused upstream)"
    assert declared.status_code == 413 and declared.headers["content-type"] == PROBLEM_JSON
    assert declared.json()["detail"] == "a request body may have at most 2048 bytes"


async def test_a_chunked_body_is_counted_as_it_arrives(refused_url):
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b" " * 1024  # no Content-Length: the gateway counts

    async with gateway(refused_url, max_body_bytes=4096) as client:
        answer = await client.post("/api/v1/orders", content=chunks(), headers=PARTNER | {"Content-Type": "application/json"})

    assert answer.status_code == 413 and answer.headers["content-type"] == PROBLEM_JSON


# --- what a string may hold ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"shipping_address__line1": "1 Way\r\nX-Injected: yes"}, "shipping_address.line1"),
        ({"customer__name": "Ada\x00Lovelace"}, "customer.name"),
        ({"shipping_address__city": "L" * 101}, "shipping_address.city"),
        ({"shipping_address__postal_code": "<script>"}, "shipping_address.postal_code"),
        ({"customer__id": "cust 42/../x"}, "customer.id"),
        ({"items": [{"sku": "CON BATON;drop", "quantity": 1}]}, "items.0.sku"),
        ({"payment__token": "tok_visa' OR 1=1"}, "payment.token"),
        ({"promotion_codes": ["SAVE5", "x" * 33]}, "promotion_codes.1"),
        ({"customer__email": ("a" * 250) + "@example.com"}, "customer.email"),
    ],
)
async def test_every_string_has_a_length_and_a_character_limit(refused_url, change, field):
    async with gateway(refused_url) as client:
        answer = await client.post("/api/v1/orders", json=an_order(**change), headers=PARTNER)

    assert answer.status_code == 422 and answer.headers["content-type"] == PROBLEM_JSON
    assert field in [error["field"].removeprefix("body.") for error in answer.json()["errors"]], answer.text


async def test_an_idempotency_key_is_printable_ascii(refused_url):
    async with gateway(refused_url) as client:
        answer = await client.post("/api/v1/orders", json=an_order(), headers=PARTNER | {"Idempotency-Key": "key with spaces"})

    assert answer.status_code == 422


# --- when to try again -----------------------------------------------------------------------


async def test_retry_after_says_when_the_budget_has_room_again(refused_url):
    async with gateway(refused_url, rate_limit="2/minute") as client:
        for _ in range(2):
            await client.get("/api/v1/products", headers=PARTNER)
        refused = await client.get("/api/v1/products", headers=PARTNER)

    assert refused.status_code == 429
    assert 50 <= int(refused.headers["Retry-After"]) <= 60, "the window is a minute and it has just begun"


# --- one budget across gateway replicas ------------------------------------------------------


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory) -> Iterator[str]:
    server = shutil.which("redis-server")
    if server is None:
        if os.environ.get("CI"):
            pytest.fail("redis-server is not installed: `make test-packages` installs Debian's")
        pytest.skip("redis-server is not installed (`make test-packages` installs Debian's)")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    directory = tmp_path_factory.mktemp("redis")
    process = subprocess.Popen(
        [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(directory)],
        stdout=subprocess.DEVNULL,
    )
    try:
        yield f"redis://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


async def test_gateway_replicas_sharing_a_store_spend_one_budget(refused_url, redis_url):
    async def redis_answers() -> bool:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", int(redis_url.rsplit(":", 1)[1]))
        except OSError:
            return False
        writer.close()
        return True

    await eventually(redis_answers, timeout=10, what="redis-server to listen")
    shared = {"rate_limit": "3/minute", "rate_limit_storage_uri": redis_url}
    async with gateway(refused_url, **shared) as first, gateway(refused_url, **shared) as second:
        answers = [(await client.get("/api/v1/products", headers=PARTNER)).status_code for client in (first, second, first, second)]
    async with gateway(refused_url, rate_limit="3/minute") as alone:
        in_memory = [(await alone.get("/api/v1/products", headers=PARTNER)).status_code for _ in range(3)]

    assert answers == [503, 503, 503, 429], "three calls in the minute, wherever they landed"
    assert in_memory == [503, 503, 503], "memory:// (the default) counts in its own process only"


# --- no live defaults ------------------------------------------------------------------------


async def test_no_api_key_works_unless_one_is_configured(refused_url):
    async with gateway(refused_url, api_key=None, admin_api_key="") as client:
        answers = [(await client.get("/api/v1/products", headers={"X-API-Key": key})).status_code for key in ("dev-key", "dev-admin-key", "")]

    assert answers == [401, 401, 401], "the development keys are the local stack's, never the gateway's defaults"


# --- order spam ------------------------------------------------------------------------------


async def test_orders_for_one_customer_have_a_budget_whoever_places_them(refused_url):
    async with gateway(refused_url, order_rate_limit="2/minute") as client:
        for_ada = [(await client.post("/api/v1/orders", json=an_order(), headers=PARTNER)).status_code for _ in range(3)]
        for_bob = await client.post("/api/v1/orders", json=an_order(customer__id="cust-bob"), headers=PARTNER)

    assert for_ada == [503, 503, 429], "the third order for cust-42 within the minute is refused"
    assert for_bob.status_code == 503, "another customer's budget is their own"


# --- inventory -------------------------------------------------------------------------------


def test_every_route_is_in_the_openapi_or_on_the_known_list():
    """OWASP API9: no hidden route. What the gateway serves outside /api/v1 is named here, and
    every /api/v1 route is documented (a new undocumented route fails this test)."""
    app = create_app(GatewaySettings())
    documented = {(path, method.upper()) for path, operations in app.openapi()["paths"].items() for method in operations}
    routes = [context for route in app.routes for context in (route.effective_candidates() if hasattr(route, "effective_candidates") else [route])]
    served = {(route.path, method) for route in routes for method in getattr(route, "methods", None) or {"MOUNT"}}
    outside_the_api = {
        ("/openapi.json", "GET"), ("/openapi.json", "HEAD"), ("/docs", "GET"), ("/docs", "HEAD"),
        ("/docs/oauth2-redirect", "GET"), ("/docs/oauth2-redirect", "HEAD"), ("/static-offline-docs", "MOUNT"),
        ("/console", "GET"), ("/console/config.json", "GET"), ("/console/static/{name}", "GET"), ("/console/sign-in", "POST"),
        ("/metrics", "GET"), ("/asyncapi.yaml", "GET"), ("/asyncapi.json", "GET"),  # Prometheus; the events' contract
    }  # fmt: skip

    assert not {(path, method) for path, method in served - documented if path.startswith("/api/")}, "undocumented API routes"
    assert {(p, m) for p, m in served - documented if not p.startswith("/api/")} <= outside_the_api | {("/health/live", "GET"), ("/health/ready", "GET")}
    assert all(path.startswith("/api/v1/") or path.startswith("/health/") for path, _ in documented), "one versioned API"
