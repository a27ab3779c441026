"""The order saga, as data: what the monitor expects to see, in which order, by when.

Each row is one expected step: the event(s) that complete it, the events after which it is
expected (all of them), who owes it, and how long the saga waits for it. A step that appears
on several rows (cancellation) is expected after any of them. This one table drives the
monitor's projection, its deadlines, the timeline's "next expected event" and the diagram in
docs/saga.md (`python -m concerto_monitor.domain.diagram`).

The pivot is ShipmentDispatched: once the parcel has left nothing is undone. The order context
already refuses to cancel once ShipmentScheduled is known (ADR 5), so a step that follows
ShipmentScheduled is not compensable either: a timeout there leaves the saga STUCK for an
operator instead of asking for a refund while the parcel may still leave.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Step:
    name: str
    expects: tuple[str, ...]  # any one of these completes the step
    follows: tuple[str, ...]  # the step is expected once all of these have been seen
    owner: str  # the context that publishes what the step expects
    deadline_seconds: int | None  # None: optional, the saga does not wait for it
    compensation: bool = False  # a step of the way back: a context undoing its part
    compensable: bool = True  # if it times out, the saga can still be rolled back
    pivot: bool = False
    # Events by which the owner says it cannot do the step, for good: until the step is done
    # after all, the saga is COMPENSATION_FAILED and an operator decides.
    fails_with: tuple[str, ...] = ()

    @property
    def optional(self) -> bool:
        return self.deadline_seconds is None


@dataclass(frozen=True)
class SagaDefinition:
    name: str
    steps: tuple[Step, ...]
    started_by: str  # the event that starts the saga (the first a confirmed order publishes)
    completed_by: str  # the event that ends the saga well
    cancelled_by: str  # the event after which the saga runs backwards

    def with_deadlines(self, overrides: Mapping[str, int]) -> SagaDefinition:
        """The same saga with some steps' deadlines (in seconds) replaced, by step name."""
        unknown = set(overrides) - {step.name for step in self.steps}
        if unknown:
            raise ValueError(f"no saga step named {', '.join(sorted(unknown))}")
        optional = sorted({step.name for step in self.steps if step.optional} & set(overrides))
        if optional:
            raise ValueError(f"{', '.join(optional)}: optional, the saga does not wait for it, so it has no deadline")
        return replace(
            self,
            steps=tuple(replace(step, deadline_seconds=overrides[step.name]) if step.name in overrides else step for step in self.steps),
        )

    @property
    def forward_events(self) -> frozenset[str]:
        return frozenset(event for step in self.steps if not step.compensation for event in step.expects)


ORDER_SAGA = SagaDefinition(
    name="order",
    started_by="OrderConfirmed",
    completed_by="OrderCompleted",
    cancelled_by="OrderCancelled",
    steps=(
        # The way forward. The saga starts with OrderConfirmed (or, for an order rejected while
        # being priced, with OrderCancelled).
        Step("payment", ("PaymentCompleted", "PaymentFailed"), ("OrderConfirmed",), "payment", 360),
        Step("reservation", ("InventoryReserved", "InventoryUnavailable"), ("PaymentCompleted",), "fulfillment", 30),
        Step("points", ("PointsAwarded",), ("PaymentCompleted",), "loyalty", None),
        Step("shipment", ("ShipmentScheduled",), ("InventoryReserved",), "fulfillment", 30),
        Step("dispatch", ("ShipmentDispatched",), ("ShipmentScheduled",), "fulfillment", 60, compensable=False, pivot=True),
        Step("completion", ("OrderCompleted",), ("ShipmentDispatched",), "order", 30, compensable=False),
        # The way back: the order context decides to cancel, then each context undoes its part.
        Step("cancellation", ("OrderCancelled",), ("PaymentFailed",), "order", 30, compensation=True),
        Step("cancellation", ("OrderCancelled",), ("InventoryUnavailable",), "order", 30, compensation=True),
        Step("cancellation", ("OrderCancelled",), ("CompensationRequested",), "order", 30, compensation=True),
        # Money back, or never taken (a payment still being attempted stops, failing `cancelled`).
        # A refund the gateway refuses for good waits for an operator: retried, or recorded as
        # refunded by hand (which publishes PaymentRefunded too).
        Step(
            "refund", ("PaymentRefunded", "PaymentFailed"), ("OrderConfirmed", "OrderCancelled"), "payment", 360,
            compensation=True, fails_with=("PaymentRefundFailed",),
        ),
        Step("release", ("FulfillmentCancelled", "InventoryUnavailable"), ("PaymentCompleted", "OrderCancelled"), "fulfillment", 30, compensation=True),
        Step("points_reversal", ("PointsReversed",), ("PaymentRefunded",), "loyalty", 30, compensation=True),
    ),
)

# The events of an order the monitor reads but that are no step of the saga.
ANNOUNCEMENTS = frozenset({"SagaTimedOut", "TierChanged"})
