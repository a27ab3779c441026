"""FulfillmentWorkflow's activities. Each may run more than once, so each moves the shipment
on only from the status it expects."""

from __future__ import annotations

from collections import Counter

from temporalio import activity

from concerto_contracts.events import (
    FulfillmentCancelled,
    InventoryReserved,
    InventoryUnavailable,
    ShipmentDispatched,
    ShipmentScheduled,
    StockLevelChanged,
)
from concerto_fulfillment.adapters import db
from concerto_fulfillment.domain.model import carrier_for, choose_warehouse, estimated_delivery, short_skus, tracking_number
from concerto_fulfillment.workflows.inputs import FulfillOrder, Reservation
from concerto_messaging import UnitOfWork
from concerto_observability import bind
from concerto_runtime import Runtime
from concerto_runtime.workflows import PermanentFailure


# How often a reservation reads the stock again when a concurrent one took the units first.
RESERVATION_TRIES = 5


class StockContended(RuntimeError):
    """Reservations kept taking the units this one chose: the activity fails and is retried."""


async def reserved_shipment(session, order_id: str):
    """The order's shipment, which a step after the reservation cannot do without."""
    shipment = await db.get_shipment(session, order_id)
    if shipment is None:
        raise PermanentFailure(f"order {order_id} has no shipment: its stock was never reserved")
    return shipment


def shipment_id_for(order_id: str) -> str:
    return f"shp-{order_id}"


class FulfillmentActivities:
    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime

    @activity.defn
    async def reserve_stock(self, request: FulfillOrder) -> Reservation:
        order = request.order
        with bind(correlation_id=request.correlation_id, order_id=order.order_id):
            async with self._runtime.unit_of_work() as uow:
                existing = await db.get_shipment(uow.session, order.order_id)
                if existing is not None:
                    return Reservation(reserved=True, warehouse=existing.warehouse)
                needed = Counter()
                for item in order.items:
                    needed[item.sku] += item.quantity
                for _ in range(RESERVATION_TRIES):
                    stock = await db.stock_by_warehouse(uow.session)
                    warehouse = choose_warehouse(needed, stock, order.shipping_address.country)
                    if warehouse is None or await db.take_stock(uow.session, warehouse, dict(needed)):
                        break
                    # Another reservation took the units since we read them: read again.
                else:
                    raise StockContended(f"stock for order {order.order_id} kept changing; Temporal tries again")
                if warehouse is None:
                    uow.publish(
                        InventoryUnavailable(
                            order_id=order.order_id,
                            customer_id=order.customer.id,
                            unavailable_skus=short_skus(needed, stock) or sorted(needed),
                            payment_id=request.payment_id,
                        ),
                        correlation_id=request.correlation_id,
                        causation_id=request.causation_id,
                    )
                    await uow.commit()
                    return Reservation(reserved=False)
                await uow.session.execute(
                    db.shipments.insert().values(
                        shipment_id=shipment_id_for(order.order_id),
                        order_id=order.order_id,
                        status="RESERVED",
                        warehouse=warehouse,
                        items=[item.model_dump(mode="json") for item in order.items],
                    )
                )
                uow.publish(
                    InventoryReserved(order_id=order.order_id, warehouse=warehouse, items=order.items),
                    correlation_id=request.correlation_id,
                    causation_id=request.causation_id,
                )
                await publish_stock_levels(uow, list(needed), request.correlation_id)
                await uow.commit()
            activity.logger.info("stock reserved in %s", warehouse)
            return Reservation(reserved=True, warehouse=warehouse)

    @activity.defn
    async def schedule_shipment(self, request: FulfillOrder) -> None:
        order = request.order
        async with self._runtime.unit_of_work() as uow:
            shipment = await reserved_shipment(uow.session, order.order_id)
            if shipment.status != "RESERVED":
                return
            weight = sum(item.weight_grams * item.quantity for item in order.items)
            carrier = carrier_for(weight)
            tracking = tracking_number(carrier, shipment.shipment_id)
            await db.update_shipment(uow.session, order.order_id, status="SCHEDULED", carrier=carrier, tracking_number=tracking)
            uow.publish(
                ShipmentScheduled(
                    order_id=order.order_id,
                    shipment_id=shipment.shipment_id,
                    warehouse=shipment.warehouse,
                    carrier=carrier,
                    tracking_number=tracking,
                ),
                correlation_id=request.correlation_id,
                causation_id=request.causation_id,
            )
            await uow.commit()

    @activity.defn
    async def dispatch_shipment(self, request: FulfillOrder) -> bool:
        """Hands the parcel to the carrier: the pivot. False if the order was cancelled in the
        meantime (the cancellation may reach this context after the workflow's last look)."""
        order = request.order
        async with self._runtime.unit_of_work() as uow:
            shipment = await reserved_shipment(uow.session, order.order_id)
            if shipment.status == "DISPATCHED":
                return True
            if shipment.status != "SCHEDULED" or await db.is_cancelled(uow.session, order.order_id):
                return False
            dispatched_at = db.now()
            await db.update_shipment(uow.session, order.order_id, status="DISPATCHED", dispatched_at=dispatched_at)
            uow.publish(
                ShipmentDispatched(
                    order_id=order.order_id,
                    shipment_id=shipment.shipment_id,
                    carrier=shipment.carrier,
                    tracking_number=shipment.tracking_number,
                    dispatched_at=dispatched_at,
                    estimated_delivery=estimated_delivery(shipment.carrier, dispatched_at),
                ),
                correlation_id=request.correlation_id,
                causation_id=request.causation_id,
            )
            await uow.commit()
            return True

    @activity.defn
    async def release_stock(self, request: FulfillOrder) -> None:
        """The compensation for reserve_stock: put the units back."""
        order = request.order
        async with self._runtime.unit_of_work() as uow:
            shipment = await db.get_shipment(uow.session, order.order_id)
            if shipment is None or shipment.status not in ("RESERVED", "SCHEDULED"):
                return
            skus = []
            for item in shipment.items:
                await db.adjust_stock(uow.session, shipment.warehouse, item["sku"], item["quantity"])
                skus.append(item["sku"])
            await db.update_shipment(uow.session, order.order_id, status="CANCELLED")
            await publish_stock_levels(uow, skus, request.correlation_id)
            uow.publish(
                FulfillmentCancelled(
                    order_id=order.order_id,
                    reason=await db.cancellation_reason(uow.session, order.order_id) or "cancelled",
                    warehouse=shipment.warehouse,
                    released_items=[item for item in order.items if item.sku in skus],
                ),
                correlation_id=request.correlation_id,
                causation_id=request.causation_id,
            )
            await uow.commit()


async def publish_stock_levels(uow: UnitOfWork, skus: list[str], correlation_id: str) -> None:
    """Announce the new totals, for the order context's stock projection."""
    for sku in dict.fromkeys(skus):
        available = await db.total_available(uow.session, sku)
        uow.publish(StockLevelChanged(sku=sku, available=available), correlation_id=correlation_id)
