"""SagaWatch's activity: when a deadline passes, look at the saga again and, if the step is
still missing, declare it STUCK and publish the alerts (in one transaction, via the outbox)."""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity

from concerto_contracts.events import CompensationRequested, SagaTimedOut
from concerto_monitor.adapters import db, repository
from concerto_monitor.domain.definition import SagaDefinition
from concerto_monitor.workflows.inputs import WatchUpdate
from concerto_observability import bind
from concerto_runtime import Runtime


class WatchActivities:
    def __init__(self, runtime: Runtime, definition: SagaDefinition) -> None:
        self._runtime = runtime
        self._definition = definition

    @activity.defn
    async def declare_overdue(self, order_id: str) -> WatchUpdate:
        async with self._runtime.unit_of_work() as uow:
            stored = await repository.load(uow.session, self._definition, order_id)
            saga = stored.saga
            row = await db.get_saga(uow.session, order_id)
            overdue = saga.overdue(db.now())
            if overdue is None:
                watch = saga.watch()
                return WatchUpdate(version=stored.version, step=watch and watch.step, deadline=watch and watch.deadline)
            compensate = not overdue.step.compensation and saga.compensable()
            with bind(correlation_id=row.correlation_id, order_id=order_id):
                activity.logger.warning(
                    "saga stuck: %s overdue (%s)", overdue.step.name, "compensation requested" if compensate else "no compensation"
                )
            saga.mark_timed_out(overdue.step.name)
            stored.version += 1
            # The alert follows the event after which the missing one was expected.
            cause = max(
                (e for e in await db.events_of(uow.session, order_id) if e.type in overdue.step.follows),
                key=lambda e: e.received_at,
                default=None,
            )
            causation_id = cause.event_id if cause else None
            missing = list(overdue.step.expects)
            uow.publish(
                SagaTimedOut(
                    order_id=order_id,
                    step=overdue.step.name,
                    missing_events=missing,
                    waiting_since=overdue.deadline - timedelta(seconds=overdue.step.deadline_seconds),
                    deadline=overdue.deadline,
                    compensation_requested=compensate,
                    suggested_actions=saga.suggested_actions(overdue, compensate),
                ),
                correlation_id=row.correlation_id,
                causation_id=causation_id,
            )
            if compensate:
                uow.publish(
                    CompensationRequested(order_id=order_id, reason="saga_timeout", step=overdue.step.name, missing_events=missing),
                    correlation_id=row.correlation_id,
                    causation_id=causation_id,
                )
            await repository.save(uow.session, stored)
            await uow.commit()
        watch = saga.watch()
        return WatchUpdate(version=stored.version, step=watch and watch.step, deadline=watch and watch.deadline)
