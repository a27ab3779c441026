"""OrderWorkflow: the order context's process, orchestrated by Temporal.

It prices and confirms the order, announces OrderConfirmed, then waits (with deadlines) for
the milestones the other contexts announce on Kafka, which arrive here as signals:
payment, stock reservation, shipment. It ends COMPLETED or CANCELLED, never in between.

Each milestone has a deadline of its own, counted from the moment the order starts waiting for
it; one durable timer (the alarm) serves them all, so an order that moves on in time starts one
timer, not one per milestone (see _arm).

Two things can turn it back before the pivot: the customer (an update, answered at once) and
the saga monitor, when a context stays silent past its deadline (a signal: CompensationRequested).
Once the shipment is scheduled neither can (ADR 5).
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from concerto_runtime.workflows import run_step
    from concerto_contracts.events import PaymentCompleted, PaymentFailed, ShipmentDispatched, ShipmentScheduled
    from concerto_contracts.http import OrderStatus, PaymentView, ShipmentView
    from concerto_contracts.values import TOLERANT
    from concerto_order.workflows.activities import OrderActivities
    from concerto_order.workflows.inputs import (
        CloseOrder,
        ConfirmOrder,
        EventReceived,
        OrderOutcome,
        PlaceOrder,
        RecordProgress,
    )


@workflow.defn
class OrderWorkflow:
    def __init__(self) -> None:
        self._events: dict[str, EventReceived] = {}
        self._cancel_requested = False
        self._compensation_reason: str | None = None
        self._status = OrderStatus.PENDING
        # The one deadline timer (see _arm): when it rings, and its task while it runs.
        self._alarm_at: datetime | None = None
        self._alarm: asyncio.Task | None = None

    @workflow.signal
    def event_received(self, event: EventReceived) -> None:
        # The first delivery counts; a redelivered event changes nothing. `event.data` is read
        # tolerantly (context=TOLERANT) like any event (ADR 15): in a rolling deploy a newer
        # replica's handler may signal a field this code does not know yet.
        self._events.setdefault(event.name, event)

    @workflow.signal
    def compensation_requested(self, reason: str) -> None:
        # From the saga monitor. Heeded only while the order can still turn back (see _wait_for).
        self._compensation_reason = self._compensation_reason or reason

    @workflow.update
    def request_cancellation(self) -> OrderStatus:
        self._cancel_requested = True
        return self._status

    @request_cancellation.validator
    def _refuse_once_shipping(self) -> None:
        # The pivot: once fulfillment has scheduled the shipment there is no way back.
        if "ShipmentScheduled" in self._events or self._status in (OrderStatus.SHIPPED, OrderStatus.COMPLETED):
            raise ValueError("the order is already being shipped and can no longer be cancelled")

    @workflow.query
    def status(self) -> OrderStatus:
        return self._status

    @workflow.run
    async def run(self, order: PlaceOrder) -> OrderOutcome:
        pricing = await run_step(OrderActivities.price_order, order)
        if pricing.snapshot is None:
            return await self._cancel(order, pricing.rejection or "rejected")
        await run_step(
            OrderActivities.confirm_order,
            ConfirmOrder(
                order_id=order.order_id,
                correlation_id=order.correlation_id,
                snapshot=pricing.snapshot,
                payment_method_id=order.payment_method_id,
            ),
        )
        self._status = OrderStatus.CONFIRMED

        # Payment: PaymentCompleted or PaymentFailed, within the payment deadline.
        payment = await self._wait_for("PaymentCompleted", "PaymentFailed", seconds=order.payment_deadline_seconds)
        if payment is None:
            return await self._cancel(order, self._stop_reason("payment_timeout"))
        if payment.name == "PaymentFailed":
            reason = PaymentFailed.model_validate(payment.data, context=TOLERANT).reason
            return await self._cancel(order, f"payment_{reason}", payment)
        paid = PaymentCompleted.model_validate(payment.data, context=TOLERANT)
        await self._progress(
            order, OrderStatus.PAID, payment=PaymentView(payment_id=paid.payment_id, card=paid.card, gateway=paid.gateway)
        )

        # Fulfillment: stock reserved (or not), then the shipment, up to dispatch: the pivot.
        reserved = await self._wait_for(
            "InventoryReserved", "InventoryUnavailable", seconds=order.fulfillment_deadline_seconds
        )
        if reserved is None:
            return await self._cancel(order, self._stop_reason("fulfillment_timeout"))
        if reserved.name == "InventoryUnavailable":
            return await self._cancel(order, "out_of_stock", reserved)
        await self._progress(order, OrderStatus.FULFILLING)

        scheduled = await self._wait_for("ShipmentScheduled", seconds=order.fulfillment_deadline_seconds)
        if scheduled is None:
            return await self._cancel(order, self._stop_reason("fulfillment_timeout"))
        shipment = ShipmentScheduled.model_validate(scheduled.data, context=TOLERANT)
        # Past the pivot: cancellation requests are refused (see the validator above), and the
        # step says so to fulfillment (OrderReadyToShip), which dispatches only then.
        await self._progress(
            order, OrderStatus.FULFILLING, shipment=_shipment_view(shipment), ready_to_ship=True, correlation_id=order.correlation_id
        )

        # No deadline past the pivot: the parcel may still leave, and cancelling (and refunding)
        # now could give away both goods and money. A late dispatch is the saga monitor's to show
        # (the order is STUCK) and an operator's to settle (ADR 7).
        dispatched = await self._wait_for("ShipmentDispatched", seconds=None, cancellable=False)
        sent = ShipmentDispatched.model_validate(dispatched.data, context=TOLERANT)
        await self._progress(order, OrderStatus.SHIPPED, shipment=_shipment_view(shipment, sent))

        await run_step(
            OrderActivities.complete_order,
            CloseOrder(order_id=order.order_id, correlation_id=order.correlation_id, causation_id=dispatched.event_id),
        )
        self._status = OrderStatus.COMPLETED
        return OrderOutcome(status=OrderStatus.COMPLETED)

    async def _wait_for(self, *names: str, seconds: int | None, cancellable: bool = True) -> EventReceived | None:
        """The first of the named events, or None when `seconds` pass first (counted from now) or
        (if allowed) on cancellation or compensation. No deadline when `seconds` is None."""

        def turned_back() -> bool:
            return cancellable and (self._cancel_requested or self._compensation_reason is not None)

        def arrived() -> bool:
            return any(name in self._events for name in names) or turned_back()

        if not seconds:
            if not arrived():
                self._disarm()  # nothing left for it to ring for
                await workflow.wait_condition(arrived)
        else:
            deadline = workflow.now() + timedelta(seconds=seconds)
            while not arrived():
                self._arm(deadline)
                await workflow.wait_condition(lambda: arrived() or self._alarm.done())
                if not arrived() and self._alarm_at == deadline:
                    return None  # the alarm rang for this very deadline
                # It rang for an earlier deadline (a step before this one's): set it again.
        if turned_back():
            return None  # an accepted cancellation wins over a milestone that arrived with it
        return next((self._events[name] for name in names if name in self._events), None)

    def _arm(self, deadline: datetime) -> None:
        """Makes the alarm ring by `deadline`. A running alarm that rings no later is kept: when
        it rings early, _wait_for sets it again for what is left. So the timer started for the
        payment deadline serves the later milestones too (a step with a nearer deadline than the
        running alarm's replaces it), and an order that moves on in time starts one timer and
        cancels it once, at the pivot, past which nothing has a deadline. A timer still running
        when the order ends costs nothing: the server drops it with the run."""
        if self._alarm is not None and not self._alarm.done() and self._alarm_at <= deadline:
            return
        self._disarm()
        self._alarm_at = deadline
        self._alarm = asyncio.create_task(workflow.sleep(deadline - workflow.now()))

    def _disarm(self) -> None:
        if self._alarm is not None and not self._alarm.done():
            self._alarm.cancel()
        self._alarm, self._alarm_at = None, None

    def _stop_reason(self, on_deadline: str) -> str:
        if self._cancel_requested:
            return "customer_cancelled"
        return self._compensation_reason or on_deadline

    async def _progress(self, order: PlaceOrder, status: OrderStatus, **details) -> None:
        await run_step(OrderActivities.record_progress, RecordProgress(order_id=order.order_id, status=status, **details))
        self._status = status

    async def _cancel(self, order: PlaceOrder, reason: str, cause: EventReceived | None = None) -> OrderOutcome:
        await run_step(
            OrderActivities.cancel_order,
            CloseOrder(
                order_id=order.order_id,
                correlation_id=order.correlation_id,
                causation_id=cause.event_id if cause else None,
                reason=reason,
            ),
        )
        self._status = OrderStatus.CANCELLED
        return OrderOutcome(status=OrderStatus.CANCELLED, cancellation_reason=reason)


def _shipment_view(scheduled: ShipmentScheduled, dispatched: ShipmentDispatched | None = None) -> ShipmentView:
    return ShipmentView(
        shipment_id=scheduled.shipment_id,
        carrier=scheduled.carrier,
        tracking_number=scheduled.tracking_number,
        warehouse=scheduled.warehouse,
        dispatched_at=dispatched.dispatched_at if dispatched else None,
        # None when fulfillment sent no estimate (an event from before it did, ADR 15).
        estimated_delivery=dispatched.estimated_delivery if dispatched else None,
    )
