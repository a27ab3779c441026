"""An operator's part in a refund the gateway refused for good (issue 18): see the payment, and
decide, retrying the refund or recording it as refunded by hand. Reached through the gateway's
admin API only (its signed calls, ADR 12), which names the signed-in operator.

A decision is RefundWorkflow's update `decide`: the workflow takes one at a time, and only
while it waits for one, so a retry under way and a refund recorded by hand can never cross.
The workflow records the decision (who, when, why) with what it does."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timezone

from fastapi import APIRouter, Depends
from temporalio.client import WorkflowUpdateFailedError
from temporalio.service import RPCError

from concerto_contracts.http import PaymentStatusView, RefundDecisionCommand, RefundDecisionView
from concerto_payment.adapters import db
from concerto_payment.workflows.inputs import RefundDecision
from concerto_payment.workflows.payment_workflow import RefundWorkflow
from concerto_runtime import Problem, Runtime, runtime_of

router = APIRouter(prefix="/payments")

DECIDE_TIMEOUT_SECONDS = 10


@router.get("/{order_id}")
async def payment_of_order(order_id: str, runtime: Runtime = Depends(runtime_of)) -> PaymentStatusView:
    async with runtime.read_sessions() as session:
        payment = await db.payment_for_order(session, order_id)
        if payment is None:
            raise Problem(404, "Payment not found", f"no payment for order {order_id}")
        decisions = await db.refund_decisions_of(session, payment.payment_id)
    return PaymentStatusView(
        order_id=payment.order_id,
        payment_id=payment.payment_id,
        status=payment.status,
        amount=payment.amount,
        currency=payment.currency,
        gateway=payment.gateway,
        failure_reason=payment.failure_reason,
        refund_id=payment.refund_id,
        awaiting_decision=payment.status == "REFUND_FAILED",
        decisions=[RefundDecisionView.model_validate(row, from_attributes=True) for row in decisions],
    )


@router.post("/{order_id}/refund/retry", status_code=202)
async def retry_refund(order_id: str, command: RefundDecisionCommand, runtime: Runtime = Depends(runtime_of)) -> PaymentStatusView:
    """Send the refused refund to the gateway again (under a refund key of its own)."""
    return await _decide(order_id, "retry", command, runtime)


@router.post("/{order_id}/refund/refunded-by-hand", status_code=202)
async def record_refunded_by_hand(order_id: str, command: RefundDecisionCommand, runtime: Runtime = Depends(runtime_of)) -> PaymentStatusView:
    """The money went back outside the gateway: the payment is REFUNDED and PaymentRefunded
    published, carrying who recorded it, when and why."""
    return await _decide(order_id, "refunded_by_hand", command, runtime)


async def _decide(order_id: str, action: str, command: RefundDecisionCommand, runtime: Runtime) -> PaymentStatusView:
    current = await payment_of_order(order_id, runtime)
    if not current.awaiting_decision:
        raise Problem(409, "No refund decision awaited", f"the payment is {current.status}: only a refused refund (REFUND_FAILED) awaits one")
    decision = RefundDecision(
        decision_id=str(uuid.uuid4()),
        action=action,
        operator=command.operator,
        reason=command.reason,
        reference=command.reference,
        decided_at=datetime.now(timezone.utc),
    )
    try:
        async with asyncio.timeout(DECIDE_TIMEOUT_SECONDS):
            await runtime.temporal.get_workflow_handle(f"refund-{current.payment_id}").execute_update(RefundWorkflow.decide, decision)
    except WorkflowUpdateFailedError:
        raise Problem(409, "No refund decision awaited", "a decision on this refund is being carried out; look again shortly") from None
    except (RPCError, TimeoutError):
        raise Problem(
            503, "Refund decision not delivered", "the refund's workflow could not be reached; try again shortly", headers={"Retry-After": "5"}
        ) from None
    return await payment_of_order(order_id, runtime)
