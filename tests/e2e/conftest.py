"""The end-to-end suite's fixtures: a running Concerto stack, driven only through the
gateway's public HTTP API, with its events read back from the real Kafka broker.

Configuration comes from the environment:
  GATEWAY_URL              the gateway (default http://127.0.0.1:8080)
  KAFKA_BOOTSTRAP_SERVERS  the broker (default 127.0.0.1:9092)
  CONCERTO_API_KEY         the customer key (default dev-key)
  CONCERTO_ADMIN_API_KEY   the admin key (default dev-admin-key)
  DEV_ISSUER_URL           the development issuer, for customers' and the operator's tokens
                           (default http://127.0.0.1:8300)
  TEST_PAYMENT_DEADLINE_SECONDS  how long the stack tries to take a payment before it gives up
                           (its PAYMENT_DEADLINE_SECONDS; `make test` sets 20; default 20)

If the gateway is not ready when the suite starts, every test fails (not skips) and says
how to start the stack: an end-to-end run that silently tests nothing is worse than a red one.

Nothing here sleeps to synchronise: every wait is a poll with a deadline (`eventually`).

Every order the suite places through the gateway is recorded (`placed_orders`), so the last
test (test_e2e_zz_ledgers.py) can check the payment gateways' books against all of them.
Faults injected into the payment gateways are global to the stack: a test that sets them does
so through the `payment_faults` fixture, which clears them before and after it.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from concerto_contracts.topics import Topics
from concerto_runtime.testing import eventually

GATEWAY_URL = os.environ.get("GATEWAY_URL", "http://127.0.0.1:8080").rstrip("/")
KAFKA_BOOTSTRAP_SERVERS = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
API_KEY = os.environ.get("CONCERTO_API_KEY", "dev-key")
DEV_ISSUER_URL = os.environ.get("DEV_ISSUER_URL", "http://127.0.0.1:8300")
ADMIN_API_KEY = os.environ.get("CONCERTO_ADMIN_API_KEY", "dev-admin-key")
PAYMENT_DEADLINE = float(os.environ.get("TEST_PAYMENT_DEADLINE_SECONDS", "20"))

DOMAIN_TOPICS = Topics.DOMAIN
TERMINAL = {"COMPLETED", "CANCELLED"}
STATUSES = {"PENDING", "CONFIRMED", "PAID", "FULFILLING", "SHIPPED", "COMPLETED", "CANCELLED"}
PROBLEM_JSON = "application/problem+json"

# The only sku whose stock a test changes (the out-of-stock test); no other test orders it.
OUT_OF_STOCK_SKU = "CON-ROSIN"
RESTORED_STOCK = 1000

# How long an order may take to reach its end state (the stack takes ~2 s).
ORDER_DEADLINE = 30.0

# The simulated payment gateways, in the order of preference (primary first).
PAYMENT_GATEWAYS = ("cardpay", "paynext")
ORDERS_PATH = "/api/v1/orders"


# --- the stack must be up ---------------------------------------------------------------


def _check_ready() -> str | None:
    """None when the gateway (and, through it, every service) is ready; else why not."""
    try:
        response = httpx.get(f"{GATEWAY_URL}/health/ready", timeout=5.0)
    except httpx.HTTPError as exc:
        return f"GET {GATEWAY_URL}/health/ready failed: {exc!r}"
    if response.status_code != 200:
        return f"GET {GATEWAY_URL}/health/ready answered {response.status_code}: {response.text[:300]}"
    return None


_readiness: list[str | None] = []  # checked once, at the first end-to-end test


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_call(item: pytest.Item) -> None:
    # Raised in the call phase, so each test is reported FAILED (not skipped, not an error).
    if not _readiness:
        _readiness.append(_check_ready())
    if _readiness[0] is not None:
        pytest.fail(
            f"The Concerto stack is not running or not ready: {_readiness[0]}\n"
            f"Start it with `make up` (check with `make status`), or point GATEWAY_URL and "
            f"KAFKA_BOOTSTRAP_SERVERS at a running stack, then run the end-to-end suite again.",
            pytrace=False,
        )


# --- values -------------------------------------------------------------------------------


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def order_body(
    sku: str,
    *,
    token: str = "tok_visa",
    customer_id: str | None = None,
    email: str | None = None,
    quantity: int = 1,
) -> dict[str, Any]:
    customer_id = customer_id or unique("cust")
    return {
        "customer": {"id": customer_id, "email": email or f"{customer_id}@example.com", "name": "Ada Lovelace"},
        "items": [{"sku": sku, "quantity": quantity}],
        "shipping_address": {
            "name": "Ada Lovelace",
            "line1": "12 Analytical Way",
            "city": "London",
            "postal_code": "N1 9GU",
            "country": "GB",
        },
        "payment": {"token": token},
        "promotion_codes": [],
        "channel": "web",
    }


def minor_units(amount: str | Decimal) -> int:
    """An amount as the payment gateways book it: "33.79" -> 3379."""
    return int((Decimal(str(amount)) * 100).to_integral_value())


def calls(status: dict[str, Any], *kinds: str) -> int:
    """How many calls a gateway's breaker counted of the given kinds (succeeded, failed, rejected)."""
    return sum(status["calls"].get(kind, 0) for kind in kinds)


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    """An RFC 9457 problem with the given status; returns its body."""
    assert response.status_code == status, f"expected {status}, got {response.status_code}: {response.text}"
    content_type = response.headers.get("content-type", "")
    assert content_type.startswith(PROBLEM_JSON), f"expected {PROBLEM_JSON}, got {content_type!r}: {response.text}"
    body = response.json()
    for member in ("title", "status", "detail"):
        assert body.get(member), f"problem without {member!r}: {body}"
    assert body["status"] == status, body
    return body


