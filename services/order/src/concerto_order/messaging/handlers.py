"""How the order context reacts to other contexts' events.

Milestones of an order (payment, stock, shipment) are handed to that order's workflow as
signals, and so is the saga monitor's request to roll an order back; stock levels and
customer tiers update local projections."""

from __future__ import annotations

import logging

from sqlalchemy import insert, update
from sqlalchemy.ext.asyncio import AsyncSession

from concerto_contracts import Envelope
from concerto_contracts.events import (
    CompensationRequested,
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
from concerto_order.workflows.inputs import EventReceived, workflow_id
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

    async def compensate(envelope: Envelope, _: AsyncSession) -> None:
        # The order context decides: its workflow cancels only while it can still turn back.
        event: CompensationRequested = envelope.event
        running = await signal_if_running(
            runtime.temporal, workflow_id(event.order_id), OrderWorkflow.compensation_requested, event.reason
        )
        if not running:
            log.info("compensation requested for an order that has already ended: nothing to do")

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
        CompensationRequested: compensate,
        StockLevelChanged: record_stock_level,
        TierChanged: record_tier,
    }


async def _upsert(session: AsyncSession, table, key: str, key_value: str, **values) -> None:
    result = await session.execute(update(table).where(table.c[key] == key_value).values(**values))
    if result.rowcount == 0:
        await session.execute(insert(table).values({key: key_value, **values}))
