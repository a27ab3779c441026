"""The order context's own tables and the queries on them."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import JSON, Column, Index, Integer, MetaData, Numeric, String, Table, and_, bindparam, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from concerto_contracts.http import OrderStatus
from concerto_order.domain.model import Product
from concerto_runtime.database import UtcDateTime

tables = MetaData()

# Why an order's workflow could not be started (workflows/starts.py), kept this long.
START_FAILURE_LENGTH = 1000

orders = Table(
    "orders",
    tables,
    Column("order_id", String(64), primary_key=True),
    Column("customer_id", String(64), nullable=False, index=True),
    # Indexed with created_at: the order starter looks for orders still PENDING (workflows/starts.py).
    Column("status", String(20), nullable=False),
    Column("correlation_id", String(64), nullable=False),
    Column("idempotency_key", String(200), unique=True, nullable=True),
    Column("request_fingerprint", String(64), nullable=False),
    Column("submission", JSON, nullable=False),
    Column("items", JSON, nullable=False),
    Column("totals", JSON, nullable=True),
    Column("payment", JSON, nullable=True),
    Column("shipment", JSON, nullable=True),
    Column("cancellation_reason", String(100), nullable=True),
    # Set while a PENDING order's workflow cannot be started (its stored submission no longer
    # validates, say): the order starter goes on with the others, and the API shows why.
    Column("start_failure", String(START_FAILURE_LENGTH), nullable=True),
    Column("created_at", UtcDateTime, nullable=False, default=lambda: now()),
    Column("updated_at", UtcDateTime, nullable=False, default=lambda: now()),
    Index("ix_orders_status_created_at", "status", "created_at"),
)

products = Table(
    "products",
    tables,
    Column("sku", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("unit_price", Numeric(12, 2), nullable=False),
    Column("weight_grams", Integer, nullable=False),
)

# A local projection of fulfillment's StockLevelChanged events: order reads it, never writes it
# from its own decisions.
stock_levels = Table(
    "stock_levels",
    tables,
    Column("sku", String(64), primary_key=True),
    Column("available", Integer, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False, server_default=func.now()),
)

# A projection of loyalty's TierChanged events, so an order carries the customer's tier.
customer_tiers = Table(
    "customer_tiers",
    tables,
    Column("customer_id", String(64), primary_key=True),
    Column("tier", String(20), nullable=False),
)


async def catalog(session: AsyncSession) -> dict[str, Product]:
    rows = (await session.execute(select(products))).all()
    return {row.sku: Product(row.sku, row.name, row.unit_price, row.weight_grams) for row in rows}


async def stock(session: AsyncSession) -> dict[str, int]:
    return {row.sku: row.available for row in (await session.execute(select(stock_levels))).all()}


# Built once, with bind parameters: the reads each order makes (a statement built per call
# costs about as much again as running it, docs/benchmarks.md).
_ORDER = select(orders).where(orders.c.order_id == bindparam("order_id"))
_ORDER_OF_KEY = select(orders).where(orders.c.idempotency_key == bindparam("key"))
_OTHER_ORDERS = (
    select(func.count())
    .select_from(orders)
    .where(orders.c.customer_id == bindparam("customer_id"), orders.c.order_id != bindparam("order_id"), orders.c.status != OrderStatus.CANCELLED)
)
_TIER = select(customer_tiers.c.tier).where(customer_tiers.c.customer_id == bindparam("customer_id"))


async def get_order(session: AsyncSession, order_id: str) -> Any | None:
    return (await session.execute(_ORDER, {"order_id": order_id})).first()


async def find_by_idempotency_key(session: AsyncSession, key: str) -> Any | None:
    return (await session.execute(_ORDER_OF_KEY, {"key": key})).first()


async def is_first_order(session: AsyncSession, customer_id: str, order_id: str) -> bool:
    return await session.scalar(_OTHER_ORDERS, {"customer_id": customer_id, "order_id": order_id}) == 0


async def tier_of(session: AsyncSession, customer_id: str) -> str:
    return await session.scalar(_TIER, {"customer_id": customer_id}) or "standard"


async def update_order(session: AsyncSession, order_id: str, *, only_from: list[str] | None = None, **values: Any) -> bool:
    """Changes the order; with `only_from`, only while its status is one of those. Whether it changed."""
    query = update(orders).where(orders.c.order_id == order_id)
    if only_from is not None:
        query = query.where(orders.c.status.in_(only_from))
    return (await session.execute(query.values(updated_at=now(), **values))).rowcount == 1


async def orders_of(session: AsyncSession, customer_id: str, *, limit: int, offset: int) -> tuple[list[Any], int]:
    """A customer's orders, the newest first, and how many there are."""
    mine = orders.c.customer_id == customer_id
    rows = (await session.execute(select(orders).where(mine).order_by(orders.c.created_at.desc()).limit(limit).offset(offset))).all()
    return list(rows), await session.scalar(select(func.count()).select_from(orders).where(mine))


async def not_started(session: AsyncSession, *, limit: int, offset: int) -> tuple[list[Any], int]:
    """Orders still PENDING whose workflow could not be started (each with its reason), the
    oldest first, and how many there are: an operator's to look at."""
    marked = and_(orders.c.status == OrderStatus.PENDING, orders.c.start_failure.is_not(None))
    rows = (await session.execute(select(orders).where(marked).order_by(orders.c.created_at, orders.c.order_id).limit(limit).offset(offset))).all()
    return list(rows), await session.scalar(select(func.count()).select_from(orders).where(marked))


async def pending_orders(session: AsyncSession, *, placed_before: datetime, limit: int, after: Any | None = None) -> list[Any]:
    """Orders still PENDING that were placed before `placed_before`, the oldest first (ties by
    id); with `after` (the last row of the page before), the next page."""
    query = select(orders).where(orders.c.status == OrderStatus.PENDING, orders.c.created_at < placed_before)
    if after is not None:
        query = query.where(
            or_(orders.c.created_at > after.created_at, and_(orders.c.created_at == after.created_at, orders.c.order_id > after.order_id))
        )
    return list((await session.execute(query.order_by(orders.c.created_at, orders.c.order_id).limit(limit))).all())


def now() -> datetime:
    return datetime.now(timezone.utc)