# --- every order the suite places ---------------------------------------------------------


class OrderRegistry:
    """The orders placed through the gateway in this session (order id -> the test that placed
    it), in the order they were placed. Api.place records each order it places, and a response
    hook on the session's clients records any other accepted POST /api/v1/orders, so an order
    placed with a raw client call is not missed."""

    def __init__(self) -> None:
        self.orders: dict[str, str] = {}

    def record(self, order_id: str, test: str | None = None) -> None:
        self.orders.setdefault(order_id, test or _current_test())

    def __iter__(self):
        return iter(list(self.orders))

    def __len__(self) -> int:
        return len(self.orders)


def _current_test() -> str:
    # pytest keeps "<nodeid> (<phase>)" in PYTEST_CURRENT_TEST while a test runs.
    return os.environ.get("PYTEST_CURRENT_TEST", "?").rsplit(" (", 1)[0]


_placed_orders = OrderRegistry()


async def _record_placed_order(response: httpx.Response) -> None:
    request = response.request
    if request.method == "POST" and request.url.path == ORDERS_PATH and response.status_code == 202:
        await response.aread()
        try:
            order_id = response.json().get("order_id")
        except ValueError:
            return  # Api.place reports a 202 without a usable body
        if order_id:
            _placed_orders.record(order_id)


@pytest.fixture(scope="session")
def placed_orders() -> OrderRegistry:
    return _placed_orders


# --- the API ------------------------------------------------------------------------------


@dataclass
class Placed:
    order_id: str
    correlation_id: str
    status: str
    body: dict[str, Any]
    response: httpx.Response

    @property
    def customer_id(self) -> str:
        return self.body["customer"]["id"]


# --- the saga monitor ---------------------------------------------------------------------
#
# The monitor's routes at the gateway (an order's timeline; sagas, dead letters, redrive and
# the contexts' consumer controls for the admin), which Api inherits; the `consumer_controls`
# fixture is at the end of this file.

CONTEXTS = ("order", "payment", "fulfillment", "loyalty", "monitor")
NORMAL_CONSUMER = {"paused": False, "fail_event_types": []}
ADMIN = {"X-API-Key": ADMIN_API_KEY}


