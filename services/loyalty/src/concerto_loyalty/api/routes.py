"""The loyalty context's HTTP API: a customer's points, tier and history."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from concerto_contracts.http import LoyaltyAccount, LoyaltyEntry
from concerto_loyalty.adapters import db
from concerto_runtime import Runtime, runtime_of

router = APIRouter()


@router.get("/customers/{customer_id}/loyalty")
async def loyalty_account(customer_id: str, runtime: Runtime = Depends(runtime_of)) -> LoyaltyAccount:
    async with runtime.read_sessions() as session:
        account = await db.get_account(session, customer_id)
        entries = await db.history(session, customer_id)
    return LoyaltyAccount(
        customer_id=customer_id,
        points=account.points if account else 0,
        tier=account.tier if account else "standard",
        history=[LoyaltyEntry(order_id=e.order_id, points=e.points, reason=e.reason, at=e.at) for e in entries],
    )
