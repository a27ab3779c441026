"""Issue 18: whatever order PaymentCompleted and PaymentRefunded reach loyalty in, and however
often, the account ends where the causal order leaves it: the points awarded, then taken back,
both announced. Property test (hypothesis) over arrival orders, with redeliveries and any
batching, through the real EventConsumer, handlers, LoyaltyAccountWorkflow and apply_change on a
real SQLite database and Temporal's test server."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal
from types import SimpleNamespace

import pytest
from sqlalchemy import select
from temporalio import activity

from concerto_contracts import decode
from concerto_contracts.events import PaymentCompleted, PaymentRefunded
from concerto_contracts.values import MaskedCard
from concerto_loyalty.adapters import db
from concerto_loyalty.messaging import handlers as loyalty_handlers
from concerto_loyalty.workflows.activities import LoyaltyActivities
from concerto_loyalty.workflows.inputs import TASK_QUEUE, AccountChange
from concerto_loyalty.workflows.loyalty_workflow import LoyaltyAccountWorkflow
from concerto_messaging import UnitOfWork
from concerto_messaging.tables import outbox
from concerto_runtime.arrivals import context_under_test, deliver, every_arrival_ends_as_caused, on_the_wire, order_of_batons
from concerto_runtime.temporal import create_worker
from concerto_runtime.testing import Executions, eventually


def payment_events(order_id: str, customer_id: str) -> list:
    order = order_of_batons(order_id, customer_id=customer_id)
    common = {"order_id": order_id, "payment_id": f"pay-{order_id}", "amount": Decimal("33.79"), "currency": "EUR"}
    return [
        PaymentCompleted(**common, card=MaskedCard(brand="visa", last4="4242"), gateway="cardpay", order=order),
        PaymentRefunded(**common, refund_id=f"re-{order_id}", customer_id=customer_id, reason="customer_request", gateway="cardpay"),
    ]


@pytest.fixture
def loyalty(tmp_path):
    handlers = lambda client: loyalty_handlers.handlers(SimpleNamespace(temporal=client))  # noqa: E731
    with context_under_test(tmp_path, db.tables, group_id="loyalty-service", handlers=handlers) as context:
        yield context


def test_an_account_ends_the_same_whatever_order_award_and_refund_arrive_in(loyalty):
    applied = Executions()
    changes = []
    real = LoyaltyActivities(SimpleNamespace(unit_of_work=lambda: UnitOfWork(loyalty.sessions, "/concerto/loyalty")))

    @activity.defn(name="apply_change")
    async def apply_change(change: AccountChange) -> None:
        await real.apply_change(change)
        if applied.first():
            changes.append(change.order_id)

    async def start_worker() -> asyncio.Task:
        return asyncio.create_task(create_worker(loyalty.client, TASK_QUEUE, [LoyaltyAccountWorkflow], [apply_change]).run())

    worker = loyalty.run(start_worker())

    async def outcome(arrival) -> dict:
        order_id, customer_id = f"ord-{uuid.uuid4().hex[:12]}", f"cust-{uuid.uuid4().hex[:8]}"
        records = [on_the_wire(event, source="/concerto/payment", correlation_id=order_id) for event in payment_events(order_id, customer_id)]
        await deliver(loyalty.consumer, records, arrival)

        async def both_applied() -> bool:
            return changes.count(order_id) == 2

        await eventually(both_applied, timeout=20, interval=0.02, what="the account workflow to apply the award and the reversal")
        async with loyalty.sessions() as session:
            account = await db.get_account(session, customer_id)
            ledger = sorted((row.reason, row.points) for row in await db.history(session, customer_id))
            announced = [
                decode([(k, v.encode()) for k, v in row.headers.items()], row.key, row.value).event
                for row in (await session.execute(select(outbox).where(outbox.c.key == order_id.encode()).order_by(outbox.c.id))).all()
            ]
        return {
            "account": (account.points, account.tier),
            "ledger": ledger,
            "announced": [(type(event).__name__, event.points, event.balance) for event in announced],
        }

    try:
        caused = every_arrival_ends_as_caused(loyalty, outcome, ["PaymentCompleted", "PaymentRefunded"], examples=15)
    finally:
        worker.cancel()
    assert caused == {
        "account": (0, "standard"),
        "ledger": [("awarded", 33), ("reversed", -33)],
        "announced": [("PointsAwarded", 33, 33), ("PointsReversed", 33, 0)],
    }