class SagaMonitorApi:
    """The saga monitor's part of the public API."""

    http: httpx.AsyncClient
    CONTEXTS = CONTEXTS

    async def timeline_response(self, order_id: str) -> httpx.Response:
        return await self.http.get(f"/api/v1/orders/{order_id}/timeline")

    async def timeline(self, order_id: str) -> dict[str, Any] | None:
        """The order's saga as the monitor sees it; None while the monitor has seen no event of
        it (404)."""
        response = await self.timeline_response(order_id)
        if response.status_code == 404:
            return None
        assert response.status_code == 200, f"GET the timeline of {order_id}: {response.status_code} {response.text}"
        return response.json()

    async def sagas(self, status: str | None = None, *, limit: int = 200, offset: int = 0) -> dict[str, Any]:
        """A page of sagas (the most recently active first), of one status if given."""
        params: dict[str, Any] = {"limit": limit, "offset": offset, **({"status": status} if status else {})}
        response = await self.http.get("/api/v1/admin/sagas", params=params, headers=ADMIN)
        assert response.status_code == 200, f"GET sagas {params}: {response.status_code} {response.text}"
        return response.json()

    async def dead_letters(self, *, limit: int = 200, offset: int = 0) -> dict[str, Any]:
        """A page of dead letters, the newest first."""
        response = await self.http.get("/api/v1/admin/dead-letters", params={"limit": limit, "offset": offset}, headers=ADMIN)
        assert response.status_code == 200, f"GET dead letters: {response.status_code} {response.text}"
        return response.json()

    async def dead_letters_where(self, **fields: Any) -> list[dict[str, Any]]:
        """Every dead letter (all pages) whose fields have the given values."""
        found, offset = [], 0
        while True:
            page = await self.dead_letters(limit=200, offset=offset)
            found += [d for d in page["items"] if all(d.get(k) == v for k, v in fields.items())]
            offset += len(page["items"])
            if not page["items"] or offset >= page["total"]:
                return found

    async def redrive(self, dead_letter_id: int) -> httpx.Response:
        return await self.http.post(f"/api/v1/admin/dead-letters/{dead_letter_id}/redrive", headers=ADMIN)

    async def figures(self) -> dict[str, Any]:
        """The key figures from every service's /metrics (the console's top card)."""
        response = await self.http.get("/api/v1/admin/figures", headers=ADMIN)
        assert response.status_code == 200, f"GET figures: {response.status_code} {response.text}"
        return response.json()

    async def consumer(self, context: str) -> dict[str, Any]:
        response = await self.http.get(f"/api/v1/admin/consumers/{context}", headers=ADMIN)
        assert response.status_code == 200, f"GET {context}'s consumer: {response.status_code} {response.text}"
        return response.json()

    async def set_consumer(self, context: str, **controls: Any) -> dict[str, Any]:
        """Sets a context's consumer controls (paused, fail_event_types); none restores it."""
        response = await self.http.put(f"/api/v1/admin/consumers/{context}", json=controls, headers=ADMIN)
        assert response.status_code == 200, f"PUT {context}'s consumer {controls}: {response.status_code} {response.text}"
        in_force = response.json()
        assert in_force == {**NORMAL_CONSUMER, **controls}, f"{context}'s consumer did not take {controls}: {in_force}"
        return in_force


