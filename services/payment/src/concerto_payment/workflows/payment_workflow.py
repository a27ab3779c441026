"""PaymentWorkflow: collect the payment for a confirmed order and announce the result.
RefundWorkflow: give the money back when a paid order is cancelled (a compensation)."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from concerto_runtime.workflows import activity_options, run_step
    from concerto_payment.workflows.activities import PaymentActivities
    from concerto_payment.workflows.inputs import ChargeResult, CollectPayment, PaymentResult, RefundPayment

ACTIVITY_OPTIONS = activity_options()
# While no gateway can take the payment, try again every few seconds, up to the deadline.
CHARGE_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), backoff_coefficient=1.5, maximum_interval=timedelta(seconds=5))


@workflow.defn
class PaymentWorkflow:
    @workflow.run
    async def run(self, request: CollectPayment) -> PaymentResult:
        try:
            charge = await workflow.execute_activity_method(
                PaymentActivities.charge_card,
                request,
                start_to_close_timeout=timedelta(seconds=60),
                schedule_to_close_timeout=timedelta(seconds=request.deadline_seconds),
                retry_policy=CHARGE_RETRY,
            )
        except ActivityError:
            # No gateway could take the payment before its deadline.
            charge = ChargeResult(approved=False, decline_reason="unavailable")
        result = PaymentResult(request=request, charge=charge)
        await run_step(PaymentActivities.record_payment, result)
        if charge.decline_reason in ("unavailable", "cancelled"):
            # An earlier attempt whose answer was lost may still have charged the card: undo it.
            await workflow.execute_activity_method(PaymentActivities.release_unclaimed_charge, request, **ACTIVITY_OPTIONS)
        return result


@workflow.defn
class RefundWorkflow:
    @workflow.run
    async def run(self, refund: RefundPayment) -> None:
        await workflow.execute_activity_method(PaymentActivities.refund_payment, refund, **ACTIVITY_OPTIONS)
