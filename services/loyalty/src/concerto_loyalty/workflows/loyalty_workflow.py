"""LoyaltyAccountWorkflow: one long-running workflow per customer account (an entity
workflow). Changes arrive as signals and are applied one at a time, so two orders paid at
the same moment never race on the balance."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from concerto_runtime.workflows import run_step
    from concerto_loyalty.workflows.activities import LoyaltyActivities
    from concerto_loyalty.workflows.inputs import AccountChange

# Keep each run's history short: start afresh after this many changes.
CHANGES_PER_RUN = 200


@workflow.defn
class LoyaltyAccountWorkflow:
    def __init__(self) -> None:
        self._pending: list[AccountChange] = []

    @workflow.signal
    def change(self, change: AccountChange) -> None:
        self._pending.append(change)

    @workflow.run
    async def run(self, customer_id: str, carried_over: list[AccountChange] | None = None) -> None:
        self._pending[:0] = carried_over or []
        for _ in range(CHANGES_PER_RUN):
            await workflow.wait_condition(lambda: bool(self._pending))
            await run_step(LoyaltyActivities.apply_change, self._pending.pop(0))
        # Changes that arrived meanwhile travel on to the next run.
        await workflow.wait_condition(workflow.all_handlers_finished)
        workflow.continue_as_new(args=[customer_id, self._pending])
