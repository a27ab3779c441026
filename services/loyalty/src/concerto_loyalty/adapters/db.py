"""The loyalty context's tables: an account per customer and the ledger of its changes."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Column, Integer, MetaData, String, Table, UniqueConstraint, bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from concerto_runtime.database import UtcDateTime

tables = MetaData()

accounts = Table(
    "accounts",
    tables,
    Column("customer_id", String(64), primary_key=True),
    Column("points", Integer, nullable=False),
    Column("tier", String(20), nullable=False),
)

ledger = Table(
    "ledger",
    tables,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("customer_id", String(64), nullable=False, index=True),
    Column("order_id", String(64), nullable=False),
    Column("reason", String(20), nullable=False),  # awarded, reversed
    Column("points", Integer, nullable=False),
    Column("at", UtcDateTime, nullable=False, server_default=func.now()),
    # One award and at most one reversal per order, however often an event is delivered.
    UniqueConstraint("customer_id", "order_id", "reason"),
)


# Built once, with bind parameters: the reads each order makes (a statement built per call
# costs about as much again as running it, docs/benchmarks.md).
_ACCOUNT = select(accounts).where(accounts.c.customer_id == bindparam("customer_id"))
_LEDGER_ENTRY = select(ledger).where(
    ledger.c.customer_id == bindparam("customer_id"), ledger.c.order_id == bindparam("order_id"), ledger.c.reason == bindparam("reason")
)


async def get_account(session: AsyncSession, customer_id: str) -> Any | None:
    return (await session.execute(_ACCOUNT, {"customer_id": customer_id})).first()


async def ledger_entry(session: AsyncSession, customer_id: str, order_id: str, reason: str) -> Any | None:
    return (await session.execute(_LEDGER_ENTRY, {"customer_id": customer_id, "order_id": order_id, "reason": reason})).first()


async def history(session: AsyncSession, customer_id: str) -> list[Any]:
    return list((await session.execute(select(ledger).where(ledger.c.customer_id == customer_id).order_by(ledger.c.id))).all())