class Api(SagaMonitorApi):
    """The gateway's public interface, as a client sees it."""

    body = staticmethod(order_body)
    problem = staticmethod(assert_problem)
    unique = staticmethod(unique)
    OUT_OF_STOCK_SKU = OUT_OF_STOCK_SKU
    RESTORED_STOCK = RESTORED_STOCK
    ORDER_DEADLINE = ORDER_DEADLINE
    PAYMENT_DEADLINE = PAYMENT_DEADLINE
    PAYMENT_GATEWAYS = PAYMENT_GATEWAYS
    TERMINAL = frozenset(TERMINAL)
    calls = staticmethod(calls)
    minor_units = staticmethod(minor_units)

    def __init__(self, client: httpx.AsyncClient, registry: OrderRegistry | None = None) -> None:
        self.http = client
        self.registry = registry if registry is not None else _placed_orders

    async def products(self) -> dict[str, dict[str, Any]]:
        response = await self.http.get("/api/v1/products")
        assert response.status_code == 200, response.text
        return {product["sku"]: product for product in response.json()["items"]}

    async def product(self, prefer: str) -> dict[str, Any]:
        """A product from the catalogue with stock: `prefer` if it qualifies, else another one.
        Never the out-of-stock test's sku."""
        catalogue = await self.products()
        assert catalogue, "GET /api/v1/products returned no products"

        def usable(product: dict[str, Any]) -> bool:
            return product["sku"] != OUT_OF_STOCK_SKU and (product["available"] is None or product["available"] >= 10)

        if prefer in catalogue and usable(catalogue[prefer]):
            return catalogue[prefer]
        candidates = [p for p in catalogue.values() if usable(p)]
        assert candidates, f"no product with stock to order: {catalogue}"
        return candidates[0]

    async def place(self, body: dict[str, Any], *, headers: dict[str, str] | None = None) -> Placed:
        """Placed as the partner (the API key), or as a signed-in customer given their
        Authorization header (then without the key: one credential per call)."""
        if headers and "Authorization" in headers:
            async with httpx.AsyncClient(base_url=GATEWAY_URL, timeout=self.http.timeout) as customer:
                response = await customer.post(ORDERS_PATH, json=body, headers=headers)
        else:
            response = await self.http.post(ORDERS_PATH, json=body, headers=headers or {})
        assert response.status_code == 202, f"POST /api/v1/orders: {response.status_code} {response.text}"
        accepted = response.json()
        if accepted.get("order_id"):
            self.registry.record(accepted["order_id"])
        for member in ("order_id", "status", "correlation_id"):
            assert accepted.get(member), f"202 without {member!r}: {accepted}"
        assert accepted["status"] in STATUSES, accepted
        return Placed(accepted["order_id"], accepted["correlation_id"], accepted["status"], body, response)

    async def order(self, order_id: str) -> dict[str, Any]:
        response = await self.http.get(f"/api/v1/orders/{order_id}")
        assert response.status_code == 200, f"GET /api/v1/orders/{order_id}: {response.status_code} {response.text}"
        return response.json()

    async def cancel(self, order_id: str) -> httpx.Response:
        return await self.http.post(f"/api/v1/orders/{order_id}/cancel")

    async def terminal(self, order_id: str, timeout: float = ORDER_DEADLINE) -> dict[str, Any]:
        """The order once it is COMPLETED or CANCELLED."""
        last: dict[str, Any] = {}

        async def probe() -> dict[str, Any] | None:
            last.update(await self.order(order_id))
            return dict(last) if last["status"] in TERMINAL else None

        return await eventually(probe, timeout=timeout, interval=0.2, what=f"order {order_id} to end (COMPLETED or CANCELLED)")

    async def loyalty(self, customer_id: str) -> dict[str, Any]:
        response = await self.http.get(f"/api/v1/customers/{customer_id}/loyalty")
        assert response.status_code == 200, f"GET loyalty of {customer_id}: {response.status_code} {response.text}"
        return response.json()

    async def set_stock(self, sku: str, quantity: int) -> httpx.Response:
        return await self.http.put(
            f"/api/v1/admin/inventory/{sku}", json={"quantity": quantity}, headers={"X-API-Key": ADMIN_API_KEY}
        )

    async def available(self, sku: str, quantity: int, timeout: float = 15.0) -> None:
        """Waits until the catalogue shows `quantity` units of `sku` (the stock projection)."""

        async def probe() -> bool:
            return (await self.products())[sku]["available"] == quantity

        await eventually(probe, timeout=timeout, what=f"GET /api/v1/products to show {quantity} units of {sku}")

    # --- the payment gateways (admin) ---

    async def payment_gateways(self) -> dict[str, dict[str, Any]]:
        """Each payment gateway's circuit breaker and call counts, by name."""
        response = await self.http.get("/api/v1/admin/payment-gateways", headers={"X-API-Key": ADMIN_API_KEY})
        assert response.status_code == 200, f"GET payment-gateways: {response.status_code} {response.text}"
        return {gateway["name"]: gateway for gateway in response.json()}

    async def set_payment_faults(self, name: str, faults: dict[str, Any]) -> httpx.Response:
        return await self.http.put(
            f"/api/v1/admin/payment-gateways/{name}/faults", json=faults, headers={"X-API-Key": ADMIN_API_KEY}
        )

    async def ledger(self, name: str) -> dict[str, Any]:
        """The simulated gateway's own books: {gateway, charges: [...], refunds: [...]}."""
        response = await self.http.get(f"/api/v1/admin/payment-gateways/{name}/charges", headers={"X-API-Key": ADMIN_API_KEY})
        assert response.status_code == 200, f"GET {name}'s ledger: {response.status_code} {response.text}"
        ledger = response.json()
        assert ledger.get("gateway") == name, ledger
        return ledger

    async def ledgers(self) -> dict[str, dict[str, Any]]:
        return {name: await self.ledger(name) for name in PAYMENT_GATEWAYS}


