"""The floor's workflows (see concerto_bench.floor): the platform's order saga with nothing in
its steps. A module of their own, like each service's workflow module, because Temporal's
sandbox imports a workflow's module afresh for every run."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from concerto_bench.floor import LOCAL, WAIT, CHANGES_PER_RUN, FloorActivities, FloorOrder, Fulfillment, Milestone


@workflow.defn
class FloorOrderWorkflow:
    def __init__(self) -> None:
        self._arrived: set[str] = set()

    @workflow.signal
    def event_received(self, milestone: Milestone) -> None:
        self._arrived.add(milestone.name)

    @workflow.run
    async def run(self, order: FloorOrder) -> str:
        await workflow.execute_local_activity_method(FloorActivities.price, order, **LOCAL)
        await workflow.execute_local_activity_method(FloorActivities.confirm, order, **LOCAL)
        if await self._wait_for("PaymentCompleted", "PaymentFailed") != "PaymentCompleted":
            return await self._cancel(order)
        await self._progress(order, "PAID")
        for milestone, status in (("InventoryReserved", "FULFILLING"), ("ShipmentScheduled", "FULFILLING"),
                                  ("ShipmentDispatched", "SHIPPED")):
            if await self._wait_for(milestone) is None:
                return await self._cancel(order)
            await self._progress(order, status)
        await workflow.execute_local_activity_method(FloorActivities.complete, order, **LOCAL)
        return "COMPLETED"

    async def _wait_for(self, *names: str) -> str | None:
        try:
            await workflow.wait_condition(lambda: any(n in self._arrived for n in names), timeout=WAIT)
        except asyncio.TimeoutError:
            return None
        return next(n for n in names if n in self._arrived)

    async def _progress(self, order: FloorOrder, status: str) -> None:
        await workflow.execute_local_activity_method(FloorActivities.record_progress, args=[order.order_id, status], **LOCAL)

    async def _cancel(self, order: FloorOrder) -> str:
        await workflow.execute_local_activity_method(FloorActivities.cancel, order, **LOCAL)
        return "CANCELLED"


@workflow.defn
class FloorPaymentWorkflow:
    @workflow.run
    async def run(self, order: FloorOrder) -> bool:
        approved = await workflow.execute_activity_method(
            FloorActivities.charge_card, order, start_to_close_timeout=timedelta(seconds=30)
        )
        await workflow.execute_local_activity_method(FloorActivities.record_payment, args=[order, approved], **LOCAL)
        return approved


@workflow.defn
class FloorFulfillmentWorkflow:
    def __init__(self) -> None:
        self._cancelled = False

    @workflow.signal
    def order_cancelled(self) -> None:
        self._cancelled = True

    @workflow.run
    async def run(self, request: Fulfillment) -> str:
        await workflow.execute_local_activity_method(FloorActivities.reserve_stock, request.order, **LOCAL)
        await workflow.execute_local_activity_method(FloorActivities.schedule_shipment, request.order, **LOCAL)
        try:  # the carrier's pick-up
            await workflow.wait_condition(lambda: self._cancelled, timeout=timedelta(seconds=request.pickup_seconds))
        except asyncio.TimeoutError:
            pass
        if self._cancelled:
            return "cancelled"
        await workflow.execute_local_activity_method(FloorActivities.dispatch_shipment, request.order, **LOCAL)
        return "dispatched"


@workflow.defn
class FloorLoyaltyWorkflow:
    """One per customer, like LoyaltyAccountWorkflow: changes arrive as signals, applied in turn."""

    def __init__(self) -> None:
        self._pending: list[FloorOrder] = []

    @workflow.signal
    def change(self, order: FloorOrder) -> None:
        self._pending.append(order)

    @workflow.run
    async def run(self, customer_id: str, carried_over: list[FloorOrder]) -> None:
        self._pending[:0] = carried_over
        for _ in range(CHANGES_PER_RUN):
            await workflow.wait_condition(lambda: bool(self._pending))
            await workflow.execute_local_activity_method(FloorActivities.apply_change, self._pending.pop(0), **LOCAL)
        await workflow.wait_condition(workflow.all_handlers_finished)
        workflow.continue_as_new(args=[customer_id, self._pending])


WORKFLOWS = {"order": FloorOrderWorkflow, "payment": FloorPaymentWorkflow,
             "fulfillment": FloorFulfillmentWorkflow, "loyalty": FloorLoyaltyWorkflow}
