"""The API gateway: the only public door. It authenticates, rate-limits, validates, stamps a
correlation id, and routes to the bounded contexts behind it. It holds no business logic."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, Body, Depends, FastAPI, Header, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from fastapi_offline import FastAPIOffline
from pydantic import BaseModel
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from concerto_contracts.http import (
    IDENTIFIER,
    ConsumerControls,
    DeadLetter,
    DeadLetterPage,
    GatewayFaults,
    KeyFigures,
    LogLine,
    LoyaltyAccount,
    OrderAccepted,
    OrderLogs,
    OrderPage,
    OrderSubmission,
    OrderView,
    PaymentGatewayStatus,
    PaymentMethodCreated,
    PaymentStatusView,
    PlaceOrderRequest,
    ProductList,
    RefundDecisionCommand,
    RefundDecisionRequest,
    SagaPage,
    SagaStatus,
    StockLevel,
    Timeline,
)
from concerto_gateway.auth import Caller, Role, TokenVerifier, new_rate_limiter, require, spend
from concerto_gateway.body_size import BodySizeLimit
from concerto_gateway.console import router as console_router
from concerto_gateway.contracts import router as contracts_router
from concerto_gateway.figures import key_figures
from concerto_gateway.settings import GatewaySettings
from concerto_gateway.upstream import Upstream, relay
from concerto_observability import bind, new_correlation_id
from concerto_observability.metrics import install_metrics
from concerto_observability.order_logs import order_lines
from concerto_runtime import Problem, install_problem_handlers, problem_response


class ProblemDetails(BaseModel):
    type: str = "about:blank"
    title: str
    status: int
    detail: str
    instance: str | None = None


def _problems(*statuses: int) -> dict:
    return {s: {"model": ProblemDetails, "content": {"application/problem+json": {}}} for s in statuses}


CORRELATION_ID = re.compile(r"^[A-Za-z0-9._:-]{1,100}$")


# What every API answer carries (OWASP's REST security headers): never sniffed, framed or cached.
API_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
    "Cache-Control": "no-store",
}


def identifier(description: str):
    """What an id in a path may be (order ids, customer ids, skus, names): anything else is a
    422, never forwarded, so no odd byte reaches a service's URL."""
    return Path(pattern=IDENTIFIER, max_length=100, description=description)
customer = Depends(require(Role.CUSTOMER))
admin = Depends(require(Role.ADMIN))
api = APIRouter(prefix="/api/v1", responses=_problems(400, 401, 403, 413, 429, 502, 503))


def upstream(request: Request, name: str) -> Upstream:
    return request.app.state.upstreams[name]


@api.post("/orders", status_code=202, response_model=OrderAccepted, responses=_problems(422), tags=["orders"])
async def place_order(
    body: PlaceOrderRequest,
    request: Request,
    idempotency_key: str | None = Header(
        None, max_length=200, pattern=r"^[!-~]+$", description="Same key and body: the same order (printable ASCII, e.g. a UUID)"
    ),
    caller: Caller = customer,
) -> JSONResponse:
    """Place an order. It is accepted at once (202) and proceeds asynchronously: poll its status.
    A signed-in customer places orders for themselves only (`customer.id` is theirs)."""
    if not caller.may_act_for(body.customer.id):
        raise Problem(403, "Forbidden", "a customer places orders for themselves: customer.id must be the signed-in customer")
    # Order spam (OWASP API6): a budget per customer, however many keys or tokens act for them.
    await spend(request, request.app.state.settings.order_rate_limit, f"orders-for:{body.customer.id}")
    # Exchange the card token for a payment method reference: the token stops here.
    vaulted = await upstream(request, "payment").call("POST", "/payment-methods", json={"token": body.payment.token})
    if vaulted.status_code != 201:
        return relay(vaulted, request)
    submission = OrderSubmission(
        **body.model_dump(exclude={"payment"}),
        payment_method_id=PaymentMethodCreated.model_validate(vaulted.json()).payment_method_id,
        # What makes a retry the same order; never the card token.
        request_fingerprint=hashlib.sha256(body.model_dump_json(exclude={"payment"}).encode()).hexdigest(),
    )
    # A key is the caller's own: another caller's same key is another order.
    scoped_key = hashlib.sha256(f"{caller.budget}\n{idempotency_key}".encode()).hexdigest() if idempotency_key else None
    return relay(
        await upstream(request, "order").call(
            "POST", "/orders", json=submission.model_dump(mode="json"), headers={"Idempotency-Key": scoped_key}
        ),
        request,
    )


