"""PaymentWorkflow: collect the payment for a confirmed order and announce the result.
RefundWorkflow: give the money back when a paid order is cancelled (a compensation)."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from concerto_payment.workflows.activities import PaymentActivities
    from concerto_payment.workflows.inputs import CollectPayment, PaymentResult, RefundPayment

ACTIVITY_OPTIONS = {
    "start_to_close_timeout": timedelta(seconds=30),
    "retry_policy": RetryPolicy(initial_interval=timedelta(milliseconds=200), maximum_interval=timedelta(seconds=10)),
}


@workflow.defn
class PaymentWorkflow:
    @workflow.run
    async def run(self, request: CollectPayment) -> PaymentResult:
        charge = await workflow.execute_activity_method(PaymentActivities.charge_card, request, **ACTIVITY_OPTIONS)
        result = PaymentResult(request=request, charge=charge)
        await workflow.execute_activity_method(PaymentActivities.record_payment, result, **ACTIVITY_OPTIONS)
        return result


@workflow.defn
class RefundWorkflow:
    @workflow.run
    async def run(self, refund: RefundPayment) -> None:
        await workflow.execute_activity_method(PaymentActivities.refund_payment, refund, **ACTIVITY_OPTIONS)
