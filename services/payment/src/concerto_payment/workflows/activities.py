"""PaymentWorkflow's and RefundWorkflow's activities. The gateways are reached only through
the integration layer. Each activity may run more than once, so each looks at the payment's
recorded status before it acts."""

from __future__ import annotations

from temporalio import activity
from temporalio.exceptions import ApplicationError

from sqlalchemy import insert, select

from concerto_contracts.events import PaymentCompleted, PaymentFailed, PaymentRefunded, PaymentRefundFailed, RefundRecordedByHand
from concerto_observability import bind
from concerto_observability.metrics import counter
from concerto_payment.adapters import db
from concerto_payment.integration.gateways import Charge, GatewayAmbiguous, GatewayRejected, Refund
from concerto_payment.integration.layer import NoGatewayAvailable, PaymentGateways
from concerto_payment.workflows.inputs import (
    NOT_FOUND,
    NOTHING_TO_REFUND,
    NOTHING_TO_RELEASE,
    REFUNDED,
    REFUSED,
    RELEASED,
    ChargeResult,
    CollectPayment,
    PaymentResult,
    RefundDecided,
    RefundPayment,
)
from concerto_runtime import Runtime

PAYMENTS = counter("concerto_payments", "Payments settled, by the gateway that answered and the outcome", ["gateway", "outcome"])
REFUNDS = counter("concerto_refunds", "Payments given back, by gateway", ["gateway"])
REFUNDS_FAILED = counter("concerto_refunds_failed", "Refunds a gateway refused for good, by gateway and reason", ["gateway", "reason"])