async def owned_order(request: Request, caller: Caller, order_id: str) -> JSONResponse:
    """The order as the order context has it. For a customer, 404 unless the order context
    answers 200 with an order of theirs (as if it did not exist: an order id says nothing about
    whose it is); only its 503 (try again) is passed on, as it tells nothing about the order."""
    answer = relay(await upstream(request, "order").call("GET", f"/orders/{order_id}"), request)
    if caller.customer_id is None or answer.status_code == 503:
        return answer
    if answer.status_code != 200 or not caller.may_act_for(json.loads(answer.body)["customer_id"]):
        raise Problem(404, "Order not found", f"no order with id {order_id}")
    return answer


@api.get("/orders", response_model=OrderPage, tags=["orders"])
async def list_orders(
    request: Request,
    caller: Caller = customer,
    customer_id: str | None = Query(None, pattern=IDENTIFIER, max_length=100, description="partners and operators: whose orders"),
    limit: int = Query(20, ge=1, le=200),
    offset: int = Query(0, ge=0, le=1_000_000),
) -> JSONResponse:
    """The signed-in customer's orders, the newest first (a partner or an operator names the customer)."""
    whose = caller.customer_id or customer_id
    if whose is None:
        raise Problem(422, "Invalid request", "customer_id: name the customer whose orders to list")
    params = {"customer_id": whose, "limit": limit, "offset": offset}
    return relay(await upstream(request, "order").call("GET", "/orders", params=params), request)


@api.get("/orders/{order_id}", response_model=OrderView, responses=_problems(404), tags=["orders"])
async def get_order(request: Request, order_id: str = identifier("the order's id"), caller: Caller = customer) -> JSONResponse:
    return await owned_order(request, caller, order_id)


@api.post("/orders/{order_id}/cancel", status_code=202, response_model=OrderView, responses=_problems(404, 409), tags=["orders"])
async def cancel_order(request: Request, order_id: str = identifier("the order's id"), caller: Caller = customer) -> JSONResponse:
    """Cancel an order; refused (409) once the shipment is on its way."""
    found = await owned_order(request, caller, order_id)
    if found.status_code != 200:
        return found
    return relay(await upstream(request, "order").call("POST", f"/orders/{order_id}/cancel"), request)


@api.get("/orders/{order_id}/timeline", response_model=Timeline, responses=_problems(404), tags=["orders"])
async def order_timeline(request: Request, order_id: str = identifier("the order's id"), caller: Caller = customer) -> JSONResponse:
    """Where the order is in its saga: every event the contexts published about it, in causal
    order, what is expected next and by when, and the saga's status (from the saga monitor)."""
    if caller.customer_id is not None:
        found = await owned_order(request, caller, order_id)
        if found.status_code != 200:  # the order context's 503: the monitor is not asked
            return found
    return relay(await upstream(request, "monitor").call("GET", f"/sagas/{order_id}/timeline"), request)


@api.get("/products", response_model=ProductList, tags=["catalog"], dependencies=[customer])
async def list_products(request: Request) -> JSONResponse:
    return relay(await upstream(request, "order").call("GET", "/products"), request)


@api.get("/customers/{customer_id}/loyalty", response_model=LoyaltyAccount, responses=_problems(404), tags=["loyalty"])
async def loyalty(request: Request, customer_id: str = identifier("the customer's id"), caller: Caller = customer) -> JSONResponse:
    if not caller.may_act_for(customer_id):
        raise Problem(404, "Customer not found", f"no loyalty account for {customer_id}")
    return relay(await upstream(request, "loyalty").call("GET", f"/customers/{customer_id}/loyalty"), request)


@api.put("/admin/inventory/{sku}", responses=_problems(404, 422), tags=["admin"], dependencies=[admin])
async def set_inventory(level: StockLevel, request: Request, sku: str = identifier("the product's sku")) -> JSONResponse:
    """Set a sku's stock level (admin)."""
    return relay(await upstream(request, "fulfillment").call("PUT", f"/inventory/{sku}", json=level.model_dump()), request)


