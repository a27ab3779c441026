"""LoyaltyAccountWorkflow's activity: apply one change to the account and announce it.
The ledger's unique key makes a repeated change a no-op. A reversal that arrives before its
award (a refund overtaking the payment) is owed, and settled when the award comes: whichever
arrives first, the account ends as if the award had come first."""

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
        with bind(correlation_id=change.correlation_id, order_id=change.order_id):
            async with self._runtime.unit_of_work() as uow:
                session = uow.session
                awarded = await db.ledger_entry(session, change.customer_id, change.order_id, "awarded")
                reversed_ = await db.ledger_entry(session, change.customer_id, change.order_id, "reversed")
                applied: list[tuple[str, int]] = []
                if change.kind == "award" and awarded is None:
                    applied.append(await self._apply(uow, change, "awarded", points_for(change.amount, change.first_order)))
                    if reversed_ is not None:
                        # The refund came first and left a reversal owed: take back what was just awarded.
                        applied.append(await self._apply(uow, change, "reversed", -applied[0][1], owed=True))
                elif change.kind == "reverse" and reversed_ is None:
                    if awarded is None:
                        # Nothing awarded yet (the refund overtook the payment): note the reversal as
                        # owed, at 0 points, and settle it when the award arrives.
                        await session.execute(
                            insert(db.ledger).values(customer_id=change.customer_id, order_id=change.order_id, reason="reversed", points=0)
                        )
                    else:
                        applied.append(await self._apply(uow, change, "reversed", -awarded.points))
                await uow.commit()
            for reason, delta in applied:
                activity.logger.info("%s %d points", reason, abs(delta))
        for reason, delta in applied:
            POINTS[reason].inc(abs(delta))

    async def _apply(self, uow, change: AccountChange, reason: str, delta: int, *, owed: bool = False) -> tuple[str, int]:
        """Changes the balance by `delta`, writes the ledger (the owed reversal's row, if it is
        one) and announces it, all in the caller's transaction."""
        session = uow.session
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
        if owed:
            entry = db.ledger.c
            await session.execute(
                update(db.ledger)
                .where(entry.customer_id == change.customer_id, entry.order_id == change.order_id, entry.reason == reason)
                .values(points=delta)
            )
        else:
            await session.execute(
                insert(db.ledger).values(customer_id=change.customer_id, order_id=change.order_id, reason=reason, points=delta)
            )
        announce = PointsAwarded if reason == "awarded" else PointsReversed
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
        return reason, delta
