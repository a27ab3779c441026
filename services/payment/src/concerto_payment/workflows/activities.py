"""PaymentWorkflow's and RefundWorkflow's activities. Each may run more than once, so each
looks at the payment's recorded status before it acts."""

from __future__ import annotations

from temporalio import activity
from temporalio.exceptions import ApplicationError

from concerto_contracts.events import PaymentCompleted, PaymentFailed, PaymentRefunded
from concerto_observability import bind
from concerto_payment.adapters import db
from concerto_payment.domain.cards import DECLINES
from concerto_payment.workflows.inputs import ChargeResult, CollectPayment, PaymentResult, RefundPayment
from concerto_runtime import Runtime

# The stand-in for an external payment provider until the integration layer replaces it.
TEST_GATEWAY = "test-mode"


class PaymentActivities:
    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime

    @activity.defn
    async def charge_card(self, request: CollectPayment) -> ChargeResult:
        async with self._runtime.read_sessions() as session:
            method = await db.get_payment_method(session, request.payment_method_id)
        if method is None:
            # Cannot happen through the gateway; if it does, fail the payment (and so the
            # order) rather than leave it pending.
            return ChargeResult(approved=False, decline_reason="unknown_payment_method")
        card = {"brand": method.brand, "last4": method.last4}
        decline = DECLINES.get(method.token)
        if decline:
            return ChargeResult(approved=False, card=card, gateway=TEST_GATEWAY, decline_reason=decline)
        return ChargeResult(approved=True, card=card, gateway=TEST_GATEWAY)

    @activity.defn
    async def record_payment(self, result: PaymentResult) -> None:
        request, charge, order = result.request, result.charge, result.request.order
        with bind(correlation_id=request.correlation_id, order_id=order.order_id):
            async with self._runtime.unit_of_work() as uow:
                payment = await db.get_payment(uow.session, request.payment_id)
                if payment.status != "PENDING":
                    return
                status = "COMPLETED" if charge.approved else "FAILED"
                await db.update_payment(
                    uow.session,
                    request.payment_id,
                    status=status,
                    gateway=charge.gateway,
                    card=charge.card.model_dump() if charge.card else None,
                    failure_reason=charge.decline_reason,
                )
                common = {
                    "order_id": order.order_id,
                    "payment_id": request.payment_id,
                    "amount": order.totals.total,
                    "currency": order.totals.currency,
                    "card": charge.card,
                }
                event = (
                    PaymentCompleted(**common, gateway=charge.gateway, order=order)
                    if charge.approved
                    else PaymentFailed(**common, reason=charge.decline_reason or "declined")
                )
                uow.publish(event, correlation_id=request.correlation_id, causation_id=request.causation_id)
                await uow.commit()
            activity.logger.info("payment %s", status.lower())

    @activity.defn
    async def refund_payment(self, refund: RefundPayment) -> None:
        with bind(correlation_id=refund.correlation_id, order_id=refund.order_id):
            async with self._runtime.unit_of_work() as uow:
                payment = await db.get_payment(uow.session, refund.payment_id)
                if payment.status == "PENDING":
                    # Cancelled while the charge is in flight: wait (Temporal retries) until it settles.
                    raise ApplicationError("payment still settling", type="PaymentSettling")
                if payment.status != "COMPLETED":
                    return  # nothing was taken, or it was already given back
                refund_id = f"ref-{refund.order_id}"
                await db.update_payment(uow.session, refund.payment_id, status="REFUNDED", refund_id=refund_id)
                uow.publish(
                    PaymentRefunded(
                        order_id=refund.order_id,
                        payment_id=refund.payment_id,
                        refund_id=refund_id,
                        customer_id=payment.customer_id,
                        amount=payment.amount,
                        currency=payment.currency,
                        reason=refund.reason,
                    ),
                    correlation_id=refund.correlation_id,
                    causation_id=refund.causation_id,
                )
                await uow.commit()
            activity.logger.info("payment refunded")
