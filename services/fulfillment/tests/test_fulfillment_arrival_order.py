"""Issue 18: whatever order PaymentCompleted and OrderCancelled reach fulfillment in (they travel
on different topics), and however often, fulfillment ends where the causal order leaves it:
nothing held or shipped for the order, and its part of the compensation announced once
(FulfillmentCancelled). Property test (hypothesis) over arrival orders, with redeliveries and any
batching, through the real EventConsumer, handlers, FulfillmentWorkflow and activities on a real
SQLite database and Temporal's test server. (OrderReadyToShip is left out: the order context
sends it only after fulfillment's own StockReserved, so it cannot overtake PaymentCompleted.)"""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal
from types import SimpleNamespace

import pytest
from sqlalchemy import select
from temporalio.service import RPCError

from concerto_contracts import decode
from concerto_contracts.events import FulfillmentCancelled, OrderCancelled, PaymentCompleted
from concerto_contracts.values import MaskedCard
from concerto_fulfillment import service
from concerto_fulfillment.adapters import db
from concerto_fulfillment.messaging import handlers as fulfillment_handlers
from concerto_fulfillment.workflows.fulfillment_workflow import FulfillmentWorkflow
from concerto_fulfillment.workflows.inputs import TASK_QUEUE
from concerto_messaging import UnitOfWork, add_to_outbox
from concerto_messaging.tables import outbox
from concerto_runtime.arrivals import context_under_test, deliver, every_arrival_ends_as_caused, on_the_wire, order_of_batons
from concerto_runtime.temporal import create_worker
from concerto_runtime.testing import eventually


def order_events(order_id: str) -> list:
    order = order_of_batons(order_id, quantity=2)
    return [
        PaymentCompleted(
            order_id=order_id, payment_id=f"pay-{order_id}", amount=Decimal("62.59"), currency="EUR",
            card=MaskedCard(brand="visa", last4="4242"), gateway="cardpay", order=order,
        ),  # fmt: skip
        OrderCancelled(order_id=order_id, customer_id="cust-42", reason="customer_request", total=Decimal("62.59"), currency="EUR"),
    ]


@pytest.fixture
def fulfillment(tmp_path):
    async def publish_in(session, event, *, correlation_id, causation_id=None):
        return await add_to_outbox(session, event, source="/concerto/fulfillment", correlation_id=correlation_id, causation_id=causation_id)

    handlers = lambda client: fulfillment_handlers.handlers(SimpleNamespace(temporal=client, publish_in=publish_in))  # noqa: E731
    with context_under_test(tmp_path, db.tables, group_id="fulfillment-service", handlers=handlers) as context:
        yield context


def test_fulfillment_ends_the_same_whatever_order_payment_and_cancellation_arrive_in(fulfillment):
    runtime = SimpleNamespace(
        sessions=fulfillment.sessions,
        read_sessions=fulfillment.sessions,
        unit_of_work=lambda: UnitOfWork(fulfillment.sessions, "/concerto/fulfillment"),
    )

    async def start() -> asyncio.Task:
        await service.seed_stock(runtime)
        return asyncio.create_task(create_worker(fulfillment.client, TASK_QUEUE, [FulfillmentWorkflow], service.activities(runtime)).run())

    worker = fulfillment.run(start())

    async def outcome(arrival) -> dict:
        order_id = f"ord-{uuid.uuid4().hex[:12]}"
        records = [on_the_wire(event, source="/concerto/payment", correlation_id=order_id) for event in order_events(order_id)]
        async with fulfillment.sessions() as session:
            stock_before = await db.total_available(session, "CON-BATON")
        await deliver(fulfillment.consumer, records, arrival)
        try:  # the workflow, if the payment started one, runs to its end (releasing the stock)
            await fulfillment.client.get_workflow_handle(fulfillment_handlers.workflow_id(order_id)).result()
        except RPCError:
            pass  # none started: cancelled before it was paid

        async def announced() -> list:
            async with fulfillment.sessions() as session:
                rows = (await session.execute(select(outbox).where(outbox.c.key == order_id.encode()))).all()
            events = [decode([(k, v.encode()) for k, v in row.headers.items()], row.key, row.value).event for row in rows]
            return [event for event in events if isinstance(event, FulfillmentCancelled)]

        cancelled = await eventually(announced, timeout=20, interval=0.05, what="FulfillmentCancelled for the order")
        async with fulfillment.sessions() as session:
            shipment = await db.get_shipment(session, order_id)
            held = stock_before - await db.total_available(session, "CON-BATON")
        return {
            "units held for the order": held,
            "shipped": shipment is not None and shipment.status == "DISPATCHED",
            "compensation announced": [event.reason for event in cancelled],
        }

    try:
        caused = every_arrival_ends_as_caused(fulfillment, outcome, ["PaymentCompleted", "OrderCancelled"], examples=15)
    finally:
        worker.cancel()
    assert caused == {"units held for the order": 0, "shipped": False, "compensation announced": ["customer_request"]}
