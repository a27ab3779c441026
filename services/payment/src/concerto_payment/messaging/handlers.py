"""How the payment context reacts to the order context's events: a confirmed order is paid
for; a cancelled order whose payment went through, or is still going through, is refunded.

The two may arrive the other way round (a replica's relay that died holding OrderConfirmed, a
redrive): a cancellation with no payment yet is remembered, and the confirmation that follows
starts a payment that stops before it charges, then the refund, as if the cancellation had
come right after it."""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy.ext.asyncio import AsyncSession

from concerto_contracts import Envelope
from concerto_contracts.events import OrderCancelled, OrderConfirmed
from concerto_messaging import Handler, database_first
from concerto_payment.adapters import db
from concerto_payment.domain.cards import payment_id_for
from concerto_payment.settings import PaymentSettings
from concerto_payment.workflows.inputs import TASK_QUEUE, CollectPayment, RefundPayment
from concerto_payment.workflows.payment_workflow import PaymentWorkflow, RefundWorkflow
from concerto_runtime import Runtime, start_once


def handlers(runtime: Runtime) -> dict[type, Handler]:
    settings = PaymentSettings()

    # Both read the payment's tables first, in the consumer's transaction.
    @database_first
    async def collect_payment(envelope: Envelope, session: AsyncSession) -> None:
        event: OrderConfirmed = envelope.event
        payment_id = payment_id_for(event.order_id)
        cancellation = await db.cancellation_before_payment(session, event.order_id)
        if await db.get_payment(session, payment_id) is None:
            # Recorded with the inbox row, so a cancellation that follows always finds it.
            await session.execute(
                db.payments.insert().values(
                    payment_id=payment_id,
                    order_id=event.order_id,
                    customer_id=event.order.customer.id,
                    amount=event.order.totals.total,
                    currency=event.order.totals.currency,
                    status="PENDING",
                    # Cancelled already: the first attempt stops before it charges anything.
                    cancel_requested_at=cancellation.cancelled_at if cancellation else None,
                )
            )
        await start_once(
            runtime.temporal,
            PaymentWorkflow.run,
            CollectPayment(
                payment_id=payment_id,
                payment_method_id=event.payment_method_id,
                deadline_seconds=settings.payment_deadline_seconds,
                correlation_id=envelope.correlation_id,
                causation_id=envelope.id,
                order=event.order,
            ),
            id=f"payment-{payment_id}",
            task_queue=TASK_QUEUE,
        )
        if cancellation is not None:
            await start_refund(event.order_id, payment_id, cancellation.reason, envelope.correlation_id, cancellation.event_id)

    @database_first
    async def refund_if_paid(envelope: Envelope, session: AsyncSession) -> None:
        event: OrderCancelled = envelope.event
        payment = await db.payment_for_order(session, event.order_id)
        if payment is None:
            # Not confirmed yet, as far as payment knows: remember it, so the confirmation that
            # may still arrive never charges this order.
            await db.remember_cancellation(session, event.order_id, event.reason, envelope.id)
            return
        if payment.status in ("FAILED", "REFUNDED"):
            return  # nothing taken, or already given back
        if payment.status == "PENDING":
            # Still being attempted (say, every gateway is down): the next attempt stops instead.
            await db.update_payment(session, payment.payment_id, cancel_requested_at=datetime.now(timezone.utc))
        await start_refund(event.order_id, payment.payment_id, event.reason, envelope.correlation_id, envelope.id)

    async def start_refund(order_id: str, payment_id: str, reason: str, correlation_id: str, causation_id: str) -> None:
        await start_once(
            runtime.temporal,
            RefundWorkflow.run,
            RefundPayment(
                order_id=order_id, payment_id=payment_id, reason=reason, correlation_id=correlation_id, causation_id=causation_id
            ),
            id=f"refund-{payment_id}",
            task_queue=TASK_QUEUE,
        )

    return {OrderConfirmed: collect_payment, OrderCancelled: refund_if_paid}