@api.get("/admin/figures", response_model=KeyFigures, tags=["admin"], dependencies=[admin])
async def figures(request: Request) -> KeyFigures:
    """The key figures from every service's metrics: orders, saga durations, consumer lag,
    outbox backlog, dead letters, breakers (admin). Prometheus scrapes the same /metrics."""
    upstreams = request.app.state.upstreams
    pages = await asyncio.gather(*(upstream.metrics() for upstream in upstreams.values()))  # all at once
    return key_figures(dict(zip(upstreams, pages)))


@api.get("/admin/payment-gateways", response_model=list[PaymentGatewayStatus], tags=["admin"], dependencies=[admin])
async def payment_gateways(request: Request) -> JSONResponse:
    """Each payment gateway's circuit breaker state and call counts (admin)."""
    return relay(await upstream(request, "payment").call("GET", "/payment-gateways"), request)


@api.put("/admin/payment-gateways/{name}/faults", responses=_problems(404, 422), tags=["admin"], dependencies=[admin])
async def set_payment_gateway_faults(
    request: Request, name: str = identifier("the payment gateway, e.g. cardpay"), faults: GatewayFaults | None = Body(None)
) -> JSONResponse:
    """Inject faults into a simulated payment gateway; an empty body clears them (admin).
    `{"outage": true}` switches it off."""
    body = faults.model_dump(exclude_none=True) if faults else {}
    return relay(await upstream(request, "payment").call("PUT", f"/payment-gateways/{name}/faults", json=body), request)


@api.get("/admin/payment-gateways/{name}/charges", responses=_problems(404), tags=["admin"], dependencies=[admin])
async def payment_gateway_ledger(request: Request, name: str = identifier("the payment gateway, e.g. cardpay")) -> JSONResponse:
    """The charges and refunds a simulated payment gateway has on its books (admin)."""
    return relay(await upstream(request, "payment").call("GET", f"/payment-gateways/{name}/charges"), request)


@api.get("/admin/payments/{order_id}", response_model=PaymentStatusView, responses=_problems(404), tags=["admin"], dependencies=[admin])
async def payment_of_order(request: Request, order_id: str = identifier("the order's id")) -> JSONResponse:
    """The order's payment as the payment context has it: a refund refused for good
    (REFUND_FAILED, awaiting a decision), and every operator decision on it (admin)."""
    return relay(await upstream(request, "payment").call("GET", f"/payments/{order_id}"), request)


def operator_of(caller: Caller) -> str:
    """Who an admin caller is, for an audit record: the operator's subject from their token
    (`operator:<sub>`), or the admin API key (`api-key:admin`)."""
    return caller.budget


@api.post(
    "/admin/payments/{order_id}/refund/retry", status_code=202, response_model=PaymentStatusView,
    responses=_problems(404, 409, 422), tags=["admin"],
)
async def retry_refund(
    body: RefundDecisionRequest, request: Request, order_id: str = identifier("the order's id"), caller: Caller = admin
) -> JSONResponse:
    """Send a refund the payment gateway refused for good to it again; audited: who (from the
    sign-in), when, why (admin). 409 unless the refund awaits a decision."""
    return await decide_refund(request, order_id, "retry", body, caller)


@api.post(
    "/admin/payments/{order_id}/refund/refunded-by-hand", status_code=202, response_model=PaymentStatusView,
    responses=_problems(404, 409, 422), tags=["admin"],
)
async def record_refunded_by_hand(
    body: RefundDecisionRequest, request: Request, order_id: str = identifier("the order's id"), caller: Caller = admin
) -> JSONResponse:
    """Record a refund the gateway refused as made by hand (a bank transfer, say): the payment
    is REFUNDED and PaymentRefunded published with who, when, why, so the points are reversed
    and the saga's way back completes (admin). 409 unless the refund awaits a decision."""
    return await decide_refund(request, order_id, "refunded-by-hand", body, caller)


async def decide_refund(request: Request, order_id: str, decision: str, body: RefundDecisionRequest, caller: Caller) -> JSONResponse:
    """An operator's decision on a refused refund, passed on with who took it."""
    command = RefundDecisionCommand(**body.model_dump(), operator=operator_of(caller))
    return relay(await upstream(request, "payment").call("POST", f"/payments/{order_id}/refund/{decision}", json=command.model_dump()), request)


