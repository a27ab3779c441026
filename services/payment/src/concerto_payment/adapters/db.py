"""The payment context's tables: the vault of payment methods and the payments made."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import JSON, Column, Integer, MetaData, Numeric, String, Table, bindparam, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from concerto_runtime.database import UtcDateTime

tables = MetaData()

# The only place a card token is kept; everything else refers to the payment method id.
payment_methods = Table(
    "payment_methods",
    tables,
    Column("payment_method_id", String(64), primary_key=True),
    Column("token", String(200), nullable=False),
    Column("brand", String(20), nullable=False),
    Column("last4", String(4), nullable=False),
    Column("created_at", UtcDateTime, nullable=False, server_default=func.now()),
)

payments = Table(
    "payments",
    tables,
    Column("payment_id", String(80), primary_key=True),
    Column("order_id", String(64), nullable=False, unique=True),
    Column("customer_id", String(64), nullable=False),
    Column("amount", Numeric(12, 2), nullable=False),
    Column("currency", String(3), nullable=False),
    # PENDING, COMPLETED, FAILED, REFUNDED, REFUND_FAILED (the gateway refused the refund for
    # good: failure_reason says why, and an operator decides)
    Column("status", String(20), nullable=False),
    Column("gateway", String(40), nullable=True),
    Column("card", JSON, nullable=True),
    Column("failure_reason", String(100), nullable=True),
    Column("gateway_reference", String(80), nullable=True),  # the provider's id for the charge
    Column("refund_id", String(80), nullable=True),
    # Set when the order is cancelled while the payment is still being attempted: stop charging.
    Column("cancel_requested_at", UtcDateTime, nullable=True),
    Column("created_at", UtcDateTime, nullable=False, server_default=func.now()),
    Column("updated_at", UtcDateTime, nullable=False, server_default=func.now()),
)


# Orders cancelled before payment heard of their confirmation (events can arrive either way
# round): the confirmation that follows must not charge.
cancellations_before_payment = Table(
    "cancellations_before_payment",
    tables,
    Column("order_id", String(64), primary_key=True),
    Column("reason", String(100), nullable=False),
    Column("event_id", String(64), nullable=False),  # the OrderCancelled, as the refund's cause
    Column("cancelled_at", UtcDateTime, nullable=False),
)


# Every operator decision on a refund the gateway refused (the audit record): retried, or
# recorded as refunded by hand; who, when, why. A table of its own (not columns on payments):
# tables are created at start-up, and an existing payments table would not gain new columns.
refund_decisions = Table(
    "refund_decisions",
    tables,
    Column("decision_id", String(64), primary_key=True),
    Column("payment_id", String(80), nullable=False, index=True),
    Column("action", String(20), nullable=False),  # retry, refunded_by_hand
    Column("operator", String(200), nullable=False),
    Column("reason", String(500), nullable=False),
    Column("reference", String(100), nullable=True),
    Column("decided_at", UtcDateTime, nullable=False),
)


# Every call made to a payment gateway: what was asked, what came of it, how long it took.
gateway_attempts = Table(
    "gateway_attempts",
    tables,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("payment_id", String(80), nullable=False, index=True),
    Column("gateway", String(40), nullable=False),
    Column("operation", String(20), nullable=False),  # charge, lookup, refund
    # approved, declined, not_found, succeeded, unavailable, ambiguous, circuit_open, rejected
    Column("outcome", String(20), nullable=False),
    Column("detail", String(500), nullable=True),
    Column("duration_ms", Integer, nullable=False),
    Column("at", UtcDateTime, nullable=False, server_default=func.now()),
)


async def get_payment_method(session: AsyncSession, payment_method_id: str) -> Any | None:
    return (
        await session.execute(select(payment_methods).where(payment_methods.c.payment_method_id == payment_method_id))
    ).first()


# Built once, with bind parameters: the reads each order makes (a statement built per call
# costs about as much again as running it, docs/benchmarks.md).
_PAYMENT = select(payments).where(payments.c.payment_id == bindparam("payment_id"))
_PAYMENT_OF_ORDER = select(payments).where(payments.c.order_id == bindparam("order_id"))
_CANCELLATION = select(cancellations_before_payment).where(cancellations_before_payment.c.order_id == bindparam("order_id"))


async def get_payment(session: AsyncSession, payment_id: str) -> Any | None:
    return (await session.execute(_PAYMENT, {"payment_id": payment_id})).first()


async def payment_for_order(session: AsyncSession, order_id: str) -> Any | None:
    return (await session.execute(_PAYMENT_OF_ORDER, {"order_id": order_id})).first()


async def update_payment(session: AsyncSession, payment_id: str, **values: Any) -> None:
    await session.execute(
        update(payments).where(payments.c.payment_id == payment_id).values(updated_at=datetime.now(timezone.utc), **values)
    )


async def cancellation_before_payment(session: AsyncSession, order_id: str) -> Any | None:
    return (await session.execute(_CANCELLATION, {"order_id": order_id})).first()


async def remember_cancellation(session: AsyncSession, order_id: str, reason: str, event_id: str) -> None:
    if await cancellation_before_payment(session, order_id) is None:
        await session.execute(
            cancellations_before_payment.insert().values(
                order_id=order_id, reason=reason, event_id=event_id, cancelled_at=datetime.now(timezone.utc)
            )
        )


async def refund_decisions_of(session: AsyncSession, payment_id: str) -> list[Any]:
    return list(
        await session.execute(
            select(refund_decisions).where(refund_decisions.c.payment_id == payment_id).order_by(refund_decisions.c.decided_at)
        )
    )