@pytest.fixture(scope="session")
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=GATEWAY_URL,
        headers={"X-API-Key": API_KEY},
        timeout=httpx.Timeout(15.0),
        limits=httpx.Limits(max_connections=50),
        event_hooks={"response": [_record_placed_order]},
    ) as client:
        yield client


@pytest.fixture
def api(http: httpx.AsyncClient, placed_orders: OrderRegistry) -> Api:
    return Api(http, placed_orders)


@pytest.fixture
async def anonymous() -> AsyncIterator[httpx.AsyncClient]:
    """A client that sends no API key."""
    async with httpx.AsyncClient(
        base_url=GATEWAY_URL, timeout=httpx.Timeout(15.0), event_hooks={"response": [_record_placed_order]}
    ) as client:
        yield client


# --- faults in the payment gateways -------------------------------------------------------


class PaymentFaults:
    """Sets faults on the simulated payment gateways; the `payment_faults` fixture clears them."""

    def __init__(self, api: Api) -> None:
        self.api = api

    async def set(self, name: str, **faults: Any) -> dict[str, Any]:
        response = await self.api.set_payment_faults(name, faults)
        assert response.status_code == 200, f"PUT {name}'s faults {faults}: {response.status_code} {response.text}"
        in_force = response.json()
        assert {k: in_force.get(k) for k in faults} == faults, f"{name} did not take {faults}: {in_force}"
        return in_force

    async def clear(self, name: str) -> None:
        response = await self.api.set_payment_faults(name, {})
        assert response.status_code == 200, f"could not clear {name}'s faults: {response.status_code} {response.text}"
        in_force = response.json()
        assert not in_force.get("outage") and not any(
            in_force.get(rate) for rate in ("error_rate", "timeout_rate", "drop_response_rate", "latency_ms")
        ), f"{name}'s faults are not cleared: {in_force}"

    async def clear_all(self) -> None:
        """Clears every gateway's faults, each one even if another could not be cleared."""
        failures = []
        for name in PAYMENT_GATEWAYS:
            try:
                await self.clear(name)
            except (AssertionError, httpx.HTTPError) as exc:
                failures.append(f"{name}: {exc!r}")
        assert not failures, f"could not clear the payment gateways' faults: {failures}"

    async def no_circuit_open(self, timeout: float = 20.0) -> None:
        """Waits until no gateway's circuit is open (an open one lets a trial call through at most
        a few seconds after its last failure), so the tests after this one find the primary in use again."""

        async def probe() -> bool:
            return all(status["state"] != "open" for status in (await self.api.payment_gateways()).values())

        await eventually(probe, timeout=timeout, interval=0.5, what="no payment gateway circuit to be open")


