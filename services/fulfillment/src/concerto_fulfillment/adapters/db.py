"""The fulfillment context's tables: stock per warehouse and shipments."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import JSON, CheckConstraint, Column, Integer, MetaData, String, Table, bindparam, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from concerto_runtime.database import UtcDateTime

tables = MetaData()

stock = Table(
    "stock",
    tables,
    Column("warehouse", String(20), primary_key=True),
    Column("sku", String(64), primary_key=True),
    Column("available", Integer, nullable=False),
    CheckConstraint("available >= 0", name="stock_never_negative"),
)

shipments = Table(
    "shipments",
    tables,
    Column("shipment_id", String(80), primary_key=True),
    Column("order_id", String(64), nullable=False, unique=True),
    Column("status", String(20), nullable=False),  # RESERVED, SCHEDULED, DISPATCHED, CANCELLED
    Column("warehouse", String(20), nullable=False),
    Column("items", JSON, nullable=False),
    Column("carrier", String(40), nullable=True),
    Column("tracking_number", String(40), nullable=True),
    Column("created_at", UtcDateTime, nullable=False, server_default=func.now()),
    Column("dispatched_at", UtcDateTime, nullable=True),
)


# Orders cancelled before their payment reached us: never fulfil them.
cancelled_orders = Table(
    "cancelled_orders",
    tables,
    Column("order_id", String(64), primary_key=True),
    Column("reason", String(100), nullable=False),
)


async def is_cancelled(session: AsyncSession, order_id: str) -> bool:
    return await cancellation_reason(session, order_id) is not None


# Built once, with bind parameters: the reads each order makes (a statement built per call
# costs about as much again as running it, docs/benchmarks.md).
_CANCELLATION_REASON = select(cancelled_orders.c.reason).where(cancelled_orders.c.order_id == bindparam("order_id"))
_SHIPMENT = select(shipments).where(shipments.c.order_id == bindparam("order_id"))


async def cancellation_reason(session: AsyncSession, order_id: str) -> str | None:
    return await session.scalar(_CANCELLATION_REASON, {"order_id": order_id})


async def stock_by_warehouse(session: AsyncSession) -> dict[str, dict[str, int]]:
    levels: dict[str, dict[str, int]] = {}
    for row in (await session.execute(select(stock))).all():
        levels.setdefault(row.warehouse, {})[row.sku] = row.available
    return levels


async def total_available(session: AsyncSession, sku: str) -> int:
    return await session.scalar(select(func.coalesce(func.sum(stock.c.available), 0)).where(stock.c.sku == sku))


async def take_stock(session: AsyncSession, warehouse: str, needed: dict[str, int]) -> bool:
    """Takes the units from the warehouse, all of them or none: each decrement happens only
    where enough is still there. On PostgreSQL two reservations can read the same stock at once;
    the second one's decrement then finds too little, and this returns False."""
    async with session.begin_nested() as savepoint:
        for sku, quantity in needed.items():
            taken = await session.execute(
                update(stock)
                .where(stock.c.warehouse == warehouse, stock.c.sku == sku, stock.c.available >= quantity)
                .values(available=stock.c.available - quantity)
            )
            if taken.rowcount != 1:
                await savepoint.rollback()
                return False
    return True


async def adjust_stock(session: AsyncSession, warehouse: str, sku: str, delta: int) -> None:
    await session.execute(
        update(stock).where(stock.c.warehouse == warehouse, stock.c.sku == sku).values(available=stock.c.available + delta)
    )


async def get_shipment(session: AsyncSession, order_id: str) -> Any | None:
    return (await session.execute(_SHIPMENT, {"order_id": order_id})).first()


async def update_shipment(session: AsyncSession, order_id: str, **values: Any) -> None:
    await session.execute(update(shipments).where(shipments.c.order_id == order_id).values(**values))


def now() -> datetime:
    return datetime.now(timezone.utc)
