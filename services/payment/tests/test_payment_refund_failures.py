"""Issue 18: a compensation that fails is an operator's matter, not a silent loop. The real
PaymentWorkflow and RefundWorkflow with the real PaymentActivities, over real HTTP against the
real simulated PSPs (faults through their admin API), on Temporal's time-skipping test server,
with the payment database (and its outbox) a real SQLite file.

- A refund the gateway refuses for good (4xx) ends at once in REFUND_FAILED with
  PaymentRefundFailed and a metric, and waits for an operator: retried, or recorded by hand.
- A refund failing for transient reasons is retried until the gateway takes it: REFUNDED.
- A charge that lands after the payment gave up is looked for until the answer window has
  passed, and refunded when found.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from concerto_contracts.values import CustomerSnapshot, LineItem, OrderSnapshot, ShippingAddress, Totals
from concerto_messaging import metadata as messaging_metadata
from concerto_messaging.tables import outbox
from concerto_messaging.unit_of_work import UnitOfWork
from concerto_payment.adapters import db
from concerto_payment.integration.gateways import Charge
from concerto_payment.integration.layer import PaymentGateways
from concerto_payment.workflows.activities import PaymentActivities
from concerto_payment.workflows.inputs import CollectPayment, RefundDecision, RefundPayment
from concerto_payment.workflows.payment_workflow import PaymentWorkflow, RefundWorkflow
from concerto_runtime.database import create_engine, create_sessions, create_tables
from concerto_runtime.temporal import create_worker
from concerto_runtime.testing import eventually, time_skipping_environment

AMOUNT = Decimal("33.79")


class PaymentRuntime:
    """What PaymentActivities use of the service's Runtime: its database and its outbox."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = self.read_sessions = sessions

    def unit_of_work(self) -> UnitOfWork:
        return UnitOfWork(self.sessions, source="/concerto/payment")


@pytest.fixture(scope="module")
async def env():
    async with time_skipping_environment() as env:
        yield env


@pytest.fixture
async def sessions(tmp_path: Path) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'payment.db'}")
    await create_tables(engine, messaging_metadata, db.tables)
    try:
        yield create_sessions(engine)
    finally:
        await engine.dispose()


@pytest.fixture
async def worker(env, make_layer, sessions) -> AsyncIterator[tuple[str, PaymentGateways]]:
    """A payment worker on a task queue of the test's own: (task queue, integration layer)."""
    layer = make_layer(failure_threshold=100)
    activities = PaymentActivities(PaymentRuntime(sessions), layer)
    task_queue = f"payment-refunds-{uuid.uuid4().hex[:8]}"
    acts = [activities.charge_card, activities.record_payment, activities.release_unclaimed_charge, activities.refund_payment, activities.record_refund_decision]
    async with create_worker(env.client, task_queue, [PaymentWorkflow, RefundWorkflow], acts):
        yield task_queue, layer


def order_snapshot(order_id: str) -> OrderSnapshot:
    return OrderSnapshot(
        order_id=order_id,
        customer=CustomerSnapshot(id="cust-42", first_order=False, email_masked="a***@example.com"),
        items=[LineItem(sku="CON-BATON", name="Conductor's baton", quantity=1, unit_price=Decimal("24.00"), weight_grams=50)],
        shipping_address=ShippingAddress(name="Ada Lovelace", line1="12 St James's Square", city="London", postal_code="SW1Y 4JH", country="GB"),
        totals=Totals(subtotal=Decimal("24.00"), discount=Decimal("0.00"), tax=Decimal("4.80"), shipping=Decimal("4.99"), total=AMOUNT, currency="EUR"),
        channel="web",
    )


async def new_payment(sessions, status: str = "PENDING", **values) -> tuple[str, str]:
    order_id = f"ord-{uuid.uuid4().hex[:12]}"
    payment_id = f"pay-{order_id}"
    async with sessions() as session, session.begin():
        await session.execute(insert(db.payment_methods).values(payment_method_id=f"pm-{order_id}", token="tok_visa", brand="visa", last4="4242"))
        await session.execute(
            insert(db.payments).values(
                payment_id=payment_id, order_id=order_id, customer_id="cust-42", amount=AMOUNT, currency="EUR", status=status, **values
            )
        )
    return order_id, payment_id


async def paid_payment(sessions, layer: PaymentGateways) -> tuple[str, str, str]:
    """A payment charged at cardpay for real: (order id, payment id, the charge's reference)."""
    order_id, payment_id = await new_payment(sessions)
    charged = await layer.charge(payment_id, Charge(key=payment_id, amount=AMOUNT, currency="EUR", token="tok_visa"))
    assert charged.gateway == "cardpay" and charged.outcome.approved
    async with sessions() as session, session.begin():
        await db.update_payment(session, payment_id, status="COMPLETED", gateway="cardpay", gateway_reference=charged.outcome.reference)
    return order_id, payment_id, charged.outcome.reference


