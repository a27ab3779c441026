"""SagaWatch: a durable timer per order saga.

The monitor's consumer keeps the saga's projection and tells this workflow (a signal) the
next deadline. If the deadline passes before a newer one arrives, the activity looks at the
projection again and, if the step is still missing, declares the saga STUCK and publishes the
alerts. The timer lives in Temporal, so it survives any restart of the monitor."""

from __future__ import annotations

import asyncio

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from concerto_monitor.workflows.activities import WatchActivities
    from concerto_monitor.workflows.inputs import WatchUpdate
    from concerto_runtime.workflows import activity_options


@workflow.defn
class SagaWatch:
    def __init__(self) -> None:
        self._watch: WatchUpdate | None = None

    @workflow.signal
    def watch(self, update: WatchUpdate) -> None:
        if self._watch is None or update.version > self._watch.version:
            self._watch = update

    @workflow.query
    def current(self) -> WatchUpdate | None:
        return self._watch

    @workflow.run
    async def run(self, order_id: str) -> str:
        await workflow.wait_condition(lambda: self._watch is not None)
        while self._watch.deadline is not None:
            current = self._watch
            remaining = current.deadline - workflow.now()
            if remaining.total_seconds() > 0:
                try:
                    await workflow.wait_condition(lambda: self._watch.version != current.version, timeout=remaining)
                    continue  # the saga moved on: a new deadline
                except asyncio.TimeoutError:
                    pass
            # The deadline passed: the activity checks the projection and, if the step is still
            # missing, declares the saga stuck. It answers with the saga's next deadline.
            answer = await workflow.execute_activity_method(WatchActivities.declare_overdue, order_id, **activity_options())
            self.watch(answer)
            if self._watch.version == current.version:
                await workflow.sleep(1)  # not overdue yet by the database's clock: look again shortly
        return "the saga waits for nothing more"
