"""How the payment context reacts to the order context's events: a confirmed order is paid
for; a cancelled order whose payment went through, or is still going through, is refunded."""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy.ext.asyncio import AsyncSession

from concerto_contracts import Envelope
from concerto_contracts.events import OrderCancelled, OrderConfirmed
from concerto_messaging import Handler
from concerto_payment.adapters import db
from concerto_payment.domain.cards import payment_id_for
from concerto_payment.settings import PaymentSettings
from concerto_payment.workflows.inputs import TASK_QUEUE, CollectPayment, RefundPayment
from concerto_payment.workflows.payment_workflow import PaymentWorkflow, RefundWorkflow
from concerto_runtime import Runtime, start_once


def handlers(runtime: Runtime) -> dict[type, Handler]:
    settings = PaymentSettings()

    async def collect_payment(envelope: Envelope, session: AsyncSession) -> None:
        event: OrderConfirmed = envelope.event
        payment_id = payment_id_for(event.order_id)
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

    async def refund_if_paid(envelope: Envelope, session: AsyncSession) -> None:
        event: OrderCancelled = envelope.event
        payment = await db.payment_for_order(session, event.order_id)
        if payment is None or payment.status in ("FAILED", "REFUNDED"):
            return  # never confirmed, or nothing taken, or already given back
        if payment.status == "PENDING":
            # Still being attempted (say, every gateway is down): the next attempt stops instead.
            await db.update_payment(session, payment.payment_id, cancel_requested_at=datetime.now(timezone.utc))
        await start_once(
            runtime.temporal,
            RefundWorkflow.run,
            RefundPayment(
                order_id=event.order_id,
                payment_id=payment.payment_id,
                reason=event.reason,
                correlation_id=envelope.correlation_id,
                causation_id=envelope.id,
            ),
            id=f"refund-{payment.payment_id}",
            task_queue=TASK_QUEUE,
        )

    return {OrderConfirmed: collect_payment, OrderCancelled: refund_if_paid}