@pytest.fixture
async def payment_faults(api: Api) -> AsyncIterator[PaymentFaults]:
    """For a test that injects faults into the payment gateways. They are global to the stack, so
    both gateways' faults are cleared before the test and, whatever happens, after it; before and
    after it, it also waits until no circuit breaker is open (at most ~15 s after a test that
    opened one), so the primary is in use again for the tests that follow."""
    faults = PaymentFaults(api)
    await faults.clear_all()
    await faults.no_circuit_open()
    try:
        yield faults
    finally:
        await faults.clear_all()
    await faults.no_circuit_open()


# --- the events ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Record:
    """One Kafka record as it is on the wire."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    raw_headers: tuple[tuple[str, bytes], ...]

    @property
    def headers(self) -> dict[str, bytes]:
        return dict(self.raw_headers)

    def header(self, name: str) -> str | None:
        value = self.headers.get(name)
        return value.decode() if value is not None else None

    @property
    def type_name(self) -> str:
        """`OrderConfirmed` for `concerto.order.OrderConfirmed.v1`."""
        ce_type = self.header("ce_type") or ""
        parts = ce_type.split(".")
        return parts[2] if len(parts) == 4 else ce_type

    def __repr__(self) -> str:
        return f"<{self.topic}/{self.partition}@{self.offset} {self.header('ce_type')} key={self.key!r}>"


@dataclass
class EventLog:
    """Reads the domain topics from the beginning, with no consumer group (partitions are
    assigned, not subscribed), so nothing is committed and nothing is missed."""

    bootstrap_servers: str
    topics: tuple[str, ...] = DOMAIN_TOPICS
    _partitions: list[TopicPartition] = field(default_factory=list)

    async def partitions(self) -> list[TopicPartition]:
        if not self._partitions:
            admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap_servers)
            await admin.start()
            try:
                described = await admin.describe_topics(list(self.topics))
            finally:
                await admin.close()
            for topic in described:
                assert topic["error_code"] == 0 and topic["partitions"], f"topic {topic['topic']} is missing: {topic}"
                self._partitions += [TopicPartition(topic["topic"], p["partition"]) for p in topic["partitions"]]
        return self._partitions

    async def collect(
        self,
        match: Callable[[Record], bool],
        until: Callable[[list[Record]], bool],
        *,
        timeout: float = ORDER_DEADLINE,
        what: str = "events",
    ) -> list[Record]:
        """The records that `match`, once `until(records)` holds, plus whatever was already on
        the topics at that moment (so every event that caused the last one is included)."""
        partitions = await self.partitions()
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap_servers,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            client_id=unique("concerto-e2e"),
        )
        await consumer.start()
        try:
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*partitions)
            found: list[Record] = []
            end: dict[TopicPartition, int] | None = None
            deadline = time.monotonic() + timeout
            while True:
                if end is None and until(found):
                    end = await consumer.end_offsets(partitions)
                if end is not None and all([await consumer.position(tp) >= end[tp] for tp in partitions]):
                    return found
                if time.monotonic() > deadline:
                    raise AssertionError(
                        f"timed out after {timeout}s waiting for {what}; "
                        f"seen: {[(r.type_name, r.header('ce_time')) for r in found]}"
                    )
                batches = await consumer.getmany(timeout_ms=300, max_records=5000)
                for tp, records in batches.items():
                    for r in records:
                        record = Record(tp.topic, tp.partition, r.offset, r.key, r.value, tuple(r.headers or ()))
                        if match(record):
                            found.append(record)
        finally:
            await consumer.stop()


@pytest.fixture(scope="session")
def events() -> EventLog:
    return EventLog(KAFKA_BOOTSTRAP_SERVERS)


# --- the saga monitor ---------------------------------------------------------------------


class ConsumerControls:
    """Silences a context's consumer or makes it fail some event types; the
    `consumer_controls` fixture restores every context's consumer."""

    def __init__(self, api: Api) -> None:
        self.api = api

    async def set(self, context: str, **controls: Any) -> dict[str, Any]:
        return await self.api.set_consumer(context, **controls)

    async def restore_all(self) -> None:
        """Every context's consumer back to normal, each one even if another could not be."""
        failures = []
        for context in CONTEXTS:
            try:
                await self.api.set_consumer(context)
            except (AssertionError, httpx.HTTPError) as exc:
                failures.append(f"{context}: {exc!r}")
        assert not failures, f"could not restore the consumers: {failures}"


