"""LoyaltyAccountWorkflow's activity: apply one change to the account and announce it.
The ledger's unique key makes a repeated change a no-op."""

from __future__ import annotations

from sqlalchemy import insert, update
from temporalio import activity

from concerto_contracts.events import PointsAwarded, PointsReversed, TierChanged
from concerto_loyalty.adapters import db
from concerto_loyalty.domain.rules import points_for, tier_for
from concerto_loyalty.workflows.inputs import AccountChange
from concerto_observability import bind
from concerto_observability.metrics import counter
from concerto_runtime import Runtime

POINTS = {
    "awarded": counter("concerto_points_awarded", "Loyalty points awarded for completed payments"),
    "reversed": counter("concerto_points_reversed", "Loyalty points taken back from cancelled orders"),
}


class LoyaltyActivities:
    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime

    @activity.defn
    async def apply_change(self, change: AccountChange) -> None:
        reason = "awarded" if change.kind == "award" else "reversed"
        with bind(correlation_id=change.correlation_id, order_id=change.order_id):
            async with self._runtime.unit_of_work() as uow:
                session = uow.session
                if await db.ledger_entry(session, change.customer_id, change.order_id, reason):
                    return
                if change.kind == "award":
                    delta = points_for(change.amount, change.first_order)
                else:
                    awarded = await db.ledger_entry(session, change.customer_id, change.order_id, "awarded")
                    if awarded is None:
                        return  # nothing was awarded for this order, so nothing to take back
                    delta = -awarded.points
                account = await db.get_account(session, change.customer_id)
                old_tier = account.tier if account else "standard"
                balance = max(0, (account.points if account else 0) + delta)
                tier = tier_for(balance)
                if account:
                    await session.execute(
                        update(db.accounts).where(db.accounts.c.customer_id == change.customer_id).values(points=balance, tier=tier)
                    )
                else:
                    await session.execute(insert(db.accounts).values(customer_id=change.customer_id, points=balance, tier=tier))
                await session.execute(
                    insert(db.ledger).values(customer_id=change.customer_id, order_id=change.order_id, reason=reason, points=delta)
                )
                announce = PointsAwarded if change.kind == "award" else PointsReversed
                common = {"customer_id": change.customer_id, "order_id": change.order_id}
                uow.publish(
                    announce(**common, points=abs(delta), balance=balance, tier=tier),
                    correlation_id=change.correlation_id,
                    causation_id=change.causation_id,
                )
                if tier != old_tier:
                    uow.publish(
                        TierChanged(**common, old_tier=old_tier, new_tier=tier),
                        correlation_id=change.correlation_id,
                        causation_id=change.causation_id,
                    )
                await uow.commit()
            activity.logger.info("%s %d points", reason, abs(delta))
        POINTS[reason].inc(abs(delta))