async def payment(sessions, payment_id: str):
    async with sessions() as session:
        return await db.get_payment(session, payment_id)


def status_is(sessions, payment_id: str, status: str) -> Callable:
    async def probe():
        current = await payment(sessions, payment_id)
        return current if current.status == status else None

    return probe


async def published(sessions, order_id: str) -> list[tuple[str, dict]]:
    """The events the payment context published about the order (its outbox): (name, data)."""
    async with sessions() as session:
        rows = (await session.execute(select(outbox).where(outbox.c.key == order_id.encode()).order_by(outbox.c.id))).all()
    return [(row.event_type.split(".")[2], json.loads(row.value)) for row in rows]


def refunds_failed(gateway: str) -> float:
    return REGISTRY.get_sample_value("concerto_refunds_failed_total", {"gateway": gateway, "reason": "rejected"}) or 0.0


def refund_of(order_id: str, payment_id: str) -> RefundPayment:
    return RefundPayment(order_id=order_id, payment_id=payment_id, reason="out_of_stock", correlation_id="corr-18", causation_id="evt-18")


def decision(action: str, reason: str, reference: str | None = None) -> RefundDecision:
    return RefundDecision(
        decision_id=str(uuid.uuid4()), action=action, operator="operator", reason=reason, reference=reference,
        decided_at=datetime.now(timezone.utc),
    )


# --- 1. refused for good -----------------------------------------------------------------------


async def test_payment_refund_refused_for_good_is_refund_failed_at_once_then_retried_by_an_operator(env, psps, worker, sessions):
    cardpay, _ = psps
    task_queue, layer = worker
    order_id, payment_id, reference = await paid_payment(sessions, layer)
    before = refunds_failed("cardpay")
    await cardpay.set_faults(refuse_refunds=True)

    handle = await env.client.start_workflow(RefundWorkflow.run, refund_of(order_id, payment_id), id=f"refund-{payment_id}", task_queue=task_queue)
    failed = await eventually(status_is(sessions, payment_id, "REFUND_FAILED"), timeout=30, what="the payment REFUND_FAILED")

    assert failed.failure_reason == "cardpay answered HTTP 400"
    assert refunds_failed("cardpay") == before + 1
    events = await published(sessions, order_id)
    assert [name for name, _ in events] == ["PaymentRefundFailed"]
    assert events[0][1] | {"amount": None} == {
        "order_id": order_id, "payment_id": payment_id, "customer_id": "cust-42", "amount": None, "currency": "EUR",
        "gateway": "cardpay", "reason": "cardpay answered HTTP 400",
    }
    # Asked once, refused once: no silent loop. The workflow waits for an operator.
    assert (await cardpay.stats())["faults_injected"]["refund_refused"] >= 1
    assert await cardpay.refunds_of(reference) == []
    refund_calls = (await cardpay.stats())["faults_injected"]["refund_refused"]
    assert (await handle.describe()).status.name == "RUNNING"

    await cardpay.clear_faults()  # the account is fixed: the operator retries
    await handle.execute_update(RefundWorkflow.decide, decision("retry", "cardpay re-enabled refunds"))
    refunded = await eventually(status_is(sessions, payment_id, "REFUNDED"), timeout=30, what="the payment REFUNDED")
    await handle.result()

    assert (await cardpay.stats())["faults_injected"]["refund_refused"] == refund_calls
    (made,) = await cardpay.refunds_of(reference)
    assert (made["key"], made["status"], refunded.refund_id) == (f"refund-{payment_id}-retry-1", "succeeded", made["reference"])
    assert [name for name, _ in await published(sessions, order_id)] == ["PaymentRefundFailed", "PaymentRefunded"]
    async with sessions() as session:
        (audit,) = await db.refund_decisions_of(session, payment_id)
    assert (audit.action, audit.operator, audit.reason) == ("retry", "operator", "cardpay re-enabled refunds")