class PaymentActivities:
    def __init__(self, runtime: Runtime, gateways: PaymentGateways) -> None:
        self._runtime = runtime
        self._gateways = gateways

    @activity.defn
    async def charge_card(self, request: CollectPayment) -> ChargeResult:
        async with self._runtime.read_sessions() as session:
            method = await db.get_payment_method(session, request.payment_method_id)
            payment = await db.get_payment(session, request.payment_id)
        if payment is not None and payment.cancel_requested_at is not None:
            return ChargeResult(approved=False, decline_reason="cancelled")  # the order is gone: charge nothing
        if method is None:
            # Cannot happen through the gateway; if it does, fail the payment (and so the
            # order) rather than leave it pending.
            return ChargeResult(approved=False, decline_reason="unknown_payment_method")
        totals = request.order.totals
        charge = Charge(key=request.payment_id, amount=totals.total, currency=totals.currency, token=method.token)
        with bind(correlation_id=request.correlation_id, order_id=request.order.order_id):
            try:
                charged = await self._gateways.charge(request.payment_id, charge)
            except (NoGatewayAvailable, GatewayAmbiguous) as exc:
                # Temporal retries this activity (with backoff) until the payment's deadline.
                raise ApplicationError(str(exc), type=type(exc).__name__) from exc
            except GatewayRejected as exc:
                activity.logger.error("gateway rejected the charge: %s", exc)
                return ChargeResult(approved=False, decline_reason="rejected")
        outcome = charged.outcome
        return ChargeResult(
            approved=outcome.approved,
            card=outcome.card or {"brand": method.brand, "last4": method.last4},
            gateway=charged.gateway,
            gateway_reference=outcome.reference,
            decline_reason=outcome.decline_reason,
        )

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
                    gateway_reference=charge.gateway_reference,
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
                    else PaymentFailed(**common, gateway=charge.gateway, reason=charge.decline_reason or "declined")
                )
                uow.publish(event, correlation_id=request.correlation_id, causation_id=request.causation_id)
                await uow.commit()
            activity.logger.info("payment %s", status.lower())
        # "failed": no gateway took it (none available, or the order was cancelled first).
        outcome = "approved" if charge.approved else "declined" if charge.gateway else "failed"
        PAYMENTS.labels(charge.gateway or "none", outcome).inc()

    @activity.defn
    async def release_unclaimed_charge(self, request: CollectPayment) -> str:
        """After giving up on a payment: if a gateway took the charge after all (an attempt
        whose answer was lost), give the money back. NOT_FOUND: not (yet) at the gateway; the
        workflow looks again until the gateway's answer window has passed."""
        gateway = await self._gateways.gateway_that_may_hold(request.payment_id)
        if gateway is None:
            return NOTHING_TO_RELEASE
        # If the gateway is still unreachable this raises, and Temporal retries until it answers.
        found = await self._gateways.look_up(request.payment_id, gateway, request.payment_id)
        if found is None:
            return NOT_FOUND
        if not found.approved:
            return NOTHING_TO_RELEASE
        totals = request.order.totals
        await self._gateways.refund(
            request.payment_id,
            gateway.name,
            Refund(key=f"release-{request.payment_id}", charge_reference=found.reference, amount=totals.total, currency=totals.currency),
        )
        activity.logger.warning("released a charge %s took after the payment gave up", gateway.name)
        return RELEASED

    @activity.defn
    async def refund_payment(self, refund: RefundPayment) -> str:
        """REFUNDED, NOTHING_TO_REFUND, or REFUSED: the gateway refused for good (recorded as
        REFUND_FAILED with PaymentRefundFailed), and an operator decides. What may be transient
        raises, and Temporal retries it."""
        # An operator's retry refunds a refused refund; the cancellation's own refund does not.
        refundable = ("COMPLETED", "REFUND_FAILED") if refund.retry else ("COMPLETED",)
        async with self._runtime.read_sessions() as session:
            payment = await db.get_payment(session, refund.payment_id)
        if payment.status == "PENDING":
            # Cancelled while the charge is in flight: wait (Temporal retries) until it settles.
            raise ApplicationError("payment still settling", type="PaymentSettling")
        if payment.status not in refundable:
            return NOTHING_TO_REFUND  # nothing was taken, or it was already given back
        with bind(correlation_id=refund.correlation_id, order_id=refund.order_id):
            # The gateway's refund is idempotent by its key, so a retry after a crash is safe. An
            # operator's retry has a key of its own: the refused key would only be refused again.
            key = f"refund-{refund.payment_id}" + (f"-retry-{refund.retry}" if refund.retry else "")
            try:
                refund_id = await self._gateways.refund(
                    refund.payment_id,
                    payment.gateway,
                    Refund(key=key, charge_reference=payment.gateway_reference, amount=payment.amount, currency=payment.currency),
                )
            except GatewayRejected as exc:
                await self._record_refused_refund(refund, payment, str(exc))
                return REFUSED
            async with self._runtime.unit_of_work() as uow:
                current = await db.get_payment(uow.session, refund.payment_id)
                if current.status not in refundable:
                    return NOTHING_TO_REFUND
                await db.update_payment(uow.session, refund.payment_id, status="REFUNDED", refund_id=refund_id, failure_reason=None)
                uow.publish(refunded(refund, payment, refund_id), correlation_id=refund.correlation_id, causation_id=refund.causation_id)
                await uow.commit()
            activity.logger.info("payment refunded through %s", payment.gateway)
        REFUNDS.labels(payment.gateway).inc()
        return REFUNDED

    async def _record_refused_refund(self, refund: RefundPayment, payment, reason: str) -> None:
        async with self._runtime.unit_of_work() as uow:
            if (await db.get_payment(uow.session, refund.payment_id)).status not in ("COMPLETED", "REFUND_FAILED"):
                return  # given back meanwhile (recorded by hand)
            await db.update_payment(uow.session, refund.payment_id, status="REFUND_FAILED", failure_reason=reason[:100])
            uow.publish(
                PaymentRefundFailed(
                    order_id=refund.order_id,
                    payment_id=refund.payment_id,
                    customer_id=payment.customer_id,
                    amount=payment.amount,
                    currency=payment.currency,
                    gateway=payment.gateway,
                    reason=reason,
                ),
                correlation_id=refund.correlation_id,
                causation_id=refund.causation_id,
            )
            await uow.commit()
        activity.logger.error("%s refused the refund for good (%s): an operator decides", payment.gateway, reason)
        REFUNDS_FAILED.labels(payment.gateway, "rejected").inc()

    @activity.defn
    async def record_refund_decision(self, decided: RefundDecided) -> None:
        """The audit record of an operator's decision; for `refunded_by_hand`, also the payment
        REFUNDED (by hand) and PaymentRefunded, so loyalty reverses the points and the saga ends
        its way back. Once per decision, however often it runs."""
        refund, decision = decided.refund, decided.decision
        async with self._runtime.unit_of_work() as uow:
            session = uow.session
            recorded = select(db.refund_decisions.c.decision_id).where(db.refund_decisions.c.decision_id == decision.decision_id)
            if await session.scalar(recorded) is not None:
                return  # already recorded (a retried step)
            await session.execute(
                insert(db.refund_decisions).values(
                    decision_id=decision.decision_id,
                    payment_id=refund.payment_id,
                    action=decision.action,
                    operator=decision.operator,
                    reason=decision.reason,
                    reference=decision.reference,
                    decided_at=decision.decided_at,
                )
            )
            payment = await db.get_payment(session, refund.payment_id)
            if decision.action == "refunded_by_hand" and payment.status == "REFUND_FAILED":
                refund_id = f"by-hand-{decision.decision_id}"
                await db.update_payment(session, refund.payment_id, status="REFUNDED", refund_id=refund_id)
                by_hand = RefundRecordedByHand(
                    operator=decision.operator, recorded_at=decision.decided_at, reason=decision.reason, reference=decision.reference
                )
                uow.publish(
                    refunded(refund, payment, refund_id, recorded_by_hand=by_hand),
                    correlation_id=refund.correlation_id,
                    causation_id=refund.causation_id,
                )
            await uow.commit()
        activity.logger.warning("refund decision %s by %s: %s", decision.action, decision.operator, decision.reason)


def refunded(refund: RefundPayment, payment, refund_id: str, recorded_by_hand: RefundRecordedByHand | None = None) -> PaymentRefunded:
    """The announcement that the payment's money went back, through its gateway or by hand."""
    return PaymentRefunded(
        order_id=refund.order_id,
        payment_id=refund.payment_id,
        refund_id=refund_id,
        customer_id=payment.customer_id,
        amount=payment.amount,
        currency=payment.currency,
        reason=refund.reason,
        gateway=payment.gateway,
        recorded_by_hand=recorded_by_hand,
    )
