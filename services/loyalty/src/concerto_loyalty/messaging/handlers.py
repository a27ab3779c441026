"""How the loyalty context reacts to payments: a paid order earns points, a refunded one
loses them. Each change is signalled to the customer's account workflow, started if needed."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import Client, WorkflowHandle

from concerto_contracts import Envelope
from concerto_contracts.events import PaymentCompleted, PaymentRefunded
from concerto_loyalty.workflows.inputs import TASK_QUEUE, AccountChange
from concerto_loyalty.workflows.loyalty_workflow import LoyaltyAccountWorkflow
from concerto_messaging import Handler
from concerto_runtime import Runtime, signal_with_start


async def send_to_account(client: Client, change: AccountChange, task_queue: str = TASK_QUEUE) -> WorkflowHandle:
    """The account's workflow is created by its first change."""
    return await signal_with_start(
        client,
        LoyaltyAccountWorkflow.run,
        [change.customer_id, None],
        id=f"loyalty-{change.customer_id}",
        task_queue=task_queue,
        signal="change",
        signal_args=[change],
    )


def handlers(runtime: Runtime) -> dict[type, Handler]:
    async def award(envelope: Envelope, _: AsyncSession) -> None:
        event: PaymentCompleted = envelope.event
        await send_to_account(
            runtime.temporal,
            AccountChange(
                kind="award",
                customer_id=event.order.customer.id,
                order_id=event.order_id,
                amount=event.amount,
                first_order=event.order.customer.first_order,
                correlation_id=envelope.correlation_id,
                causation_id=envelope.id,
            )
        )

    async def reverse(envelope: Envelope, _: AsyncSession) -> None:
        event: PaymentRefunded = envelope.event
        await send_to_account(
            runtime.temporal,
            AccountChange(
                kind="reverse",
                customer_id=event.customer_id,
                order_id=event.order_id,
                correlation_id=envelope.correlation_id,
                causation_id=envelope.id,
            )
        )

    return {PaymentCompleted: award, PaymentRefunded: reverse}
