"""PaymentWorkflow: collect the payment for a confirmed order and announce the result.
RefundWorkflow: give the money back when a paid order is cancelled (a compensation)."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from concerto_runtime.workflows import activity_options, run_step
    from concerto_payment.workflows.activities import PaymentActivities
    from concerto_payment.workflows.inputs import (
        NOT_FOUND,
        REFUSED,
        ChargeResult,
        CollectPayment,
        PaymentResult,
        RefundDecided,
        RefundDecision,
        RefundPayment,
    )

ACTIVITY_OPTIONS = activity_options()
# While no gateway can take the payment, try again every few seconds, up to the deadline.
CHARGE_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), backoff_coefficient=1.5, maximum_interval=timedelta(seconds=5))

# How often to look for a late charge: ten looks over the window, between 1 s and 30 s apart.
LOOKS_PER_WINDOW = 10


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
            await self._release_a_late_charge(request)
        return result

    async def _release_a_late_charge(self, request: CollectPayment) -> None:
        """The last attempt may still have been in flight when the payment gave up: its charge
        can turn up at the gateway later. Look for it (a durable timer between looks) until the
        gateway's answer window has passed; found, it is refunded."""
        window_ends = workflow.now() + timedelta(seconds=request.answer_window_seconds)
        between_looks = timedelta(seconds=max(1, min(30, request.answer_window_seconds // LOOKS_PER_WINDOW)))
        while True:
            found = await workflow.execute_activity_method(PaymentActivities.release_unclaimed_charge, request, **ACTIVITY_OPTIONS)
            if found != NOT_FOUND or workflow.now() >= window_ends:
                return  # released, nothing pinned to a gateway, or the window has passed
            await workflow.sleep(min(between_looks, window_ends - workflow.now()))


@workflow.defn
class RefundWorkflow:
    """Refunds through the gateway that charged, retrying what may be transient (with backoff,
    without limit: the monitor's refund deadline shows it meanwhile). A refusal for good (the
    gateway answers 4xx) is recorded (REFUND_FAILED, PaymentRefundFailed) and then waits for an
    operator: retry the refund, or record it as refunded by hand."""

    def __init__(self) -> None:
        self._decisions: list[RefundDecision] = []
        self._awaiting_decision = False

    @workflow.run
    async def run(self, refund: RefundPayment) -> None:
        outcome = await workflow.execute_activity_method(PaymentActivities.refund_payment, refund, **ACTIVITY_OPTIONS)
        while outcome == REFUSED:
            self._awaiting_decision = True
            await workflow.wait_condition(lambda: bool(self._decisions))
            self._awaiting_decision = False
            decision = self._decisions.pop(0)
            await run_step(PaymentActivities.record_refund_decision, RefundDecided(refund=refund, decision=decision))
            if decision.action == "refunded_by_hand":
                return
            refund = refund.model_copy(update={"retry": refund.retry + 1})
            outcome = await workflow.execute_activity_method(PaymentActivities.refund_payment, refund, **ACTIVITY_OPTIONS)

    @workflow.update
    async def decide(self, decision: RefundDecision) -> None:
        self._decisions.append(decision)

    @decide.validator
    def _only_while_a_decision_is_awaited(self, decision: RefundDecision) -> None:
        # One decision at a time, and only on a refused refund: never while a refund is under way.
        if not self._awaiting_decision or self._decisions:
            raise ApplicationError("no decision is awaited: the refund is not refused, or a decision is being carried out", type="NoDecisionAwaited")
