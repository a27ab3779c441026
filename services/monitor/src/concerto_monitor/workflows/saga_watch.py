"""SagaWatch: one durable timer for every order's saga.

Each saga's earliest deadline is in the monitor's due-time index (`sagas.due_at`). This
workflow sleeps until the earliest of them all; the consumer signals it only when a saga's
deadline comes before that. When the timer fires, the activity handles every saga that is due
(a step still missing: STUCK, and the alerts go out) and answers with the next earliest
deadline. Sagas that moved on or ended are simply not due any more, so a busy shop costs this
workflow nothing per order. The timer lives in Temporal: it survives any restart of the
monitor, and its history shows every wake-up."""

from __future__ import annotations

import asyncio

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from concerto_monitor.workflows.activities import WatchActivities
    from concerto_monitor.workflows.inputs import WatchUpdate
    from concerto_runtime.workflows import activity_options

# Start a fresh run (continue-as-new) after this many wake-ups, to keep the history short.
WAKES_PER_RUN = 500


@workflow.defn
class SagaWatch:
    def __init__(self) -> None:
        self._due: WatchUpdate | None = None

    @workflow.signal
    def watch(self, update: WatchUpdate) -> None:
        if self._due is None or update.version > self._due.version:
            self._due = update

    @workflow.query
    def current(self) -> WatchUpdate | None:
        return self._due

    @workflow.run
    async def run(self, carried_over: WatchUpdate | None = None) -> str:
        if carried_over is not None:
            self.watch(carried_over)
        await workflow.wait_condition(lambda: self._due is not None)
        for _ in range(WAKES_PER_RUN):
            current = self._due
            if current.deadline is None:
                return "no saga waits for anything"
            remaining = current.deadline - workflow.now()
            if remaining.total_seconds() > 0:
                try:
                    await workflow.wait_condition(lambda: self._due.version != current.version, timeout=remaining)
                    continue  # an earlier deadline arrived
                except asyncio.TimeoutError:
                    pass
            self.watch(await workflow.execute_activity_method(WatchActivities.handle_due_sagas, **activity_options()))
            if self._due.deadline == current.deadline:
                await workflow.sleep(1)  # not due yet by the database's clock: look again shortly
        await workflow.wait_condition(workflow.all_handlers_finished)
        workflow.continue_as_new(self._due)
