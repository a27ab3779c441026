"""The saga monitor's rules, without I/O: the order saga as data (domain/definition.py), the
deadline settings (settings.py) and the projection that turns the events seen into a status,
the steps still expected and the next deadline (domain/saga.py).

Every test feeds events into a `Saga` at explicit instants (seconds after T0) and asserts what
the projection says. The tests use a definition with a distinct deadline per step, so a test
notices when a deadline is computed from the wrong step or the wrong event."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone
from itertools import permutations

import pytest

from concerto_contracts import EVENT_TYPES
from concerto_contracts.events import MonitorEvent
from concerto_contracts.http import SagaStatus
from concerto_monitor.domain.definition import ANNOUNCEMENTS, ORDER_SAGA, Step
from concerto_monitor.domain.saga import Saga
from concerto_monitor.settings import saga_definition

T0 = datetime(2025, 3, 14, 9, 0, tzinfo=timezone.utc)

# A deadline of its own for every required step (seconds), none equal to another.
DEADLINES = {
    "payment": 300,
    "reservation": 30,
    "shipment": 40,
    "dispatch": 60,
    "completion": 20,
    "cancellation": 15,
    "refund": 120,
    "release": 25,
    "points_reversal": 35,
}
SAGA = ORDER_SAGA.with_deadlines(DEADLINES)

EVENT_NAMES = {cls.__name__ for cls in EVENT_TYPES.values()}
MONITOR_EVENTS = {cls.__name__ for cls in EVENT_TYPES.values() if issubclass(cls, MonitorEvent)}

HAPPY_PATH = [
    "OrderConfirmed",
    "PaymentCompleted",
    "PointsAwarded",
    "InventoryReserved",
    "ShipmentScheduled",
    "ShipmentDispatched",
    "OrderCompleted",
]


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def saga_after(*timed: tuple[str, float]) -> Saga:
    """A new saga that has seen each (event, second) in the order given."""
    saga = Saga(SAGA, {})
    for event, second in timed:
        saga.record(event, at(second))
    return saga


def arriving(events: list[str] | tuple[str, ...]) -> Saga:
    """A new saga that has seen `events` in the order given, one second apart."""
    return saga_after(*((event, second) for second, event in enumerate(events)))


def pending(saga: Saga) -> dict[str, datetime | None]:
    """What the saga still expects: step name -> deadline (None for an optional step)."""
    return {e.step.name: e.deadline for e in saga.expected()}


def watched(saga: Saga) -> tuple[str, datetime] | None:
    watch = saga.watch()
    return (watch.step, watch.deadline) if watch else None


def steps_named(name: str) -> list[Step]:
    return [step for step in ORDER_SAGA.steps if step.name == name]


# --- the definition ------------------------------------------------------------------


def test_monitor_definition_names_only_real_events():
    """Every event a step expects or follows (and the saga's end events) is a published event type."""
    named = {event for step in ORDER_SAGA.steps for event in step.expects + step.follows}
    named |= {ORDER_SAGA.started_by, ORDER_SAGA.completed_by, ORDER_SAGA.cancelled_by} | ANNOUNCEMENTS
    unknown = named - EVENT_NAMES
    assert not unknown, f"not an event type in concerto_contracts: {sorted(unknown)}"
    # The monitor's own events are the only ones it may follow without another context publishing them.
    assert MONITOR_EVENTS == {"SagaTimedOut", "CompensationRequested"}
    assert "CompensationRequested" in {event for step in ORDER_SAGA.steps for event in step.follows}
    # The saga starts with the event its first step follows.
    assert ORDER_SAGA.steps[0].follows == (ORDER_SAGA.started_by,)


def test_monitor_definition_step_rows_are_unique_and_consistent():
    """A step name appears once per `follows`, and its rows agree on what completes it, who owes it and by when."""
    keys = [(step.name, step.follows) for step in ORDER_SAGA.steps]
    assert len(keys) == len(set(keys))
    for name in {step.name for step in ORDER_SAGA.steps}:
        rows = steps_named(name)
        assert len({(s.expects, s.owner, s.deadline_seconds, s.compensation, s.compensable) for s in rows}) == 1, name
    assert [s.follows for s in steps_named("cancellation")] == [("PaymentFailed",), ("InventoryUnavailable",), ("CompensationRequested",)]


def test_monitor_definition_has_exactly_one_pivot_shipment_dispatched():
    """One pivot, the dispatch step completed by ShipmentDispatched, and it is not compensable."""
    pivots = [step for step in ORDER_SAGA.steps if step.pivot]
    assert [(p.name, p.expects) for p in pivots] == [("dispatch", ("ShipmentDispatched",))]
    assert not pivots[0].compensable


def test_monitor_definition_nothing_from_dispatch_on_is_compensable():
    """Exactly the pivot and the steps after it (transitively) are not compensable; every other step is."""
    after_pivot: set[str] = set()
    reached = set(next(s for s in ORDER_SAGA.steps if s.pivot).follows)  # ShipmentScheduled
    changed = True
    while changed:
        changed = False
        for step in ORDER_SAGA.steps:
            if not step.compensation and step.name not in after_pivot and set(step.follows) & reached:
                after_pivot.add(step.name)
                reached |= set(step.expects)
                changed = True
    assert after_pivot == {"dispatch", "completion"}
    assert {step.name for step in ORDER_SAGA.steps if not step.compensable} == after_pivot
    assert ORDER_SAGA.completed_by in reached


def test_monitor_definition_optional_steps_are_forward_and_without_deadline():
    """Only loyalty's points are optional (no deadline); every required step has a positive deadline."""
    assert [(s.name, s.deadline_seconds) for s in ORDER_SAGA.steps if s.optional] == [("points", None)]
    assert not any(s.compensation for s in ORDER_SAGA.steps if s.optional)
    assert all(s.deadline_seconds > 0 for s in ORDER_SAGA.steps if not s.optional)
    assert ORDER_SAGA.completed_by not in {e for s in ORDER_SAGA.steps if s.compensation for e in s.expects}


def test_monitor_with_deadlines_replaces_by_step_name():
    """`with_deadlines` changes the named steps (every row of a repeated one) and nothing else."""
    changed = ORDER_SAGA.with_deadlines({"reservation": 5, "cancellation": 7})
    for before, after in zip(ORDER_SAGA.steps, changed.steps, strict=True):
        if before.name == "reservation":
            assert after.deadline_seconds == 5
        elif before.name == "cancellation":
            assert after.deadline_seconds == 7
        else:
            assert after == before
    assert [s.deadline_seconds for s in steps_named("reservation")] == [30]  # the original is untouched


def test_monitor_with_deadlines_refuses_a_deadline_for_an_optional_step():
    """A deadline for an optional step would be ignored, so setting one is an error that says why."""
    with pytest.raises(ValueError, match="points: optional, the saga does not wait for it"):
        ORDER_SAGA.with_deadlines({"points": 10})
    with pytest.raises(ValueError, match="points: optional"):
        saga_definition({"SAGA_DEADLINE_POINTS": "10"})


def test_monitor_with_deadlines_refuses_unknown_step_names():
    """A misspelt step name is an error that names it, not a silently ignored setting."""
    with pytest.raises(ValueError, match="no saga step named reservaton"):
        ORDER_SAGA.with_deadlines({"reservaton": 5})


def test_monitor_settings_read_saga_deadlines_from_the_environment():
    """SAGA_DEADLINE_<STEP>=seconds sets that step's deadline; other variables are ignored."""
    definition = saga_definition(
        {"SAGA_DEADLINE_RESERVATION": "15", "SAGA_DEADLINE_POINTS_REVERSAL": "9", "HOME": "/root", "DEADLINE_PAYMENT": "x"}
    )
    deadlines = {s.name: s.deadline_seconds for s in definition.steps}
    assert deadlines["reservation"] == 15
    assert deadlines["points_reversal"] == 9
    assert deadlines["payment"] == 360
    assert saga_definition({}) == ORDER_SAGA


@pytest.mark.parametrize("value", ["15s", "1.5", "", "fifteen"])
def test_monitor_settings_reject_a_deadline_that_is_not_a_whole_number(value):
    """A deadline that is not an integer fails with a message naming the variable and the value."""
    with pytest.raises(ValueError) as refused:
        saga_definition({"SAGA_DEADLINE_RESERVATION": value})
    assert str(refused.value) == f"SAGA_DEADLINE_RESERVATION must be a whole number of seconds, not {value!r}"


def test_monitor_settings_reject_a_deadline_for_an_unknown_step():
    """SAGA_DEADLINE_<unknown> is refused rather than ignored."""
    with pytest.raises(ValueError, match="no saga step named shipping"):
        saga_definition({"SAGA_DEADLINE_SHIPPING": "10"})


# --- the happy path ------------------------------------------------------------------

# After each event of the happy path (seen at 0, 10, 20... s): the status, what is expected
# (step -> deadline in seconds after T0, None if optional) and what the timer watches.
HAPPY_STAGES = [
    ("OrderConfirmed", SagaStatus.RUNNING, {"payment": 0 + 300}, "payment"),
    ("PaymentCompleted", SagaStatus.RUNNING, {"reservation": 10 + 30, "points": None}, "reservation"),
    ("PointsAwarded", SagaStatus.RUNNING, {"reservation": 10 + 30}, "reservation"),
    ("InventoryReserved", SagaStatus.RUNNING, {"shipment": 30 + 40}, "shipment"),
    ("ShipmentScheduled", SagaStatus.RUNNING, {"dispatch": 40 + 60}, "dispatch"),
    ("ShipmentDispatched", SagaStatus.RUNNING, {"completion": 50 + 20}, "completion"),
    ("OrderCompleted", SagaStatus.COMPLETED, {}, None),
]


def test_monitor_happy_path_expects_each_next_step_with_its_deadline():
    """Each event of the happy path moves the expectation to the next step, due its deadline after that event."""
    saga = Saga(SAGA, {})
    for second, (event, status, expected, watching) in zip(range(0, 100, 10), HAPPY_STAGES):
        late = saga.record(event, at(second))
        assert not late, event
        assert saga.status == status, event
        assert pending(saga) == {step: at(s) if s is not None else None for step, s in expected.items()}, event
        assert watched(saga) == ((watching, at(expected[watching])) if watching else None), event
        assert saga.overdue(at(second)) is None, event
    assert saga.stuck_step is None


def test_monitor_expected_lists_required_steps_by_deadline_then_optional_ones():
    """`expected()` puts the earliest deadline first and optional steps last."""
    saga = saga_after(("OrderConfirmed", 0), ("PaymentCompleted", 10), ("OrderCancelled", 12))
    assert [e.step.name for e in saga.expected()] == ["release", "refund"]  # 12+25 before 12+120
    saga = saga_after(("OrderConfirmed", 0), ("PaymentCompleted", 10))
    assert [e.step.name for e in saga.expected()] == ["reservation", "points"]
    assert [e.step.name for e in saga.required()] == ["reservation"]


def test_monitor_a_redelivered_event_does_not_move_a_deadline():
    """The first arrival of an event counts: its redelivery later leaves the deadline where it was."""
    saga = saga_after(("OrderConfirmed", 0), ("PaymentCompleted", 10))
    saga.record("PaymentCompleted", at(25))
    assert watched(saga) == ("reservation", at(10 + 30))


@pytest.mark.parametrize("seed", range(25))
def test_monitor_happy_path_in_any_order_completes(seed):
    """Shuffled arrival (events travel on several topics) still ends COMPLETED."""
    events = HAPPY_PATH.copy()
    random.Random(seed).shuffle(events)
    saga = arriving(events)
    assert saga.status == SagaStatus.COMPLETED
    assert saga.watch() is None


@pytest.mark.parametrize("events", list(permutations(["OrderConfirmed", "PaymentCompleted", "InventoryReserved"])))
def test_monitor_an_unfinished_saga_in_any_order_is_running_and_waits_for_the_same_steps(events):
    """Whatever the order, the same events leave the saga RUNNING and expecting the same steps."""
    saga = arriving(events)
    assert saga.status == SagaStatus.RUNNING
    assert set(pending(saga)) == {"shipment", "points"}


COMPENSATED_SETS = {
    "payment declined": ["OrderConfirmed", "PaymentFailed", "OrderCancelled"],
    "out of stock": ["OrderConfirmed", "PaymentCompleted", "PointsAwarded", "InventoryUnavailable", "OrderCancelled", "PaymentRefunded", "PointsReversed"],
    "cancelled while paying": ["OrderConfirmed", "OrderCancelled", "PaymentCompleted", "FulfillmentCancelled", "PaymentRefunded", "PointsAwarded", "PointsReversed"],
}


@pytest.mark.parametrize("path", COMPENSATED_SETS)
def test_monitor_a_rolled_back_saga_in_any_order_is_compensated(path):
    """Every arrival order of a complete way back (all permutations, or 300 seeded shuffles) ends COMPENSATED."""
    events = COMPENSATED_SETS[path]
    orders = permutations(events) if len(events) <= 4 else (random.Random(i).sample(events, len(events)) for i in range(300))
    for order in orders:
        saga = arriving(order)
        assert saga.status == SagaStatus.COMPENSATED, order
        assert saga.watch() is None, order


@pytest.mark.parametrize("events", list(permutations(["OrderConfirmed", "PaymentCompleted", "OrderCancelled"])))
def test_monitor_a_saga_rolling_back_is_compensating_whatever_the_arrival_order(events):
    """OrderConfirmed, PaymentCompleted and OrderCancelled mean a refund and a release are owed, in any order
    (OrderCancelled first happens when OrderConfirmed is redriven from the dead letters)."""
    saga = arriving(events)
    assert saga.status == SagaStatus.COMPENSATING
    assert set(pending(saga)) == {"refund", "release"}


# --- the way back ----------------------------------------------------------------------


def test_monitor_declined_payment_is_compensated_once_cancelled():
    """PaymentFailed makes the cancellation due; OrderCancelled then ends the saga COMPENSATED (nothing to undo)."""
    saga = saga_after(("OrderConfirmed", 0), ("PaymentFailed", 10))
    assert saga.status == SagaStatus.RUNNING
    assert pending(saga) == {"cancellation": at(10 + 15)}
    saga.record("OrderCancelled", at(20))
    assert saga.status == SagaStatus.COMPENSATED
    assert pending(saga) == {}
    assert saga.watch() is None


def test_monitor_cancelled_while_paying_is_compensated_by_the_failed_payment():
    """Cancelled before the payment's result: COMPENSATING until the payment stops (PaymentFailed)."""
    saga = saga_after(("OrderConfirmed", 0), ("OrderCancelled", 10))
    assert saga.status == SagaStatus.COMPENSATING
    assert pending(saga) == {"refund": at(10 + 120)}  # from the later of OrderConfirmed and OrderCancelled
    assert not saga.compensable()
    saga.record("PaymentFailed", at(20))
    assert saga.status == SagaStatus.COMPENSATED


def test_monitor_cancelled_while_paying_then_paid_needs_refund_release_and_points_back():
    """Cancelled, then paid after all: the refund, the release and (after the refund) the points reversal are owed."""
    saga = saga_after(("OrderConfirmed", 0), ("OrderCancelled", 10), ("PaymentCompleted", 20))
    assert saga.status == SagaStatus.COMPENSATING
    # The release follows PaymentCompleted and OrderCancelled: it is due after the later of the two.
    assert pending(saga) == {"release": at(20 + 25), "refund": at(10 + 120)}
    saga.record("PaymentRefunded", at(30))
    assert saga.status == SagaStatus.COMPENSATING
    assert pending(saga) == {"release": at(20 + 25), "points_reversal": at(30 + 35)}
    saga.record("FulfillmentCancelled", at(40))
    assert saga.status == SagaStatus.COMPENSATING
    saga.record("PointsReversed", at(50))
    assert saga.status == SagaStatus.COMPENSATED


def test_monitor_out_of_stock_after_payment_is_refunded_and_points_reversed():
    """InventoryUnavailable -> cancellation due -> refund due -> points reversal due -> COMPENSATED."""
    saga = saga_after(("OrderConfirmed", 0), ("PaymentCompleted", 10), ("PointsAwarded", 12), ("InventoryUnavailable", 20))
    assert saga.status == SagaStatus.RUNNING
    assert pending(saga) == {"cancellation": at(20 + 15)}
    saga.record("OrderCancelled", at(30))
    assert saga.status == SagaStatus.COMPENSATING
    # Nothing was reserved: InventoryUnavailable already settles the release.
    assert pending(saga) == {"refund": at(30 + 120)}
    saga.record("PaymentRefunded", at(40))
    assert saga.status == SagaStatus.COMPENSATING
    assert pending(saga) == {"points_reversal": at(40 + 35)}
    saga.record("PointsReversed", at(50))
    assert saga.status == SagaStatus.COMPENSATED
    assert saga.watch() is None


def test_monitor_cancellation_is_expected_once_from_its_earliest_row():
    """Two reasons to cancel give one expected cancellation, due after the earlier of them."""
    saga = saga_after(("OrderConfirmed", 0), ("PaymentCompleted", 10), ("InventoryUnavailable", 20), ("CompensationRequested", 28))
    assert [e.step.name for e in saga.expected()].count("cancellation") == 1
    assert pending(saga)["cancellation"] == at(20 + 15)


@pytest.mark.parametrize(
    "before, event",
    [
        ([("OrderConfirmed", 0), ("OrderCancelled", 10)], "PaymentFailed"),
        ([("OrderConfirmed", 0), ("PaymentCompleted", 5), ("OrderCancelled", 10), ("PaymentRefunded", 12), ("PointsReversed", 14)], "InventoryUnavailable"),
    ],
    ids=["PaymentFailed settles the refund", "InventoryUnavailable settles the release"],
)
def test_monitor_an_event_that_settles_a_compensation_is_not_late(before, event):
    """An event that completes a step of the way back changes the saga, so it is not reported late."""
    saga = saga_after(*before)
    assert saga.status == SagaStatus.COMPENSATING
    late = saga.record(event, at(20))
    assert saga.status == SagaStatus.COMPENSATED  # it did change the saga...
    assert late is False  # ...so it must not be recorded as "late: changes nothing"


def test_monitor_a_payment_completed_after_the_cancellation_is_not_late():
    """A payment that completes after the cancellation (cancelled while paying) adds the release: it changes the saga, so it is not late."""
    saga = saga_after(("OrderConfirmed", 0), ("OrderCancelled", 10))
    assert set(pending(saga)) == {"refund"}
    late = saga.record("PaymentCompleted", at(20))
    assert set(pending(saga)) == {"refund", "release"}  # it did change the saga...
    assert late is False  # ...so it must not be recorded as "late: changes nothing"


def test_monitor_a_step_forward_after_the_cancellation_is_late():
    """A forward event that changes nothing once the saga turned back (the reservation, say) is reported late."""
    saga = saga_after(("OrderConfirmed", 0), ("PaymentCompleted", 5), ("OrderCancelled", 10))
    before = pending(saga)
    assert saga.record("InventoryReserved", at(20)) is True
    assert pending(saga) == before
    assert saga.status == SagaStatus.COMPENSATING


def test_monitor_an_order_rejected_while_priced_is_compensated_at_once():
    """OrderCancelled without OrderConfirmed (rejected while being priced): nothing to undo, COMPENSATED."""
    saga = saga_after(("OrderCancelled", 0))
    assert saga.status == SagaStatus.COMPENSATED
    assert pending(saga) == {}
    assert saga.watch() is None


def test_monitor_a_late_order_confirmed_reopens_a_saga_cancelled_before_its_start():
    """OrderConfirmed arriving after the cancellation (redriven out of order) opens the saga again: the refund is owed."""
    saga = saga_after(("OrderCancelled", 0))
    assert saga.record("OrderConfirmed", at(30)) is False  # not late: it changes the saga
    assert saga.status == SagaStatus.COMPENSATING
    assert pending(saga) == {"refund": at(30 + 120)}
    saga.record("PaymentFailed", at(40))
    assert saga.status == SagaStatus.COMPENSATED


def test_monitor_a_redelivered_order_confirmed_does_not_reopen_a_compensated_saga():
    """Only a first OrderConfirmed reopens: a redelivery to a saga compensated after its start is late and changes nothing."""
    saga = saga_after(("OrderConfirmed", 0), ("PaymentFailed", 10), ("OrderCancelled", 20))
    assert saga.status == SagaStatus.COMPENSATED
    assert saga.record("OrderConfirmed", at(30)) is True
    assert saga.status == SagaStatus.COMPENSATED
    assert saga.watch() is None


def test_monitor_a_completed_saga_stays_completed():
    """Ended is ended: events after OrderCompleted are late and leave it COMPLETED."""
    saga = arriving(HAPPY_PATH)
    for second, event in enumerate(["OrderCancelled", "PaymentRefunded", "OrderConfirmed"], start=100):
        assert saga.record(event, at(second)) is True, event
        assert saga.status == SagaStatus.COMPLETED, event
    assert saga.watch() is None


# --- a silent context: deadlines, STUCK and compensation ---------------------------------


def test_monitor_silent_fulfillment_gets_stuck_then_compensated():
    """No reservation in time: STUCK and compensable; CompensationRequested and the way back end COMPENSATED."""
    saga = saga_after(("OrderConfirmed", 0), ("PaymentCompleted", 10), ("PointsAwarded", 12))
    reservation_due = at(10 + 30)
    assert watched(saga) == ("reservation", reservation_due)
    assert saga.overdue(reservation_due - timedelta(microseconds=1)) is None
    overdue = saga.overdue(reservation_due)
    assert overdue is not None and overdue.step.name == "reservation" and overdue.deadline == reservation_due

    saga.mark_timed_out("reservation")
    assert saga.status == SagaStatus.STUCK
    assert saga.stuck_step == "reservation"
    assert saga.compensable()
    assert saga.watch() is None  # nothing else to time

    saga.record("CompensationRequested", at(45))
    assert saga.status == SagaStatus.STUCK  # still no reservation, and not cancelled yet
    assert not saga.compensable()  # asked once: never twice
    assert watched(saga) == ("cancellation", at(45 + 15))

    saga.record("OrderCancelled", at(50))
    assert saga.status == SagaStatus.COMPENSATING
    assert saga.stuck_step is None
    assert pending(saga) == {"release": at(50 + 25), "refund": at(50 + 120)}

    saga.record("PaymentRefunded", at(60))
    assert pending(saga) == {"release": at(50 + 25), "points_reversal": at(60 + 35)}
    saga.record("PointsReversed", at(70))
    assert saga.status == SagaStatus.COMPENSATING
    saga.record("FulfillmentCancelled", at(80))
    assert saga.status == SagaStatus.COMPENSATED

    # The reservation finally arrives: recorded as late, and nothing changes.
    assert saga.record("InventoryReserved", at(90)) is True
    assert saga.status == SagaStatus.COMPENSATED
    assert saga.watch() is None
    assert pending(saga) == {}


def test_monitor_a_late_reservation_before_cancellation_moves_a_stuck_saga_on():
    """STUCK is not final: the missing event arriving late makes the saga RUNNING again."""
    saga = saga_after(("OrderConfirmed", 0), ("PaymentCompleted", 10))
    saga.mark_timed_out("reservation")
    assert saga.status == SagaStatus.STUCK
    assert saga.record("InventoryReserved", at(60)) is False
    assert saga.status == SagaStatus.RUNNING
    assert watched(saga) == ("shipment", at(60 + 40))


def test_monitor_past_shipment_scheduled_the_saga_is_not_compensable():
    """Compensation may be asked until ShipmentScheduled is seen, never after."""
    saga = saga_after(("OrderConfirmed", 0), ("PaymentCompleted", 10), ("InventoryReserved", 20))
    assert saga.compensable() and not saga.past_pivot
    saga.record("ShipmentScheduled", at(30))
    assert saga.past_pivot
    assert not saga.compensable()


@pytest.mark.parametrize("step, last_event", [("dispatch", "ShipmentScheduled"), ("completion", "ShipmentDispatched")])
def test_monitor_a_timeout_past_the_pivot_stays_stuck_until_the_event_arrives(step, last_event):
    """Past the pivot a timeout leaves the saga STUCK (no compensation) until the late events complete it."""
    events = HAPPY_PATH[: HAPPY_PATH.index(last_event) + 1]
    saga = saga_after(*((event, 10 * i) for i, event in enumerate(events)))
    overdue = saga.overdue(at(10_000))
    assert overdue is not None and overdue.step.name == step
    saga.mark_timed_out(step)
    assert saga.status == SagaStatus.STUCK
    assert not saga.compensable()

    # Time passes, unrelated events arrive: still STUCK, nothing fires again.
    saga.record("TierChanged", at(10_001))
    assert saga.overdue(at(100_000)) is None
    assert saga.watch() is None
    assert saga.status == SagaStatus.STUCK
    assert saga.stuck_step == step

    for event in HAPPY_PATH[HAPPY_PATH.index(last_event) + 1 :]:
        assert saga.record(event, at(100_001)) is False  # STUCK is not ended: not late
    assert saga.status == SagaStatus.COMPLETED


def test_monitor_a_timed_out_step_fires_once():
    """`overdue` skips a step already declared timed out, however late it gets."""
    saga = saga_after(("OrderConfirmed", 0))
    assert saga.overdue(at(300)).step.name == "payment"
    saga.mark_timed_out("payment")
    for later in (300, 301, 3_600, 86_400):
        assert saga.overdue(at(later)) is None
    assert saga.status == SagaStatus.STUCK


def test_monitor_two_timed_out_compensation_steps_do_not_flip_flop():
    """Two overdue steps of the way back fire one after the other, once each; the saga then stays STUCK on the first."""
    saga = saga_after(("OrderConfirmed", 0), ("PaymentCompleted", 10), ("OrderCancelled", 20))
    late = at(10_000)
    fired = []
    while (overdue := saga.overdue(late)) is not None:
        fired.append(overdue.step.name)
        saga.mark_timed_out(overdue.step.name)
        assert len(fired) <= 2, fired
    assert fired == ["release", "refund"]  # the earliest deadline first
    for _ in range(3):  # asking again changes nothing
        assert saga.overdue(late) is None
        assert saga.watch() is None
        assert saga.status == SagaStatus.STUCK
        assert saga.stuck_step == "release"

    saga.record("FulfillmentCancelled", at(10_001))
    assert (saga.status, saga.stuck_step) == (SagaStatus.STUCK, "refund")
    saga.record("PaymentRefunded", at(10_002))
    assert saga.status == SagaStatus.COMPENSATING
    assert watched(saga) == ("points_reversal", at(10_002 + 35))


# --- a compensation refused for good (issue 18) ------------------------------------------------


def test_monitor_a_refund_refused_for_good_is_compensation_failed_until_recorded_by_hand():
    """PaymentRefundFailed: the saga is COMPENSATION_FAILED at once (not after the refund's
    deadline), still expects the refund, and says what the operator can do; the refund
    recorded by hand (PaymentRefunded) moves it on, and it ends COMPENSATED."""
    saga = saga_after(("OrderConfirmed", 0), ("PaymentCompleted", 10), ("PointsAwarded", 12), ("InventoryUnavailable", 20))
    saga.record("OrderCancelled", at(30))
    late = saga.record("PaymentRefundFailed", at(31))

    assert not late
    assert saga.status == SagaStatus.COMPENSATION_FAILED
    assert saga.failed_step == "refund"
    assert pending(saga) == {"refund": at(30 + 120)}
    # The refund's deadline still fires once (an alert), and the saga stays the operator's.
    overdue = saga.overdue(at(30 + 120))
    assert overdue is not None and overdue.step.name == "refund"
    actions = saga.suggested_actions(overdue, compensating=False)
    assert any("refunded by hand" in action for action in actions)
    saga.mark_timed_out("refund")
    assert saga.status == SagaStatus.COMPENSATION_FAILED

    saga.record("PaymentRefunded", at(400))
    assert saga.status == SagaStatus.COMPENSATING
    assert saga.failed_step is None
    saga.record("PointsReversed", at(401))
    assert saga.status == SagaStatus.COMPENSATED


def test_monitor_only_the_refund_step_fails_with_payment_refund_failed():
    failing = {step.name: step.fails_with for step in ORDER_SAGA.steps if step.fails_with}
    assert failing == {"refund": ("PaymentRefundFailed",)}
    assert all(step.compensation for step in ORDER_SAGA.steps if step.fails_with)
