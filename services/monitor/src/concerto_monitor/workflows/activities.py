"""SagaWatch's activity: handle every saga whose deadline has passed (a step still missing:
STUCK, and the alerts go out through the outbox in the same transaction), then set the timer
to the next earliest deadline."""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity

from concerto_contracts.events import CompensationRequested, SagaTimedOut
from concerto_messaging import UnitOfWork
from concerto_monitor.adapters import db, repository
from concerto_monitor.domain.definition import SagaDefinition
from concerto_monitor.domain.saga import Expected, Saga
from concerto_monitor.workflows.inputs import WatchUpdate
from concerto_observability import bind
from concerto_observability.metrics import counter
from concerto_runtime import Runtime

SAGAS_TIMED_OUT = counter("concerto_sagas_timed_out", "Sagas found overdue, by the step that was late", ["step"])

# Sagas handled per transaction; more than that and the timer fires again at once.
BATCH = 50


class WatchActivities:
    def __init__(self, runtime: Runtime, definition: SagaDefinition) -> None:
        self._runtime = runtime
        self._definition = definition

    @activity.defn
    async def handle_due_sagas(self) -> WatchUpdate:
        # A deadline counts as passed only once the monitor has read every event published
        # before it: a monitor that lags behind one topic must not call a saga stuck whose
        # missing event is waiting in that topic. The watermark is the whole consumer group's,
        # read from the broker: with replicas, the event may wait in a partition another
        # instance holds (issue 18).
        # Asking the broker costs a few round trips: only when some deadline has passed by the
        # clock (the timer often fires for a saga that has moved on since).
        now, consumer, horizon = db.now(), self._runtime.consumer, None
        if consumer is not None:
            async with self._runtime.read_sessions() as session:
                earliest = await db.earliest_due(session)
            if earliest is not None and earliest <= now:
                horizon = min(now, await consumer.watermark())
        horizon = horizon or now
        async with self._runtime.unit_of_work() as uow:
            # The timer first: a deadline the consumer sets meanwhile waits for this transaction,
            # so the next deadline read below cannot miss it (PostgreSQL; SQLite's writers take turns).
            await repository.lock_timer(uow.session)
            due = await db.due_sagas(uow.session, horizon, BATCH)
            late_steps = []
            for order_id in due:
                stored = await repository.load(uow.session, self._definition, order_id, for_update=True)
                overdue = stored.saga.overdue(horizon)
                if overdue is not None:
                    self._time_out(uow, order_id, stored.row.correlation_id, stored.saga, overdue, stored.events)
                    late_steps.append(overdue.step.name)
                await repository.save(uow.session, stored)
            if len(due) == BATCH:
                following = now  # more are due: at once
            else:
                following = await db.earliest_due(uow.session)
                if following is not None and following <= now:
                    following = now + timedelta(seconds=1)  # due, but the monitor is still reading: soon
            update = await repository.set_timer(uow.session, following, only_if_earlier=False)
            await uow.commit()
        for step in late_steps:
            SAGAS_TIMED_OUT.labels(step).inc()
        return update

    def _time_out(self, uow: UnitOfWork, order_id: str, correlation_id: str, saga: Saga, overdue: Expected, events: list) -> None:
        compensate = not overdue.step.compensation and saga.compensable()
        with bind(correlation_id=correlation_id, order_id=order_id):
            activity.logger.warning(
                "saga stuck: %s overdue (%s)", overdue.step.name, "compensation requested" if compensate else "no compensation"
            )
        saga.mark_timed_out(overdue.step.name)
        # The alerts follow the event after which the missing one was expected.
        cause = max((e for e in events if e.type in overdue.step.follows), key=lambda e: e.received_at, default=None)
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
            correlation_id=correlation_id,
            causation_id=causation_id,
        )
        if compensate:
            uow.publish(
                CompensationRequested(order_id=order_id, reason="saga_timeout", step=overdue.step.name, missing_events=missing),
                correlation_id=correlation_id,
                causation_id=causation_id,
            )