@api.get("/admin/sagas", response_model=SagaPage, tags=["admin"], dependencies=[admin])
async def sagas(
    request: Request,
    status: SagaStatus | None = Query(None, description="only sagas in this status, e.g. STUCK"),
    limit: int = Query(20, ge=1, le=200),
    offset: int = Query(0, ge=0, le=1_000_000),
) -> JSONResponse:
    """Order sagas, the most recently active first (admin)."""
    params = {"limit": limit, "offset": offset, **({"status": status.value} if status else {})}
    return relay(await upstream(request, "monitor").call("GET", "/sagas", params=params), request)


@api.get("/admin/orders/not-started", response_model=OrderPage, tags=["admin"], dependencies=[admin])
async def orders_not_started(request: Request, limit: int = Query(20, ge=1, le=200), offset: int = Query(0, ge=0, le=1_000_000)) -> JSONResponse:
    """Orders accepted but never started: still PENDING because their workflow could not be
    started, each with why (`start_failure`), the oldest first (admin)."""
    return relay(await upstream(request, "order").call("GET", "/orders/not-started", params={"limit": limit, "offset": offset}), request)


@api.get("/admin/orders/{order_id}/logs", response_model=OrderLogs, responses=_problems(404), tags=["admin"], dependencies=[admin])
async def order_logs(request: Request, order_id: str = identifier("the order's id")) -> OrderLogs:
    """The order's log lines from every component of the local stack, merged by time (admin; the
    console's journey, and `make logs ORDER=...`). 404 where the gateway sees no stack's logs."""
    settings: GatewaySettings = request.app.state.settings
    logs = settings.logs_dir or settings.data_dir / "logs"
    if not logs.is_dir():
        raise Problem(404, "No logs here", "the gateway sees no local stack's log files (under docker compose: `docker compose logs`)")
    lines = await asyncio.to_thread(order_lines, logs, order_id, limit=500)
    return OrderLogs(order_id=order_id, lines=[LogLine.model_validate({**line, "time": str(line.get("time", ""))}) for line in lines])


@api.get("/admin/dead-letters", response_model=DeadLetterPage, tags=["admin"], dependencies=[admin])
async def dead_letters(request: Request, limit: int = Query(20, ge=1, le=200), offset: int = Query(0, ge=0, le=1_000_000)) -> JSONResponse:
    """Messages a consumer gave up on, the newest first (admin)."""
    return relay(await upstream(request, "monitor").call("GET", "/dead-letters", params={"limit": limit, "offset": offset}), request)


@api.post("/admin/dead-letters/{dead_letter_id}/redrive", response_model=DeadLetter, responses=_problems(404, 409), tags=["admin"], dependencies=[admin])
async def redrive_dead_letter(request: Request, dead_letter_id: int = Path(ge=1, le=2**53)) -> JSONResponse:
    """Put a dead letter back on its topic, once its cause is fixed (admin). Consumers that had
    already applied the event ignore it again; the one that had given up applies it once."""
    return relay(await upstream(request, "monitor").call("POST", f"/dead-letters/{dead_letter_id}/redrive"), request)


CONTEXTS = ("order", "payment", "fulfillment", "loyalty", "monitor")


@api.get("/admin/consumers/{context}", response_model=ConsumerControls, responses=_problems(404), tags=["admin"], dependencies=[admin])
async def consumer_controls(request: Request, context: str = identifier("the context, e.g. loyalty")) -> JSONResponse:
    """A context's event consumer: paused or not, and which event types it is made to fail (admin)."""
    return relay(await upstream(request, _context(context)).call("GET", "/consumer"), request)


@api.put("/admin/consumers/{context}", response_model=ConsumerControls, responses=_problems(404, 422), tags=["admin"], dependencies=[admin])
async def set_consumer_controls(
    request: Request, context: str = identifier("the context, e.g. loyalty"), controls: ConsumerControls | None = Body(None)
) -> JSONResponse:
    """Silence a context (`{"paused": true}`: it stops reading events, and the saga monitor's
    deadlines fire), or make its handler reject some event types as invalid (`{"fail_event_types":
    ["PaymentCompleted"]}`: they go to the dead letters). An empty body restores it (admin)."""
    body = (controls or ConsumerControls()).model_dump()
    # Every replica's consumer: a context is silent only if all of its instances are.
    return relay(await upstream(request, _context(context)).call_every("PUT", "/consumer", json=body), request)


