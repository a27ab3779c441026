"""How the order context reacts to other contexts' events.

Milestones of an order (payment, stock, shipment) are handed to that order's workflow as
signals; stock levels and customer tiers update local projections."""

from __future__ import annotations

import logging

from sqlalchemy import insert, update
from sqlalchemy.ext.asyncio import AsyncSession

from concerto_contracts import Envelope
from concerto_contracts.events import (
    InventoryReserved,
    InventoryUnavailable,
    PaymentCompleted,
    PaymentFailed,
    ShipmentDispatched,
    ShipmentScheduled,
    StockLevelChanged,
    TierChanged,
)
from concerto_messaging import Handler
from concerto_order.adapters import db
from concerto_order.api.routes import workflow_id
from concerto_order.workflows.inputs import EventReceived
from concerto_order.workflows.order_workflow import OrderWorkflow
from concerto_runtime import Runtime, signal_if_running

log = logging.getLogger(__name__)


def handlers(runtime: Runtime) -> dict[type, Handler]:
    async def signal_order_workflow(envelope: Envelope, _: AsyncSession) -> None:
        event = envelope.event
        running = await signal_if_running(
            runtime.temporal,
            workflow_id(envelope.key),
            OrderWorkflow.event_received,
            EventReceived(event_id=envelope.id, name=type(event).__name__, data=event.model_dump(mode="json")),
        )
        if not running:
            # The order already ended (for instance cancelled at a deadline): nothing to advance.
            log.warning("%s for an order that is no longer running", type(event).__name__)

    async def record_stock_level(envelope: Envelope, session: AsyncSession) -> None:
        event: StockLevelChanged = envelope.event
        await _upsert(session, db.stock_levels, "sku", event.sku, available=event.available)

    async def record_tier(envelope: Envelope, session: AsyncSession) -> None:
        event: TierChanged = envelope.event
        await _upsert(session, db.customer_tiers, "customer_id", event.customer_id, tier=event.new_tier)

    return {
        PaymentCompleted: signal_order_workflow,
        PaymentFailed: signal_order_workflow,
        InventoryReserved: signal_order_workflow,
        InventoryUnavailable: signal_order_workflow,
        ShipmentScheduled: signal_order_workflow,
        ShipmentDispatched: signal_order_workflow,
        StockLevelChanged: record_stock_level,
        TierChanged: record_tier,
    }


async def _upsert(session: AsyncSession, table, key: str, key_value: str, **values) -> None:
    result = await session.execute(update(table).where(table.c[key] == key_value).values(**values))
    if result.rowcount == 0:
        await session.execute(insert(table).values({key: key_value, **values}))
