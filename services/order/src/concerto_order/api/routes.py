"""The order context's HTTP API, reached through the gateway only."""

from __future__ import annotations

import asyncio
import uuid

from fastapi import APIRouter, Depends, Header, Query
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from temporalio.client import WorkflowUpdateFailedError
from temporalio.service import RPCError

from concerto_contracts.http import (
    OrderAccepted,
    OrderLine,
    OrderPage,
    OrderStatus,
    OrderSubmission,
    OrderView,
    PaymentView,
    Product,
    ProductList,
    ShipmentView,
)
from concerto_observability import bind, new_correlation_id
from concerto_observability.metrics import counter
from concerto_order.adapters import db
from concerto_order.domain.catalog import CURRENCY
from concerto_order.domain.model import UnknownProducts, UnknownPromotions, check_order
from concerto_order.workflows.inputs import workflow_id
from concerto_order.workflows.order_workflow import OrderWorkflow
from concerto_order.workflows.starts import start_order_workflow
from concerto_runtime import Problem, Runtime, runtime_of

router = APIRouter()

ORDERS_PLACED = counter("concerto_orders_placed", "Orders accepted: each will end COMPLETED or CANCELLED")

# How long a cancellation waits for the order's workflow before answering 503.
CANCEL_TIMEOUT_SECONDS = 10


@router.post("/orders", status_code=202)
async def place_order(
    submission: OrderSubmission,
    runtime: Runtime = Depends(runtime_of),
    idempotency_key: str | None = Header(None),
    x_correlation_id: str | None = Header(None),
) -> OrderAccepted:
    async with runtime.read_sessions() as session:
        try:
            check_order([item.sku for item in submission.items], submission.promotion_codes, await db.catalog(session))
        except (UnknownProducts, UnknownPromotions) as exc:
            raise Problem(422, "Invalid order", str(exc)) from None

    order_id, correlation_id = str(uuid.uuid4()), x_correlation_id or new_correlation_id()
    try:
        async with runtime.sessions() as session, session.begin():
            await session.execute(
                insert(db.orders).values(
                    order_id=order_id,
                    customer_id=submission.customer.id,
                    status=OrderStatus.PENDING,
                    correlation_id=correlation_id,
                    idempotency_key=idempotency_key,
                    request_fingerprint=submission.request_fingerprint,
                    submission=submission.model_dump(mode="json"),
                    items=[item.model_dump(mode="json") for item in submission.items],
                )
            )
    except IntegrityError:
        # The same Idempotency-Key was used before: the same order if the body is the same.
        async with runtime.read_sessions() as session:
            existing = await db.find_by_idempotency_key(session, idempotency_key or "")
        if existing is None:
            raise
        if existing.request_fingerprint != submission.request_fingerprint:
            raise Problem(422, "Idempotency-Key reused", "this Idempotency-Key was already used with a different request body") from None
        order_id, correlation_id = existing.order_id, existing.correlation_id
        submission = OrderSubmission.model_validate(existing.submission)
    else:
        ORDERS_PLACED.inc()  # a retry with the same Idempotency-Key is the same order

    # The committed PENDING row is the request to start the workflow: if Temporal does not
    # answer now, the order starter starts it when it does, and the client gets its 202 either
    # way. A retry with the same Idempotency-Key reaches the same workflow, running or ended.
    with bind(correlation_id=correlation_id, order_id=order_id):
        await start_order_workflow(runtime, order_id, correlation_id, submission)
    async with runtime.read_sessions() as session:
        status = (await db.get_order(session, order_id)).status
    return OrderAccepted(order_id=order_id, status=status, correlation_id=correlation_id)


@router.get("/orders")
async def list_orders(
    customer_id: str, limit: int = Query(20, ge=1, le=200), offset: int = Query(0, ge=0), runtime: Runtime = Depends(runtime_of)
) -> OrderPage:
    """One customer's orders, the newest first."""
    async with runtime.read_sessions() as session:
        rows, total = await db.orders_of(session, customer_id, limit=limit, offset=offset)
    return OrderPage(items=[view(order) for order in rows], total=total, limit=limit, offset=offset)


@router.get("/orders/not-started")
async def orders_not_started(
    limit: int = Query(20, ge=1, le=200), offset: int = Query(0, ge=0), runtime: Runtime = Depends(runtime_of)
) -> OrderPage:
    """Orders still PENDING whose workflow could not be started, the oldest first; each says
    why (`start_failure`). The order starter tries them again every minute."""
    async with runtime.read_sessions() as session:
        rows, total = await db.not_started(session, limit=limit, offset=offset)
    return OrderPage(items=[view(order) for order in rows], total=total, limit=limit, offset=offset)


@router.get("/orders/{order_id}")
async def get_order(order_id: str, runtime: Runtime = Depends(runtime_of)) -> OrderView:
    async with runtime.read_sessions() as session:
        order = await db.get_order(session, order_id)
    if order is None:
        raise Problem(404, "Order not found", f"no order with id {order_id}")
    return view(order)


def view(order) -> OrderView:
    return OrderView(
        order_id=order.order_id,
        status=order.status,
        customer_id=order.customer_id,
        correlation_id=order.correlation_id,
        items=[OrderLine.model_validate(item) for item in order.items],
        totals=order.totals,
        cancellation_reason=order.cancellation_reason,
        payment=PaymentView.model_validate(order.payment) if order.payment else None,
        shipment=ShipmentView.model_validate(order.shipment) if order.shipment else None,
        created_at=order.created_at,
        updated_at=order.updated_at,
        start_failure=order.start_failure,
    )


@router.post("/orders/{order_id}/cancel", status_code=202)
async def cancel_order(order_id: str, runtime: Runtime = Depends(runtime_of)) -> OrderView:
    current = await get_order(order_id, runtime)
    if current.status == OrderStatus.CANCELLED:
        return current
    if current.status.terminal:
        raise Problem(409, "Order cannot be cancelled", f"the order is already {current.status.lower()}")
    try:
        async with asyncio.timeout(CANCEL_TIMEOUT_SECONDS):
            await runtime.temporal.get_workflow_handle(workflow_id(order_id)).execute_update(OrderWorkflow.request_cancellation)
    except WorkflowUpdateFailedError:
        raise Problem(409, "Order cannot be cancelled", "the order has already been handed to the carrier") from None
    except (RPCError, TimeoutError):
        # The workflow finished in the meantime, has not started yet, or Temporal is away.
        refreshed = await get_order(order_id, runtime)
        if refreshed.status == OrderStatus.CANCELLED:
            return refreshed
        if refreshed.status.terminal:
            raise Problem(409, "Order cannot be cancelled", f"the order is already {refreshed.status.lower()}") from None
        raise Problem(
            503, "Order cannot be cancelled right now", "the order's workflow could not be reached; try again shortly",
            headers={"Retry-After": "5"},
        ) from None
    return await get_order(order_id, runtime)


@router.get("/products")
async def list_products(runtime: Runtime = Depends(runtime_of)) -> ProductList:
    async with runtime.read_sessions() as session:
        catalog = await db.catalog(session)
        available = await db.stock(session)
    return ProductList(
        items=[
            Product(sku=p.sku, name=p.name, unit_price=p.unit_price, currency=CURRENCY, available=available.get(p.sku))
            for p in catalog.values()
        ]
    )