@pytest.fixture
async def consumer_controls(api: Api) -> AsyncIterator[ConsumerControls]:
    """For a test that pauses a context's consumer or makes it fail: the controls are global
    to the stack, so every context's consumer is restored (`{}`) before the test and, whatever
    happens, after it."""
    controls = ConsumerControls(api)
    await controls.restore_all()
    try:
        yield controls
    finally:
        await controls.restore_all()


# --- signing in -----------------------------------------------------------------------------


async def _sign_in(username: str) -> dict[str, str]:
    """A bearer token from the stack's development issuer, as the README's curl gets one
    (any customer id, or `operator` for the admin role): the Authorization header to send."""
    async with httpx.AsyncClient(base_url=DEV_ISSUER_URL, timeout=10) as issuer:
        answer = await issuer.post("/token", data={"grant_type": "password", "username": username, "password": "demo"})
    assert answer.status_code == 200, f"the development issuer refused {username}: {answer.text}"
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


@pytest.fixture
def sign_in() -> Callable[[str], Any]:
    return _sign_in


# --- the trace viewer ------------------------------------------------------------------------
#
# Zipkin, where the stack's services send their spans (ADR 18; ZIPKIN_URL, default
# http://127.0.0.1:9411), asked through its own API as its UI asks.

ZIPKIN_URL = os.environ.get("ZIPKIN_URL", "http://127.0.0.1:9411").rstrip("/")
# A span reaches Zipkin with its process's next batch (BatchSpanProcessor: every 5 s).
TRACE_DEADLINE = 30.0


class Zipkin:
    url = ZIPKIN_URL

    @staticmethod
    def service(span: dict[str, Any]) -> str | None:
        return span.get("localEndpoint", {}).get("serviceName")

    async def trace(self, trace_id: str, services: set[str]) -> list[dict[str, Any]]:
        """The trace's spans, once spans of every one of `services` (service names) are in it."""
        last: list[dict[str, Any]] = []

        async def probe() -> list[dict[str, Any]] | None:
            async with httpx.AsyncClient(timeout=10) as client:
                response = await client.get(f"{self.url}/api/v2/trace/{trace_id}")
            if response.status_code == 404:
                return None
            assert response.status_code == 200, response.text
            last[:] = response.json()
            return last if services <= {self.service(span) for span in last} else None

        try:
            return await eventually(probe, timeout=TRACE_DEADLINE, interval=0.5, what=f"spans of {sorted(services)} in trace {trace_id}")
        except AssertionError:
            found = sorted({str(self.service(span)) for span in last})
            raise AssertionError(f"trace {trace_id} in Zipkin has spans of {found} only, not of all of {sorted(services)}") from None


@pytest.fixture
def zipkin() -> Zipkin:
    """Zipkin, or a skip (saying why) when the stack runs without it (STACK_TRACE_VIEWER=off)."""
    try:
        healthy = httpx.get(f"{ZIPKIN_URL}/health", timeout=5).status_code == 200
    except httpx.HTTPError:
        healthy = False
    if not healthy:
        reason = f"no Zipkin at {ZIPKIN_URL}: the stack runs without its trace viewer (STACK_TRACE_VIEWER=off?)"
        print(reason)
        pytest.skip(reason)
    return Zipkin()