def _context(name: str) -> str:
    if name not in CONTEXTS:
        raise Problem(404, "Unknown context", f"no context named {name[:64]!r}; known: {', '.join(CONTEXTS)}")
    return name


def create_app(settings: GatewaySettings | None = None) -> FastAPI:
    settings = settings or GatewaySettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        timeout = settings.upstream_timeout_seconds
        signing_key = settings.service_signing_key.get_secret_value() if settings.service_signing_key else None
        app.state.upstreams = {
            name: Upstream(name, url, timeout, signing_key)
            for name, url in {
                "order": settings.order_url,
                "payment": settings.payment_url,
                "fulfillment": settings.fulfillment_url,
                "loyalty": settings.loyalty_url,
                "monitor": settings.monitor_url,
            }.items()
        }
        yield
        for client in app.state.upstreams.values():
            await client.close()

    # The docs page's scripts and styles are served by the gateway itself (fastapi-offline): no CDN.
    app = FastAPIOffline(
        title="Concerto API",
        version="1.0.0",
        description="Place and follow orders on the Concerto reference platform. Authenticate with an OAuth 2.0 bearer "
        "token (locally, from the development issuer: see the README) or, for trusted partners, `X-API-Key`. "
        "Errors are RFC 9457 problem details (`application/problem+json`).",
        lifespan=lifespan,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.rate_limiter = new_rate_limiter(settings.rate_limit_storage_uri)
    app.state.token_verifier = TokenVerifier(
        settings.oauth_issuer, settings.oauth_audience, settings.oauth_jwks_url or f"{settings.oauth_issuer}/jwks.json", settings.oauth_jwks_lifespan_seconds
    )
    install_problem_handlers(app)
    install_metrics(app)  # GET /metrics: requests and latency per route, nothing about any caller
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)

    @app.middleware("http")
    async def correlation(request: Request, call_next) -> Response:
        given = request.headers.get("X-Correlation-ID")
        if given is not None and not CORRELATION_ID.match(given):
            return problem_response(422, "Invalid request", "X-Correlation-ID must be 1-100 letters, digits or ._:-", request.url.path)
        cid = given or new_correlation_id()
        with bind(correlation_id=cid):
            response = await call_next(request)
        response.headers["X-Correlation-ID"] = cid
        if request.url.path.startswith("/api/"):
            response.headers.update(API_HEADERS)
        return response

    # Outermost: the client address every budget is counted by. X-Forwarded-For (and -Proto) only
    # from a proxy in TRUSTED_PROXIES; uvicorn's own handling, which trusts any peer on
    # 127.0.0.1, is switched off where the gateway is served (__main__).
    if settings.trusted_proxies:
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=settings.trusted_proxies)

    @app.get("/health/live", tags=["health"])
    async def live() -> dict:
        return {"status": "alive"}

    @app.get("/health/ready", tags=["health"])
    async def ready(request: Request) -> JSONResponse:
        down = [name for name, client in request.app.state.upstreams.items() if not await client.ready()]
        if down:
            return problem_response(503, "Not ready", f"not ready: {', '.join(down)}", "/health/ready")
        return JSONResponse({"status": "ready"})

    app.include_router(api)
    app.include_router(console_router)
    app.include_router(contracts_router)
    app.openapi = lambda: app.openapi_schema or _problems_for_invalid_requests(FastAPI.openapi(app))
    return app


def _problems_for_invalid_requests(schema: dict) -> dict:
    """FastAPI documents its 422 as a plain JSON validation error; ours is problem+json."""
    for operations in schema["paths"].values():
        for operation in operations.values():
            if "422" in operation.get("responses", {}):
                operation["responses"]["422"] = {
                    "description": "Invalid request",
                    "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/ProblemDetails"}}},
                }
    for unused in ("HTTPValidationError", "ValidationError"):
        schema.get("components", {}).get("schemas", {}).pop(unused, None)
    return schema
