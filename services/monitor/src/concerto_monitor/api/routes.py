"""The monitor's HTTP API, reached through the gateway: one order's timeline, sagas by status,
and the dead letters with their redrive."""

from __future__ import annotations

import os

from fastapi import APIRouter, Depends, Query

from concerto_contracts.http import (
    DeadLetter,
    DeadLetterPage,
    ExpectedEvent,
    SagaPage,
    SagaStatus,
    SagaSummary,
    Timeline,
    TimelineEvent,
)
from concerto_monitor.adapters import db, repository
from concerto_monitor.adapters.dead_letters import redrive
from concerto_monitor.domain.saga import TERMINAL, Expected, Saga
from concerto_monitor.domain.timeline import causal_order
from concerto_monitor.settings import SAGA
from concerto_runtime import Problem, Runtime, runtime_of

router = APIRouter()


def _expected(expected: Expected) -> ExpectedEvent:
    return ExpectedEvent(
        step=expected.step.name,
        events=list(expected.step.expects),
        deadline=expected.deadline,
        optional=expected.step.optional,
        compensation=expected.step.compensation,
    )


def _summary(row, saga: Saga) -> dict:
    expected = [] if saga.status in TERMINAL else saga.expected()
    return {
        "order_id": row.order_id,
        "correlation_id": row.correlation_id,
        "status": saga.status,
        "current_step": row.current_step,
        "next_expected": _expected(expected[0]) if expected else None,
        "stuck_step": saga.stuck_step if row.status == SagaStatus.STUCK else saga.failed_step,
        "started_at": row.started_at,
        "updated_at": row.updated_at,
    }


def workflow_ids(row, events: list) -> list[str]:
    """The Temporal workflows that handled this order, by each context's workflow-id scheme."""
    seen = {event.type for event in events}
    ids = [f"order-{row.order_id}"]
    if row.payment_id:
        ids.append(f"payment-{row.payment_id}")
    if seen & {"InventoryReserved", "InventoryUnavailable", "ShipmentScheduled", "FulfillmentCancelled"}:
        ids.append(f"fulfillment-{row.order_id}")
    if seen & {"PaymentRefunded", "PaymentRefundFailed"} and row.payment_id:
        ids.append(f"refund-{row.payment_id}")
    if seen & {"PointsAwarded", "PointsReversed"} and row.customer_id:
        ids.append(f"loyalty-{row.customer_id}")
    return ids


@router.get("/sagas/{order_id}/timeline")
async def timeline(order_id: str, runtime: Runtime = Depends(runtime_of)) -> Timeline:
    async with runtime.read_sessions() as session:
        stored = await repository.load(session, SAGA, order_id)
    if stored.row is None:
        raise Problem(404, "No saga for this order", f"the monitor has seen no event of order {order_id}")
    saga, events = stored.saga, stored.events
    in_order = causal_order(events)
    trace_id = next((e.trace_id for e in in_order if e.trace_id), None)
    return Timeline(
        **_summary(stored.row, saga),
        events=[
            TimelineEvent(
                event_id=e.event_id,
                type=e.type,
                source=e.source,
                time=e.time,
                received_at=e.received_at,
                causation_id=e.causation_id,
                trace_id=e.trace_id,
                late=e.late,
            )
            for e in in_order
        ],
        expected=[] if saga.status in TERMINAL else [_expected(e) for e in saga.expected()],
        compensable=saga.compensable(),
        temporal_workflows=workflow_ids(stored.row, events),
        trace_id=trace_id,
        trace_url=trace_url(trace_id),
    )


def trace_url(trace_id: str | None) -> str | None:
    """The trace's page in the viewer (TRACE_VIEWER_URL, `{trace_id}` in it), if there is one.
    The order's trace is its first event's: every hop joins the one trace (ADR 18)."""
    template = os.environ.get("TRACE_VIEWER_URL")
    return template.replace("{trace_id}", trace_id) if template and trace_id else None


@router.get("/sagas")
async def sagas(
    status: SagaStatus | None = None,
    limit: int = Query(20, ge=1, le=200),
    offset: int = Query(0, ge=0),
    runtime: Runtime = Depends(runtime_of),
) -> SagaPage:
    where = [db.sagas.c.status == status.value] if status else []
    async with runtime.read_sessions() as session:
        rows, total = await db.page(session, db.sagas, [db.sagas.c.updated_at.desc()], limit, offset, *where)
        items = []
        for row in rows:
            stored = await repository.of_row(session, SAGA, row.order_id, row)
            items.append(SagaSummary(**_summary(row, stored.saga)))
    return SagaPage(items=items, total=total, limit=limit, offset=offset)


def _dead_letter(row) -> DeadLetter:
    return DeadLetter.model_validate(row, from_attributes=True)


@router.get("/dead-letters")
async def dead_letters(
    limit: int = Query(20, ge=1, le=200), offset: int = Query(0, ge=0), runtime: Runtime = Depends(runtime_of)
) -> DeadLetterPage:
    async with runtime.read_sessions() as session:
        rows, total = await db.page(session, db.dead_letters, [db.dead_letters.c.id.desc()], limit, offset)
    return DeadLetterPage(items=[_dead_letter(row) for row in rows], total=total, limit=limit, offset=offset)


@router.post("/dead-letters/{dead_letter_id}/redrive")
async def redrive_dead_letter(dead_letter_id: int, runtime: Runtime = Depends(runtime_of)) -> DeadLetter:
    async with runtime.unit_of_work() as uow:
        row = (await uow.session.execute(db.dead_letters.select().where(db.dead_letters.c.id == dead_letter_id))).first()
        if row is None:
            raise Problem(404, "Dead letter not found", f"no dead letter with id {dead_letter_id}")
        if row.redriven_at is not None:
            raise Problem(409, "Already redriven", f"dead letter {dead_letter_id} was put back on {row.topic} at {row.redriven_at.isoformat()}")
        await redrive(uow.session, row)
        redriven_at = db.now()
        await uow.session.execute(
            db.dead_letters.update().where(db.dead_letters.c.id == dead_letter_id).values(redriven_at=redriven_at)
        )
        await uow.commit()
    return _dead_letter(row).model_copy(update={"redriven_at": redriven_at})
