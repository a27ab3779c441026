"""How the payment context reacts to the order context's events: a confirmed order is paid
for; a cancelled order whose payment went through, or is still going through, is refunded."""

from __future__ import annotations

import logging

from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from concerto_contracts import Envelope
from concerto_contracts.events import OrderCancelled, OrderConfirmed
from concerto_messaging import Handler
from concerto_payment.adapters import db
from concerto_payment.domain.cards import payment_id_for
from concerto_payment.workflows.inputs import TASK_QUEUE, CollectPayment, RefundPayment
from concerto_payment.workflows.payment_workflow import PaymentWorkflow, RefundWorkflow
from concerto_runtime import Runtime

log = logging.getLogger(__name__)


def handlers(runtime: Runtime) -> dict[type, Handler]:
    async def start_workflow(workflow_run, argument, workflow_id: str) -> None:
        try:
            await runtime.temporal.start_workflow(
                workflow_run,
                argument,
                id=workflow_id,
                task_queue=TASK_QUEUE,
                # A redelivered event finds the workflow running, or finished: never a second one.
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            )
        except WorkflowAlreadyStartedError:
            log.info("%s already ran", workflow_id)

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
        await start_workflow(
            PaymentWorkflow.run,
            CollectPayment(
                payment_id=payment_id,
                payment_method_id=event.payment_method_id,
                correlation_id=envelope.correlation_id,
                causation_id=envelope.id,
                order=event.order,
            ),
            f"payment-{payment_id}",
        )

    async def refund_if_paid(envelope: Envelope, session: AsyncSession) -> None:
        event: OrderCancelled = envelope.event
        payment = await db.payment_for_order(session, event.order_id)
        if payment is None or payment.status in ("FAILED", "REFUNDED"):
            return  # never confirmed, or nothing taken, or already given back
        await start_workflow(
            RefundWorkflow.run,
            RefundPayment(
                order_id=event.order_id,
                payment_id=payment.payment_id,
                reason=event.reason,
                correlation_id=envelope.correlation_id,
                causation_id=envelope.id,
            ),
            f"refund-{payment.payment_id}",
        )

    return {OrderConfirmed: collect_payment, OrderCancelled: refund_if_paid}