async def test_payment_refund_refused_for_good_is_recorded_as_refunded_by_hand(env, psps, worker, sessions):
    cardpay, _ = psps
    task_queue, layer = worker
    order_id, payment_id, reference = await paid_payment(sessions, layer)
    await cardpay.set_faults(refuse_refunds=True)

    handle = await env.client.start_workflow(RefundWorkflow.run, refund_of(order_id, payment_id), id=f"refund-{payment_id}", task_queue=task_queue)
    await eventually(status_is(sessions, payment_id, "REFUND_FAILED"), timeout=30, what="the payment REFUND_FAILED")
    by_hand = decision("refunded_by_hand", "bank transfer to the customer", reference="SEPA-2026-0042")
    await handle.execute_update(RefundWorkflow.decide, by_hand)
    await handle.result()

    refunded = await payment(sessions, payment_id)
    assert (refunded.status, refunded.refund_id) == ("REFUNDED", f"by-hand-{by_hand.decision_id}")
    assert await cardpay.refunds_of(reference) == []  # nothing went through the gateway
    names, (_, event) = [n for n, _ in await published(sessions, order_id)], (await published(sessions, order_id))[-1]
    assert names == ["PaymentRefundFailed", "PaymentRefunded"]
    assert event["recorded_by_hand"] == {
        "operator": "operator", "recorded_at": by_hand.decided_at.isoformat().replace("+00:00", "Z"),
        "reason": "bank transfer to the customer", "reference": "SEPA-2026-0042",
    }
    async with sessions() as session:
        (audit,) = await db.refund_decisions_of(session, payment_id)
    assert (audit.action, audit.operator, audit.reference) == ("refunded_by_hand", "operator", "SEPA-2026-0042")


# --- 2. refused for a while (transient), then accepted ----------------------------------------


async def test_payment_refund_failing_transiently_is_retried_until_the_gateway_takes_it(env, psps, worker, sessions, attempts):
    cardpay, _ = psps
    task_queue, layer = worker
    order_id, payment_id, reference = await paid_payment(sessions, layer)
    await cardpay.set_faults(error_rate=1.0)  # every call 503: nothing done, try again

    handle = await env.client.start_workflow(RefundWorkflow.run, refund_of(order_id, payment_id), id=f"refund-{payment_id}", task_queue=task_queue)

    async def retried_by_temporal() -> bool:
        # The layer tries 3 times per activity attempt: more than 3 means Temporal tried again.
        return len([a for a in await attempts(payment_id) if a[1:] == ("refund", "unavailable")]) > 3

    await eventually(retried_by_temporal, timeout=60, what="the refund retried by Temporal")
    assert (await payment(sessions, payment_id)).status == "COMPLETED"  # not given up, not refused
    await cardpay.clear_faults()

    await handle.result()
    refunded = await payment(sessions, payment_id)
    (made,) = await cardpay.refunds_of(reference)
    assert (refunded.status, refunded.refund_id, made["status"]) == ("REFUNDED", made["reference"], "succeeded")
    assert [name for name, _ in await published(sessions, order_id)] == ["PaymentRefunded"]


# --- 3. a charge that lands after the payment gave up -----------------------------------------


async def test_payment_a_charge_that_lands_after_the_payment_gave_up_is_found_and_refunded(env, psps, worker, sessions, attempts):
    """Every call times out until the payment's deadline (the charge pinned to cardpay); then
    cardpay answers, but has no charge yet: the in-flight attempt lands only later (made here,
    with the same idempotency key, once a look-up has found nothing). It is refunded."""
    cardpay, _ = psps
    task_queue, layer = worker
    order_id, payment_id = await new_payment(sessions)
    await cardpay.set_faults(timeout_rate=1.0, hang_seconds=1.5)
    request = CollectPayment(
        payment_id=payment_id, payment_method_id=f"pm-{order_id}", correlation_id="corr-18", deadline_seconds=5,
        answer_window_seconds=600, order=order_snapshot(order_id),
    )

    handle = await env.client.start_workflow(PaymentWorkflow.run, request, id=f"payment-{payment_id}", task_queue=task_queue)
    await eventually(status_is(sessions, payment_id, "FAILED"), timeout=90, what="the payment to give up")
    assert (await payment(sessions, payment_id)).failure_reason == "unavailable"
    await cardpay.clear_faults()

    async def looked_and_found_nothing() -> bool:
        return ("cardpay", "lookup", "not_found") in await attempts(payment_id)

    await eventually(looked_and_found_nothing, timeout=60, what="a look-up that finds nothing")
    late = await layer.gateway("cardpay").charge(Charge(key=payment_id, amount=AMOUNT, currency="EUR", token="tok_visa"))
    assert late.approved

    async def refunded() -> list:
        return await cardpay.refunds_of(late.reference)

    (made,) = await eventually(refunded, timeout=60, what="the late charge refunded")
    await handle.result()
    assert (made["key"], made["status"]) == (f"release-{payment_id}", "succeeded")
