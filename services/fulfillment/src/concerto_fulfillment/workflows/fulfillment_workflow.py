"""FulfillmentWorkflow: reserve stock, schedule the shipment, hand it to the carrier.

Dispatch is the pivot of the order saga: until then a cancelled order releases its stock;
after it nothing is undone."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from concerto_runtime.workflows import run_step
    from concerto_fulfillment.workflows.activities import FulfillmentActivities
    from concerto_fulfillment.workflows.inputs import FulfillOrder


@workflow.defn
class FulfillmentWorkflow:
    def __init__(self) -> None:
        self._order_cancelled = False
        self._order_ready_to_ship = False

    @workflow.signal
    def order_cancelled(self) -> None:
        self._order_cancelled = True

    @workflow.signal
    def order_ready_to_ship(self) -> None:
        self._order_ready_to_ship = True

    @workflow.run
    async def run(self, request: FulfillOrder) -> str:
        reservation = await run_step(FulfillmentActivities.reserve_stock, request)
        if not reservation.reserved:
            return "unavailable"
        if not self._order_cancelled:
            await run_step(FulfillmentActivities.schedule_shipment, request)
            # The pivot is the order context's to call: until it says the order can no longer be
            # cancelled (OrderReadyToShip), a cancellation may still come. No deadline here: the
            # order's own deadline ends in one or the other.
            await workflow.wait_condition(lambda: self._order_ready_to_ship or self._order_cancelled)
            # Wait for the carrier's pick-up, unless the order is cancelled meanwhile.
            try:
                await workflow.wait_condition(
                    lambda: self._order_cancelled, timeout=timedelta(seconds=request.pickup_wait_seconds)
                )
            except TimeoutError:
                pass
        if self._order_cancelled:
            return await self._release(request)
        dispatched = await run_step(FulfillmentActivities.dispatch_shipment, request)
        if not dispatched:
            return await self._release(request)  # cancelled at the last moment: the parcel stays
        return "dispatched"

    async def _release(self, request: FulfillOrder) -> str:
        await run_step(FulfillmentActivities.release_stock, request)
        return "cancelled"
