"""How the fulfillment context reacts to other contexts' events: a paid order is fulfilled;
a cancelled order is not, or stops its fulfillment if the parcel has not left yet."""

from __future__ import annotations

import logging

from sqlalchemy.ext.asyncio import AsyncSession

from concerto_contracts import Envelope
from concerto_contracts.events import FulfillmentCancelled, OrderCancelled, OrderReadyToShip, PaymentCompleted
from concerto_fulfillment.adapters import db
from concerto_fulfillment.workflows.fulfillment_workflow import FulfillmentWorkflow
from concerto_fulfillment.workflows.inputs import TASK_QUEUE, FulfillOrder
from concerto_messaging import Handler, database_first
from concerto_runtime import Runtime, signal_if_running, start_once

log = logging.getLogger(__name__)


def workflow_id(order_id: str) -> str:
    return f"fulfillment-{order_id}"


def handlers(runtime: Runtime) -> dict[type, Handler]:
    # fulfill and stop_fulfillment read the cancellations first, in the consumer's transaction.
    @database_first
    async def fulfill(envelope: Envelope, session: AsyncSession) -> None:
        event: PaymentCompleted = envelope.event
        reason = await db.cancellation_reason(session, event.order_id)
        if reason is not None:
            log.info("payment for an order already cancelled: not fulfilled")
            # Payment refunds it; say that fulfillment's part is settled too (nothing reserved).
            await runtime.publish_in(
                session,
                FulfillmentCancelled(order_id=event.order_id, reason=reason),
                correlation_id=envelope.correlation_id,
                causation_id=envelope.id,
            )
            return
        await start_once(
            runtime.temporal,
            FulfillmentWorkflow.run,
            FulfillOrder(
                payment_id=event.payment_id, correlation_id=envelope.correlation_id, causation_id=envelope.id, order=event.order
            ),
            id=workflow_id(event.order_id),
            task_queue=TASK_QUEUE,
        )

    @database_first
    async def stop_fulfillment(envelope: Envelope, session: AsyncSession) -> None:
        # The two events travel on different topics, so the cancellation may arrive first:
        # remember it for `fulfill`, and stop a fulfillment already under way.
        event: OrderCancelled = envelope.event
        if not await db.is_cancelled(session, event.order_id):
            await session.execute(db.cancelled_orders.insert().values(order_id=event.order_id, reason=event.reason))
        # Not running: not paid yet (see above), or already finished.
        await signal_if_running(runtime.temporal, workflow_id(event.order_id), FulfillmentWorkflow.order_cancelled)

    async def ship(envelope: Envelope, _: AsyncSession) -> None:
        event: OrderReadyToShip = envelope.event
        await signal_if_running(runtime.temporal, workflow_id(event.order_id), FulfillmentWorkflow.order_ready_to_ship)

    return {PaymentCompleted: fulfill, OrderCancelled: stop_fulfillment, OrderReadyToShip: ship}
