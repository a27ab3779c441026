"""OrderWorkflow's activities: every read and write of the order database, and every event
the order context publishes (through the outbox, in the same transaction as the change).

Each activity may run more than once (Temporal retries it), so each checks the order's
status first and does nothing the second time."""

from __future__ import annotations

from temporalio import activity

from concerto_contracts.events import OrderCancelled, OrderCompleted, OrderConfirmed, OrderReadyToShip
from concerto_contracts.http import OrderStatus
from concerto_contracts.values import CustomerSnapshot, LineItem, OrderSnapshot, Totals, mask_email
from concerto_observability import bind
from concerto_observability.metrics import counter, histogram, trace_exemplar
from concerto_order.adapters import db
from concerto_order.domain.catalog import CURRENCY
from concerto_order.domain.model import Line, may_move_to, price, short_stock
from concerto_order.workflows.inputs import CloseOrder, ConfirmOrder, PlaceOrder, Pricing, RecordProgress
from concerto_runtime import Runtime
from concerto_runtime.workflows import PermanentFailure

ORDERS_COMPLETED = counter("concerto_orders_completed", "Orders that reached COMPLETED")
ORDERS_CANCELLED = counter("concerto_orders_cancelled", "Orders that reached CANCELLED, by reason", ["reason"])
SAGA_DURATION = histogram("concerto_saga_duration_seconds", "From an order's placement to its end", ["outcome"])


async def existing_order(session, order_id: str):
    order = await db.get_order(session, order_id)
    if order is None:
        raise PermanentFailure(f"order {order_id} does not exist")
    return order


class OrderActivities:
    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime

    @activity.defn
    async def price_order(self, order: PlaceOrder) -> Pricing:
        async with self._runtime.read_sessions() as session:
            catalog = await db.catalog(session)
            available = await db.stock(session)
            first_order = await db.is_first_order(session, order.customer.id, order.order_id)
            tier = await db.tier_of(session, order.customer.id)
        lines = [Line(catalog[item.sku], item.quantity) for item in order.items]  # skus checked at the API
        if short_stock(lines, available):
            return Pricing(rejection="out_of_stock")
        amounts = price(lines, order.promotion_codes, order.shipping_address.country, first_order)
        return Pricing(
            snapshot=OrderSnapshot(
                order_id=order.order_id,
                customer=CustomerSnapshot(
                    id=order.customer.id, tier=tier, first_order=first_order, email_masked=mask_email(order.customer.email)
                ),
                items=[
                    LineItem(
                        sku=line.product.sku,
                        name=line.product.name,
                        quantity=line.quantity,
                        unit_price=line.product.unit_price,
                        weight_grams=line.product.weight_grams,
                    )
                    for line in lines
                ],
                shipping_address=order.shipping_address,
                totals=Totals(
                    subtotal=amounts.subtotal,
                    discount=amounts.discount,
                    tax=amounts.tax,
                    shipping=amounts.shipping,
                    total=amounts.total,
                    currency=CURRENCY,
                ),
                channel=order.channel,
                promotion_codes=order.promotion_codes,
            )
        )

    @activity.defn
    async def confirm_order(self, confirm: ConfirmOrder) -> None:
        with bind(correlation_id=confirm.correlation_id, order_id=confirm.order_id):
            async with self._runtime.unit_of_work() as uow:
                order = await existing_order(uow.session, confirm.order_id)
                if order.status != OrderStatus.PENDING:
                    return
                await db.update_order(
                    uow.session,
                    confirm.order_id,
                    status=OrderStatus.CONFIRMED,
                    items=[item.model_dump(mode="json") for item in confirm.snapshot.items],
                    totals=confirm.snapshot.totals.model_dump(mode="json"),
                )
                uow.publish(
                    OrderConfirmed(
                        order_id=confirm.order_id, order=confirm.snapshot, payment_method_id=confirm.payment_method_id
                    ),
                    correlation_id=confirm.correlation_id,
                )
                await uow.commit()
            activity.logger.info("order confirmed")

    @activity.defn
    async def record_progress(self, progress: RecordProgress) -> None:
        values = {"status": progress.status}
        if progress.payment:
            values["payment"] = progress.payment.model_dump(mode="json")
        if progress.shipment:
            values["shipment"] = progress.shipment.model_dump(mode="json")
        async with self._runtime.unit_of_work() as uow:
            moved = await db.update_order(uow.session, progress.order_id, only_from=may_move_to(progress.status), **values)
            if moved and progress.ready_to_ship and progress.shipment:
                uow.publish(
                    OrderReadyToShip(order_id=progress.order_id, shipment_id=progress.shipment.shipment_id),
                    correlation_id=progress.correlation_id or progress.order_id,
                )
            await uow.commit()
        if not moved:
            activity.logger.info("order already past %s: left as it is", progress.status)

    @activity.defn
    async def cancel_order(self, close: CloseOrder) -> None:
        await self._close(close, OrderStatus.CANCELLED)

    @activity.defn
    async def complete_order(self, close: CloseOrder) -> None:
        await self._close(close, OrderStatus.COMPLETED)

    async def _close(self, close: CloseOrder, status: OrderStatus) -> None:
        with bind(correlation_id=close.correlation_id, order_id=close.order_id):
            async with self._runtime.unit_of_work() as uow:
                order = await existing_order(uow.session, close.order_id)
                if OrderStatus(order.status).terminal:
                    return
                await db.update_order(uow.session, close.order_id, status=status, cancellation_reason=close.reason)
                total, currency = (order.totals or {}).get("total", "0"), (order.totals or {}).get("currency", CURRENCY)
                shipment = order.shipment or {}
                event = (
                    OrderCancelled(
                        order_id=order.order_id, customer_id=order.customer_id, reason=close.reason or "cancelled",
                        total=total, currency=currency,
                    )
                    if status == OrderStatus.CANCELLED
                    else OrderCompleted(
                        order_id=order.order_id, customer_id=order.customer_id, total=total, currency=currency,
                        tracking_number=shipment.get("tracking_number"),
                    )
                )
                uow.publish(event, correlation_id=close.correlation_id, causation_id=close.causation_id)
                await uow.commit()
            activity.logger.info("order %s", status.lower(), extra={"reason": close.reason})
        # Counted once the change has committed, and only by the run that made it.
        if status == OrderStatus.CANCELLED:
            ORDERS_CANCELLED.labels(close.reason or "cancelled").inc()
        else:
            ORDERS_COMPLETED.inc()
        # The exemplar links a slow saga's bucket to the order's trace (Grafana -> Jaeger).
        SAGA_DURATION.labels(status.lower()).observe((db.now() - order.created_at).total_seconds(), trace_exemplar())
