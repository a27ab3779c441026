"""Issue 18: whatever order OrderConfirmed and OrderCancelled reach payment in, and however often,
payment ends where the causal order leaves it: the payment recorded with its cancellation
requested (so no attempt charges the card), the payment workflow and the refund workflow started
(the first stops before it charges, the second gives back anything taken). Property test
(hypothesis) over arrival orders, with redeliveries and any batching, through the real
EventConsumer and handlers on a real SQLite database and Temporal's test server; no worker polls
the task queue, so what is compared is what the handlers recorded and asked Temporal for."""

from __future__ import annotations

import uuid
from decimal import Decimal
from types import SimpleNamespace

import pytest
from sqlalchemy import select
from temporalio.client import WorkflowExecutionStatus
from temporalio.service import RPCError

from concerto_contracts.events import OrderCancelled, OrderConfirmed
from concerto_payment.adapters import db
from concerto_payment.domain.cards import payment_id_for
from concerto_payment.messaging import handlers as payment_handlers
from concerto_runtime.arrivals import context_under_test, deliver, every_arrival_ends_as_caused, on_the_wire, order_of_batons


def order_events(order_id: str) -> list:
    order = order_of_batons(order_id)
    return [
        OrderConfirmed(order_id=order_id, order=order, payment_method_id="pm-1"),
        OrderCancelled(order_id=order_id, customer_id="cust-42", reason="customer_request", total=Decimal("33.79"), currency="EUR"),
    ]


@pytest.fixture
def payment(tmp_path):
    # The test server is this test's own and runs no worker: the workflows the handlers start wait to be looked at.
    handlers = lambda client: payment_handlers.handlers(SimpleNamespace(temporal=client))  # noqa: E731
    with context_under_test(tmp_path, db.tables, group_id="payment-service", handlers=handlers) as context:
        yield context


def test_payment_ends_the_same_whatever_order_confirmation_and_cancellation_arrive_in(payment):
    async def started(workflow_id: str) -> bool:
        handle = payment.client.get_workflow_handle(workflow_id)
        try:
            running = (await handle.describe()).status == WorkflowExecutionStatus.RUNNING
        except RPCError:
            return False
        if running:
            await handle.terminate("the test has looked at it")
        return True

    async def outcome(arrival) -> dict:
        order_id = f"ord-{uuid.uuid4().hex[:12]}"
        records = [on_the_wire(event, source="/concerto/order", correlation_id=order_id) for event in order_events(order_id)]
        await deliver(payment.consumer, records, arrival)
        async with payment.sessions() as session:
            row = (await session.execute(select(db.payments).where(db.payments.c.order_id == order_id))).first()
        payment_id = payment_id_for(order_id)
        return {
            "payment": row and (row.status, row.amount, row.cancel_requested_at is not None),
            "workflows": {kind: await started(f"{kind}-{payment_id}") for kind in ("payment", "refund")},
        }

    caused = every_arrival_ends_as_caused(payment, outcome, ["OrderConfirmed", "OrderCancelled"])
    assert caused == {"payment": ("PENDING", Decimal("33.79"), True), "workflows": {"payment": True, "refund": True}}
