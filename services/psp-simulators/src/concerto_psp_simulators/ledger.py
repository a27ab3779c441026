"""The simulator's own books: every charge (payment) and refund it accepted or refused.

Both simulators use the same two tables, in their own SQLite file (<data_dir>/<name>.db), so
what a PSP did survives a restart, as it would at a real provider. Each row keeps the response
that was sent, so a retry with the same idempotency key (or merchant reference) can be answered
with exactly the same response, and a fingerprint of the request, to tell a retry from a
different request that reuses the key.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy import JSON, Column, Integer, MetaData, String, Table, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from concerto_runtime import Settings

tables = MetaData()

charges = Table(
    "charges",
    tables,
    Column("id", Integer, primary_key=True, autoincrement=True),  # the ledger's order
    Column("reference", String(40), nullable=False, unique=True),  # ch_... or PN...
    Column("key", String(255), nullable=False, unique=True),  # idempotency key or merchant reference
    Column("amount", Integer, nullable=False),  # minor units
    Column("currency", String(3), nullable=False),
    Column("status", String(16), nullable=False),  # succeeded | failed
    Column("card_brand", String(20), nullable=False),
    Column("card_last4", String(4), nullable=False),
    Column("decline_code", String(40)),  # generic_decline, insufficient_funds; None if approved
    Column("details", JSON, nullable=False, default=dict),  # what else the API echoes back
    Column("fingerprint", String(64), nullable=False),
    Column("response_status", Integer, nullable=False),
    Column("response_body", JSON, nullable=False),
    Column("created", Integer, nullable=False),  # unix seconds
)

refunds = Table(
    "refunds",
    tables,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("reference", String(40), nullable=False, unique=True),  # re_... or PNR...
    Column("charge_reference", String(40), nullable=False, index=True),
    Column("key", String(255), nullable=False, unique=True),
    Column("amount", Integer, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("status", String(16), nullable=False),  # succeeded | failed (refused)
    Column("fingerprint", String(64), nullable=False),
    Column("response_status", Integer, nullable=False),
    Column("response_body", JSON, nullable=False),
    Column("created", Integer, nullable=False),
)


def database_url(name: str, settings: Settings) -> str:
    """Always a SQLite file of its own: a simulator stands for a system outside Concerto, so it
    does not follow DATABASE_URL (which points Concerto's own services at their databases)."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return f"sqlite+aiosqlite:///{settings.data_dir.resolve() / name}.db"


def fingerprint(request: dict[str, Any]) -> str:
    """A stable digest of what was asked for."""
    return hashlib.sha256(json.dumps(request, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def new_digits(prefix: str, digits: int = 16) -> str:
    """PN1234567890123456-style references."""
    return f"{prefix}{secrets.randbelow(10**digits):0{digits}d}"


def new_hex(prefix: str) -> str:
    """ch_<24 hex>-style ids."""
    return f"{prefix}{secrets.token_hex(12)}"


async def charge_by_key(session: AsyncSession, key: str) -> Any | None:
    return (await session.execute(select(charges).where(charges.c.key == key))).first()


async def charge_by_reference(session: AsyncSession, reference: str) -> Any | None:
    return (await session.execute(select(charges).where(charges.c.reference == reference))).first()


async def refund_by_key(session: AsyncSession, key: str) -> Any | None:
    return (await session.execute(select(refunds).where(refunds.c.key == key))).first()


async def refunded_amount(session: AsyncSession, charge_reference: str) -> int:
    """How much of a charge has been refunded so far (refused refunds do not count)."""
    total = await session.scalar(
        select(func.coalesce(func.sum(refunds.c.amount), 0)).where(
            refunds.c.charge_reference == charge_reference, refunds.c.status == "succeeded"
        )
    )
    return int(total)


async def add_charge(session: AsyncSession, **values: Any) -> None:
    await session.execute(insert(charges).values(**values))


async def add_refund(session: AsyncSession, **values: Any) -> None:
    await session.execute(insert(refunds).values(**values))


# --- GET /_admin/ledger ------------------------------------------------------------------------

router = APIRouter(prefix="/_admin", tags=["admin"])


@router.get("/ledger", summary="Every charge and refund this PSP accepted or refused")
async def ledger(request: Request) -> dict:
    async with request.app.state.read_sessions() as session:
        charge_rows = (await session.execute(select(charges).order_by(charges.c.id))).all()
        refund_rows = (await session.execute(select(refunds).order_by(refunds.c.id))).all()
    return {
        "gateway": request.app.state.name,
        "charges": [
            {
                "reference": row.reference,
                "key": row.key,
                "amount": row.amount,
                "currency": row.currency,
                "status": row.status,
                "card_last4": row.card_last4,
                "created": row.created,
            }
            for row in charge_rows
        ],
        "refunds": [
            {
                "reference": row.reference,
                "charge_reference": row.charge_reference,
                "key": row.key,
                "amount": row.amount,
                "currency": row.currency,
                "status": row.status,
                "created": row.created,
            }
            for row in refund_rows
        ],
    }
