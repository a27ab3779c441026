"""One order's saga as the monitor sees it: which events have arrived (and when), what is
still expected and by when, and the saga's status. Pure rules, no I/O.

Events of one order travel on several topics, so they can arrive in any order: everything here
depends on the set of events seen, never on the order of arrival.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from concerto_contracts.http import SagaStatus
from concerto_monitor.domain.definition import SagaDefinition, Step

TERMINAL = frozenset({SagaStatus.COMPLETED, SagaStatus.COMPENSATED})


@dataclass(frozen=True)
class Expected:
    step: Step
    deadline: datetime | None  # None for an optional step


@dataclass(frozen=True)
class Watch:
    """What the SagaWatch timer waits for: the earliest deadline of a required step."""

    step: str
    deadline: datetime


class Saga:
    def __init__(
        self,
        definition: SagaDefinition,
        seen: dict[str, datetime],
        status: SagaStatus | None = None,
        timed_out: set[str] | frozenset[str] = frozenset(),
    ):
        self.definition = definition
        self.seen = dict(seen)  # event name -> when the monitor first saw one; changed by record() only
        self.timed_out = set(timed_out)  # steps whose deadline has fired (each fires once)
        self._status = SagaStatus(status) if status else None  # as stored, or None for a new saga
        self._expected: list[Expected] | None = None  # expected() of `seen` as it is (status asks it often)

    # --- what the saga is waiting for -----------------------------------------------------

    def expected(self) -> list[Expected]:
        """Every step still expected, the earliest deadline first (optional steps last). A step
        listed on several rows is expected once, from its earliest row."""
        if self._expected is None:
            self._expected = self._expected_of_seen()
        return list(self._expected)

    def _expected_of_seen(self) -> list[Expected]:
        rolling_back = self.definition.cancelled_by in self.seen
        found: dict[str, Expected] = {}
        for step in self.definition.steps:
            if any(event in self.seen for event in step.expects):
                continue
            if not all(event in self.seen for event in step.follows):
                continue
            if rolling_back and not step.compensation:
                continue  # the way forward is closed once the order is cancelled
            since = max(self.seen[event] for event in step.follows)
            deadline = None if step.optional else since + timedelta(seconds=step.deadline_seconds)
            candidate = Expected(step, deadline)
            current = found.get(step.name)
            if current is None or (deadline and current.deadline and deadline < current.deadline):
                found[step.name] = candidate
        return sorted(found.values(), key=lambda e: (e.deadline is None, e.deadline or datetime.max))

    def required(self) -> list[Expected]:
        return [e for e in self.expected() if not e.step.optional]

    def _next_due(self) -> Expected | None:
        """The required step with the earliest deadline that has not fired yet."""
        if self.status in TERMINAL:
            return None
        return next((e for e in self.required() if e.step.name not in self.timed_out), None)

    def watch(self) -> Watch | None:
        """The deadline to set a timer for; None when the saga waits for nothing (or has ended)."""
        due = self._next_due()
        return Watch(due.step.name, due.deadline) if due else None

    def overdue(self, now: datetime) -> Expected | None:
        """The required step whose deadline has passed, if any."""
        due = self._next_due()
        return due if due is not None and due.deadline <= now else None

    # --- where the saga stands ----------------------------------------------------------

    @property
    def status(self) -> SagaStatus:
        if self._status in TERMINAL:
            return self._status  # an ended saga stays ended: a late event changes nothing
        if self.definition.completed_by in self.seen:
            return SagaStatus.COMPLETED
        pending = {e.step.name for e in self.required()}
        if self.failed_step is not None:
            return SagaStatus.COMPENSATION_FAILED  # said for good, before any deadline: an operator's matter
        if self.timed_out & pending:
            return SagaStatus.STUCK
        if self.definition.cancelled_by in self.seen:
            return SagaStatus.COMPENSATING if pending else SagaStatus.COMPENSATED
        return SagaStatus.RUNNING

    @property
    def failed_step(self) -> str | None:
        """A compensation step still expected whose owner has said it cannot do it (a refund the
        gateway refused for good)."""
        return next(
            (e.step.name for e in self.required() if e.step.compensation and any(event in self.seen for event in e.step.fails_with)),
            None,
        )

    @property
    def stuck_step(self) -> str | None:
        """The overdue step the saga is stuck on, if it is."""
        pending = [e.step.name for e in self.required()]
        return next((name for name in pending if name in self.timed_out), None)

    @property
    def past_pivot(self) -> bool:
        """Whether a step that cannot be compensated has been reached."""
        return any(not step.compensable and all(e in self.seen for e in step.follows) for step in self.definition.steps)

    def compensable(self) -> bool:
        """Whether rolling the saga back may still be asked for."""
        return not self.past_pivot and self.definition.cancelled_by not in self.seen and "CompensationRequested" not in self.seen

    # --- changes ------------------------------------------------------------------------

    def record(self, event: str, at: datetime) -> bool:
        """Note an event; returns whether it arrived late. The first arrival of a name counts."""
        # A saga cancelled before its start was seen (an order rejected while being priced, or
        # its OrderConfirmed redriven late) opens again when the start arrives: there is
        # something to undo after all.
        reopens = self._status == SagaStatus.COMPENSATED and event == self.definition.started_by and event not in self.seen
        ended, rolling_back = self.status in TERMINAL and not reopens, self.definition.cancelled_by in self.seen
        before = (self.status, {e.step.name for e in self.required()})
        if event not in self.seen:
            self.seen[event] = at
            self._expected = None
        if reopens:
            self._status = None
        self._settle()
        # Late: after the end, or on the way back without changing anything (a step forward
        # that comes too late; but a payment completing after the cancellation adds a release).
        return ended or (rolling_back and (self.status, {e.step.name for e in self.required()}) == before)

    def mark_timed_out(self, step: str) -> None:
        self.timed_out.add(step)
        self._settle()

    def _settle(self) -> None:
        if self._status not in TERMINAL:
            self._status = None
            self._status = self.status

    def suggested_actions(self, expected: Expected, compensating: bool) -> list[str]:
        step = expected.step
        actions = [
            f"Check the {step.owner} service: is it running (`make status`), is its consumer paused "
            f"(GET /api/v1/admin/consumers/{step.owner}), are there dead letters for this order "
            "(GET /api/v1/admin/dead-letters)?",
        ]
        if compensating:
            actions.append("Compensation was requested: the order context cancels the order and each context undoes its part.")
        elif step.fails_with and any(event in self.seen for event in step.fails_with):
            actions.append(
                f"The {step.owner} context refused it for good ({' or '.join(step.fails_with)}): on the console, retry the "
                "refund or record it as refunded by hand (POST /api/v1/admin/payments/{order_id}/refund/retry or .../refunded-by-hand)."
            )
        elif step.compensation:
            actions.append(f"The saga is already rolling back: the {step.owner} context still owes {' or '.join(step.expects)}.")
        else:
            actions.append(
                "Past the pivot nothing is compensated: find out from the carrier whether the parcel left, then complete "
                "or refund the order by hand."
            )
        return actions
