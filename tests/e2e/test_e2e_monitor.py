"""The saga monitor from the outside: an order's timeline, read against the events on Kafka; a
silent service before the pivot (the saga times out and is compensated) and after it (the saga
is STUCK for an operator, nothing is refunded); a consumer that gives up on an event (a dead
letter, redriven once its cause is fixed) and a message nobody can read (a poison message).

Everything goes through the gateway's public HTTP API, plus the events read back from Kafka. A
context is silenced, or made to fail, through the admin's consumer controls: they are global to
the stack, so every test that sets them takes the `consumer_controls` fixture, which restores
every context's consumer before and after it.

The saga's deadlines are the stack's (`make test` sets SAGA_DEADLINE_<STEP> for the stack and
for this suite alike; the defaults here are the Makefile's TEST_SAGA_DEADLINES)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from concerto_contracts import Envelope, Topics, decode
from concerto_runtime.testing import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

APPROVED = "tok_visa"
RESERVATION_DEADLINE = float(os.environ.get("SAGA_DEADLINE_RESERVATION", "20"))
COMPLETION_DEADLINE = float(os.environ.get("SAGA_DEADLINE_COMPLETION", "20"))
DISPATCH_DEADLINE = float(os.environ.get("SAGA_DEADLINE_DISPATCH", "20"))
# How much later than its deadline a saga may be declared STUCK and its alert reach Kafka: the
# SagaWatch timer, the monitor's outbox relay and the broker, on a busy two-core machine.
PIPELINE_MARGIN = 45.0
# How long to wait for something that takes a few seconds on a quiet machine.
SETTLE = 60.0

HAPPY_PATH = ("OrderConfirmed", "PaymentCompleted", "InventoryReserved", "ShipmentScheduled", "ShipmentDispatched", "OrderCompleted")
# The consumer groups that read order.events.v1 (each context's group is <context>-service).
ORDER_TOPIC_READERS = {"payment-service", "fulfillment-service", "monitor-service"}


def types_of(records: Iterable) -> list[str]:
    return [record.type_name for record in records]


def envelope_of(records: list, name: str) -> Envelope:
    """The envelope of the one event called `name` among these records."""
    found = [decode(r.raw_headers, r.key, r.value) for r in records if r.type_name == name]
    assert len(found) == 1, f"expected one {name}, found {len(found)} in {types_of(records)}"
    return found[0]


def at(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def trace_id_of(envelope: Envelope) -> str | None:
    parts = (envelope.traceparent or "").split("-")
    return parts[1] if len(parts) == 4 else None


def charges_for(ledgers: dict[str, dict[str, Any]], order_id: str) -> list[tuple[str, dict[str, Any]]]:
    """The order's charges in both gateways' books: its charge key is its payment id."""
    return [(name, c) for name, ledger in ledgers.items() for c in ledger["charges"] if c["key"] == f"pay-{order_id}"]


def refunds_for(ledgers: dict[str, dict[str, Any]], order_id: str) -> list[tuple[str, dict[str, Any]]]:
    """The refunds, in both books, of the order's charges."""
    charged = {(name, c["reference"]) for name, c in charges_for(ledgers, order_id)}
    return [(name, r) for name, ledger in ledgers.items() for r in ledger["refunds"] if (name, r["charge_reference"]) in charged]


def of_order(account: dict[str, Any], order_id: str, reason: str | None = None) -> list[dict[str, Any]]:
    return [e for e in account["history"] if e["order_id"] == order_id and (reason is None or e["reason"] == reason)]


async def timeline_where(api, order_id: str, condition, what: str, timeout: float = SETTLE) -> dict[str, Any]:
    """Polls the order's timeline until `condition(timeline)` holds."""
    last: dict[str, Any] = {}

    async def probe() -> dict[str, Any] | None:
        timeline = await api.timeline(order_id)
        last["timeline"] = timeline
        return timeline if timeline and condition(timeline) else None

    try:
        return await eventually(probe, timeout=timeout, interval=0.5, what=what)
    except AssertionError:
        raise AssertionError(f"timed out after {timeout}s waiting for {what}; the timeline: {last.get('timeline')}") from None


async def saga_in(api, order_id: str, status: str) -> dict[str, Any]:
    return await timeline_where(api, order_id, lambda t: t["status"] == status, f"the saga of {order_id} to be {status}")


def event_types(timeline: dict[str, Any]) -> list[str]:
    return [e["type"] for e in timeline["events"]]


# --- 1. the timeline ----------------------------------------------------------------------


async def test_a_completed_orders_timeline_is_its_events_on_kafka_in_causal_order(api, events, anonymous):
    product = await api.product(prefer="CON-SCORE-B5")
    placed = await api.place(api.body(product["sku"], token=APPROVED))
    order = await api.terminal(placed.order_id)
    assert order["status"] == "COMPLETED", order

    await saga_in(api, placed.order_id, "COMPLETED")

    # The order's events as the contexts published them. A stock level shares the order's
    # correlation id but is keyed by its sku: it is about the sku, not the order.
    key = placed.order_id.encode()

    def of_this_order(record) -> bool:
        return record.key == key or record.header("ce_correlationid") == placed.correlation_id

    async def on_kafka() -> dict[str, Envelope]:
        records = await events.collect(
            of_this_order,
            lambda found: {"OrderCompleted", "PointsAwarded"} <= set(types_of(found)),
            timeout=SETTLE,
            what=f"OrderCompleted and PointsAwarded of {placed.order_id}",
        )
        envelopes = [decode(r.raw_headers, r.key, r.value) for r in records if r.type_name != "StockLevelChanged"]
        by_id = {e.id: e for e in envelopes}
        assert len(by_id) == len(envelopes), f"an event id twice on Kafka: {[(e.type, e.id) for e in envelopes]}"
        return by_id

    published = await on_kafka()

    # The monitor may still be catching up (points are awarded beside fulfillment): wait until
    # it lists what is on Kafka. Should it list an event not seen yet, read Kafka again.
    last: dict[str, Any] = {}

    async def complete() -> dict[str, Any] | None:
        timeline = await api.timeline(placed.order_id)
        last["timeline"] = timeline
        listed = {e["event_id"] for e in timeline["events"]}
        if listed - set(published):
            published.update(await on_kafka())
        return timeline if listed == set(published) else None

    try:
        timeline = await eventually(complete, timeout=SETTLE, interval=0.5, what="the timeline to list the order's events")
    except AssertionError:
        raise AssertionError(
            f"the timeline never listed exactly the order's events on Kafka: on Kafka "
            f"{sorted((e.type, e.id) for e in published.values())}; timeline {last.get('timeline')}"
        ) from None

    listed = timeline["events"]
    assert len(listed) == len(published), f"an event listed twice: {[(e['type'], e['event_id']) for e in listed]}"
    assert timeline["order_id"] == placed.order_id
    assert timeline["correlation_id"] == placed.correlation_id
    assert (timeline["status"], timeline["stuck_step"], timeline["next_expected"]) == ("COMPLETED", None, None), timeline
    assert timeline["expected"] == [], timeline
    assert timeline["compensable"] is False, f"a completed saga is past the pivot: {timeline}"
    for name in (*HAPPY_PATH, "PointsAwarded"):
        assert name in event_types(timeline), f"no {name} on the timeline: {event_types(timeline)}"

    # Each one as it was published.
    completed_at = at(next(e["received_at"] for e in listed if e["type"] == "OrderCompleted"))
    for event in listed:
        sent = published[event["event_id"]]
        assert event["type"] == type(sent.event).__name__, (event, sent)
        assert event["source"] == sent.source, (event, sent)
        assert at(event["time"]) == sent.time, (event, sent)
        assert event["causation_id"] == sent.causation_id, (event, sent)
        assert event["trace_id"] and event["trace_id"] == trace_id_of(sent), (event, sent.traceparent)
        assert at(event["received_at"]) >= sent.time - timedelta(seconds=1), f"received before it was published: {event}"
        # Nothing is late in a saga that went well, unless the points (optional, awarded beside
        # fulfillment) reached the monitor after OrderCompleted: then they are, and say so.
        late = event["type"] in ("PointsAwarded", "TierChanged") and at(event["received_at"]) > completed_at
        assert event["late"] is late, f"late should be {late} for {event}; OrderCompleted received at {completed_at}"
    assert len({event["trace_id"] for event in listed}) == 1, f"one trace for the whole saga: {listed}"

    # Causal order: every event comes after the event that caused it.
    position = {event["event_id"]: index for index, event in enumerate(listed)}
    for index, event in enumerate(listed):
        cause = event["causation_id"]
        if cause in position:
            assert position[cause] < index, f"{event['type']} is listed before its cause: {[e['type'] for e in listed]}"
    assert listed[0]["type"] == "OrderConfirmed", event_types(timeline)

    assert f"order-{placed.order_id}" in timeline["temporal_workflows"], timeline["temporal_workflows"]
    assert f"fulfillment-{placed.order_id}" in timeline["temporal_workflows"], timeline["temporal_workflows"]

    # Unknown orders, and clients without a key.
    api.problem(await api.timeline_response(api.unique("no-such-order")), 404)
    api.problem(await anonymous.get(f"/api/v1/orders/{placed.order_id}/timeline"), 401)


# --- 2. a silent service before the pivot -----------------------------------------------


async def test_a_silent_service_before_the_pivot_times_out_and_the_saga_is_compensated(api, events, consumer_controls):
    await consumer_controls.set("fulfillment", paused=True)
    product = await api.product(prefer="CON-TUNER")
    placed = await api.place(api.body(product["sku"], token=APPROVED))
    key = placed.order_id.encode()

    # Paid, then nothing from fulfillment: the reservation's deadline passes, the monitor says
    # so (SagaTimedOut) and asks the order context to roll back (CompensationRequested).
    records = await events.collect(
        lambda record: record.key == key,
        lambda found: {"SagaTimedOut", "CompensationRequested"} <= set(types_of(found)),
        timeout=RESERVATION_DEADLINE + PIPELINE_MARGIN + SETTLE,
        what=f"the saga of {placed.order_id} to time out at the reservation",
    )
    assert not {"InventoryReserved", "InventoryUnavailable", "ShipmentScheduled"} & set(types_of(records)), types_of(records)
    paid = envelope_of(records, "PaymentCompleted")
    timed_out = envelope_of(records, "SagaTimedOut")
    compensation = envelope_of(records, "CompensationRequested")
    alert = json.loads(next(r.value for r in records if r.type_name == "SagaTimedOut"))
    assert alert["order_id"] == placed.order_id, alert
    assert alert["step"] == "reservation", alert
    assert alert["compensation_requested"] is True, alert
    assert set(alert["missing_events"]) == {"InventoryReserved", "InventoryUnavailable"}, alert
    assert alert["suggested_actions"] and all(isinstance(a, str) and a for a in alert["suggested_actions"]), alert
    assert at(alert["deadline"]) - at(alert["waiting_since"]) == timedelta(seconds=RESERVATION_DEADLINE), (
        f"the reservation's deadline is not the stack's {RESERVATION_DEADLINE:g}s "
        f"(SAGA_DEADLINE_RESERVATION must match the stack's): {alert}"
    )
    # Not before the deadline, and not long after it.
    waited = (timed_out.time - paid.time).total_seconds()
    assert waited >= RESERVATION_DEADLINE, f"timed out {waited:.1f}s after the payment, before the {RESERVATION_DEADLINE:g}s deadline"
    assert waited <= RESERVATION_DEADLINE + PIPELINE_MARGIN, f"timed out only {waited:.1f}s after the payment"
    assert timed_out.time >= at(alert["deadline"]), (timed_out.time, alert)
    assert timed_out.source == compensation.source == "/concerto/monitor", (timed_out.source, compensation.source)
    assert timed_out.correlation_id == compensation.correlation_id == placed.correlation_id
    assert timed_out.causation_id == paid.id, "the alert follows the event after which the missing one was expected"
    requested = json.loads(next(r.value for r in records if r.type_name == "CompensationRequested"))
    assert (requested["reason"], requested["step"]) == ("saga_timeout", "reservation"), requested

    # The order context rolls the order back.
    order = await api.terminal(placed.order_id)
    assert (order["status"], order["cancellation_reason"]) == ("CANCELLED", "saga_timeout"), order
    assert order["shipment"] is None, order

    # Payment refunds the charge, once and in full.
    async def refunded() -> dict[str, dict[str, Any]] | None:
        ledgers = await api.ledgers()
        return ledgers if any(r["status"] == "succeeded" for _, r in refunds_for(ledgers, placed.order_id)) else None

    ledgers = await eventually(refunded, timeout=SETTLE, interval=1.0, what=f"the charge of {placed.order_id} to be refunded")
    charges = [(name, c) for name, c in charges_for(ledgers, placed.order_id) if c["status"] == "succeeded"]
    assert len(charges) == 1, f"one succeeded charge for the order: {charges_for(ledgers, placed.order_id)}"
    (gateway, charge), refunds = charges[0], refunds_for(ledgers, placed.order_id)
    assert len(refunds) == 1, f"exactly one refund for the order: {refunds}"
    name, refund = refunds[0]
    assert name == gateway and refund["charge_reference"] == charge["reference"], (charge, refunds)
    assert (refund["status"], refund["amount"]) == ("succeeded", charge["amount"]), f"not refunded in full: {charge}, {refund}"
    assert charge["amount"] == api.minor_units(order["totals"]["total"]), (charge, order["totals"])

    # Loyalty (not silenced) awarded the points on the payment and takes them back on the refund.
    async def reversed_points() -> dict[str, Any] | None:
        account = await api.loyalty(placed.customer_id)
        return account if of_order(account, placed.order_id, "reversed") and account["points"] == 0 else None

    account = await eventually(reversed_points, timeout=SETTLE, what=f"the points of {placed.customer_id} to be reversed")
    history = of_order(account, placed.order_id)
    assert [e["reason"] for e in history] == ["awarded", "reversed"], account
    awarded, reversed_ = history
    assert awarded["points"] > 0 and reversed_["points"] == -awarded["points"], account
    assert at(awarded["at"]) <= at(reversed_["at"]), account
    assert account["points"] == 0, account

    # Meanwhile the saga waits for fulfillment's part of the way back: releasing what it never
    # reserved. (STUCK there only if this test took longer than the release deadline.)
    timeline = await timeline_where(
        api, placed.order_id, lambda t: {"PaymentRefunded", "PointsReversed"} <= set(event_types(t)), "the refund and the reversal"
    )
    assert timeline["status"] in ("COMPENSATING", "STUCK"), timeline
    assert [e["step"] for e in timeline["expected"]] == ["release"], timeline["expected"]
    assert timeline["compensable"] is False, timeline
    for name in ("SagaTimedOut", "CompensationRequested", "OrderCancelled"):
        assert name in event_types(timeline), f"no {name} on the timeline: {event_types(timeline)}"

    # Fulfillment back: it hears of the payment and of the cancellation, and ships nothing.
    await consumer_controls.set("fulfillment")
    records = await events.collect(
        lambda record: record.key == key,
        lambda found: "FulfillmentCancelled" in types_of(found),
        timeout=SETTLE,
        what=f"fulfillment to settle its part of {placed.order_id}",
    )
    assert "ShipmentDispatched" not in types_of(records), f"a cancelled order was shipped: {types_of(records)}"
    assert types_of(records).count("PaymentRefunded") == 1, types_of(records)
    assert "CompensationRequested" in types_of(records) and "OrderCompleted" not in types_of(records), types_of(records)

    timeline = await saga_in(api, placed.order_id, "COMPENSATED")
    assert "FulfillmentCancelled" in event_types(timeline), event_types(timeline)
    assert "ShipmentDispatched" not in event_types(timeline), event_types(timeline)
    assert timeline["expected"] == [] and timeline["stuck_step"] is None, timeline
    assert (await api.order(placed.order_id))["status"] == "CANCELLED"


# --- 3. a silent service after the pivot -------------------------------------------------


async def test_a_silent_service_after_the_pivot_leaves_the_saga_stuck_and_refunds_nothing(api, events, consumer_controls):
    await consumer_controls.set("order", paused=True)
    product = await api.product(prefer="CON-STAND")
    placed = await api.place(api.body(product["sku"], token=APPROVED))
    key = placed.order_id.encode()

    # Payment and fulfillment go on up to the scheduled shipment, but the order hears nothing of
    # it, so it never says the parcel may leave (OrderReadyToShip, ADR 5): nothing ships. The
    # monitor waits for the dispatch past its deadline, and cannot compensate past the pivot.
    records = await events.collect(
        lambda record: record.key == key,
        lambda found: "SagaTimedOut" in types_of(found),
        timeout=DISPATCH_DEADLINE + PIPELINE_MARGIN + SETTLE,
        what=f"the saga of {placed.order_id} to time out at its dispatch",
    )
    seen = types_of(records)
    for name in HAPPY_PATH[:-2]:
        assert name in seen, f"no {name} for {placed.order_id}: {seen}"
    assert not {"ShipmentDispatched", "CompensationRequested", "PaymentRefunded", "OrderCancelled", "OrderCompleted"} & set(seen), seen
    scheduled, timed_out = envelope_of(records, "ShipmentScheduled"), envelope_of(records, "SagaTimedOut")
    alert = json.loads(next(r.value for r in records if r.type_name == "SagaTimedOut"))
    assert alert["step"] == "dispatch", alert
    assert alert["compensation_requested"] is False, alert
    assert alert["missing_events"] == ["ShipmentDispatched"], alert
    assert alert["suggested_actions"], alert
    waited = (timed_out.time - scheduled.time).total_seconds()
    assert waited >= DISPATCH_DEADLINE, f"timed out {waited:.1f}s after the scheduling, before the {DISPATCH_DEADLINE:g}s deadline"
    assert waited <= DISPATCH_DEADLINE + PIPELINE_MARGIN, f"timed out only {waited:.1f}s after the scheduling"

    # The operator's view: the saga is STUCK at its dispatch.
    async def listed_stuck() -> dict[str, Any] | None:
        page = await api.sagas("STUCK")
        return next((s for s in page["items"] if s["order_id"] == placed.order_id), None)

    stuck = await eventually(listed_stuck, timeout=SETTLE, interval=0.5, what=f"GET /admin/sagas?status=STUCK to list {placed.order_id}")
    assert (stuck["status"], stuck["stuck_step"]) == ("STUCK", "dispatch"), stuck
    assert stuck["correlation_id"] == placed.correlation_id, stuck
    api.problem(await api.http.get("/api/v1/admin/sagas", params={"status": "STUCK"}), 403)  # the customer key
    # The monitor marks the saga STUCK when its timer fires; its own SagaTimedOut reaches the
    # timeline a moment later, through the outbox and Kafka like every event: wait for it.
    timeline = await timeline_where(api, placed.order_id, lambda t: "SagaTimedOut" in event_types(t), "the SagaTimedOut alert")
    assert (timeline["status"], timeline["stuck_step"], timeline["compensable"]) == ("STUCK", "dispatch", False), timeline
    order = await api.order(placed.order_id)
    assert order["status"] == "CONFIRMED", f"the order's consumer is paused, it should not have heard of the payment: {order}"
    ledgers = await api.ledgers()
    assert [c["status"] for _, c in charges_for(ledgers, placed.order_id)] == ["succeeded"], charges_for(ledgers, placed.order_id)
    assert refunds_for(ledgers, placed.order_id) == [], refunds_for(ledgers, placed.order_id)

    # The order context back: it hears everything at once, lets the parcel go, and completes.
    await consumer_controls.set("order")
    order = await api.terminal(placed.order_id, timeout=SETTLE)
    assert order["status"] == "COMPLETED", order
    assert order["shipment"] and order["shipment"]["tracking_number"] == json.loads(
        next(r.value for r in records if r.type_name == "ShipmentScheduled")
    )["tracking_number"], order
    timeline = await saga_in(api, placed.order_id, "COMPLETED")
    assert timeline["stuck_step"] is None and timeline["expected"] == [], timeline
    completed = next(e for e in timeline["events"] if e["type"] == "OrderCompleted")
    assert completed["late"] is False, f"a stuck saga that completes is not late: {completed}"
    assert placed.order_id not in [s["order_id"] for s in (await api.sagas("STUCK"))["items"]], "still listed as STUCK"

    records = await events.collect(
        lambda record: record.key == key,
        lambda found: "OrderCompleted" in types_of(found),
        timeout=SETTLE,
        what=f"OrderCompleted for {placed.order_id}",
    )
    assert not {"CompensationRequested", "PaymentRefunded", "OrderCancelled"} & set(types_of(records)), types_of(records)
    assert types_of(records).count("SagaTimedOut") == 1, types_of(records)
    ledgers = await api.ledgers()
    assert [c["status"] for _, c in charges_for(ledgers, placed.order_id)] == ["succeeded"], charges_for(ledgers, placed.order_id)
    assert refunds_for(ledgers, placed.order_id) == [], f"a shipped order was refunded: {refunds_for(ledgers, placed.order_id)}"


# --- 4. dead letters and redrive ----------------------------------------------------------


async def test_a_dead_letter_is_redriven_once_its_cause_is_fixed(api, events, consumer_controls):
    await consumer_controls.set("loyalty", fail_event_types=["PaymentCompleted"])
    product = await api.product(prefer="CON-METRONOME")
    placed = await api.place(api.body(product["sku"], token=APPROVED))

    # Loyalty is not on the order's critical path: the order completes without it.
    order = await api.terminal(placed.order_id)
    assert order["status"] == "COMPLETED", order

    async def dead_lettered() -> list[dict[str, Any]]:
        return await api.dead_letters_where(order_id=placed.order_id)

    letters = await eventually(dead_lettered, timeout=SETTLE, interval=0.5, what=f"a dead letter for {placed.order_id}")
    assert len(letters) == 1, f"one dead letter for {placed.order_id}: {letters}"
    letter = letters[0]
    assert letter["topic"] == Topics.PAYMENT, letter
    assert letter["consumer"] == "loyalty-service", letter
    assert letter["reason"] == "rejected", letter
    assert letter["event_type"] == "concerto.payment.PaymentCompleted.v1", letter
    assert "PaymentCompleted" in letter["error"], letter
    assert letter["event_id"] and letter["dead_lettered_at"] and letter["redriven_at"] is None, letter
    account = await api.loyalty(placed.customer_id)
    assert (account["points"], of_order(account, placed.order_id)) == (0, []), account

    # The cause fixed, the dead letter goes back on its topic: loyalty applies it, once.
    await consumer_controls.set("loyalty")
    redriven = await api.redrive(letter["id"])
    assert redriven.status_code == 200, f"redrive: {redriven.status_code} {redriven.text}"
    body = redriven.json()
    assert body["id"] == letter["id"] and body["redriven_at"], body
    assert at(body["redriven_at"]) >= at(letter["dead_lettered_at"]), body

    async def awarded() -> dict[str, Any] | None:
        account = await api.loyalty(placed.customer_id)
        return account if account["points"] > 0 else None

    account = await eventually(awarded, timeout=SETTLE, what=f"the points of {placed.customer_id} after the redrive")
    [entry] = of_order(account, placed.order_id, "awarded")
    assert account["points"] == entry["points"] > 0, account

    # On Kafka: the same event (same id) twice on its topic, and one PointsAwarded, once every
    # context has had the redriven copy (the others had applied it already and ignore it).
    key = placed.order_id.encode()
    records = await events.collect(
        lambda record: record.key == key,
        lambda found: types_of(found).count("PaymentCompleted") == 2 and "PointsAwarded" in types_of(found),
        timeout=SETTLE,
        what=f"the redriven PaymentCompleted and PointsAwarded of {placed.order_id}",
    )
    payments = [r for r in records if r.type_name == "PaymentCompleted"]
    assert {r.header("ce_id") for r in payments} == {letter["event_id"]}, payments
    assert types_of(records).count("PointsAwarded") == 1, types_of(records)

    again = await api.redrive(letter["id"])
    api.problem(again, 409)
    api.problem(await api.redrive(2**52), 404)
    # The dead letters are the admin's: the customer key may neither list nor redrive them.
    api.problem(await api.http.get("/api/v1/admin/dead-letters"), 403)
    api.problem(await api.http.post(f"/api/v1/admin/dead-letters/{letter['id']}/redrive"), 403)

    # Nothing else changed: one charge, not refunded; the order still COMPLETED; the points once.
    ledgers = await api.ledgers()
    assert [c["status"] for _, c in charges_for(ledgers, placed.order_id)] == ["succeeded"], charges_for(ledgers, placed.order_id)
    assert refunds_for(ledgers, placed.order_id) == [], refunds_for(ledgers, placed.order_id)
    assert (await api.order(placed.order_id))["status"] == "COMPLETED"
    account = await api.loyalty(placed.customer_id)
    assert len(of_order(account, placed.order_id)) == 1 and account["points"] == entry["points"], account

    # The monitor: the payment once on the timeline (the copy is the same event), and the points,
    # which came after the saga had ended, recorded as late; the saga stays COMPLETED.
    timeline = await timeline_where(
        api, placed.order_id, lambda t: "PointsAwarded" in event_types(t), "the late PointsAwarded on the timeline"
    )
    assert timeline["status"] == "COMPLETED", timeline
    assert event_types(timeline).count("PaymentCompleted") == 1, event_types(timeline)
    [points] = [e for e in timeline["events"] if e["type"] == "PointsAwarded"]
    assert points["late"] is True, f"PointsAwarded reached the monitor after OrderCompleted: {timeline}"

    # No consumer gave up on the copy, nor on what it caused.
    letters = await api.dead_letters_where(order_id=placed.order_id)
    assert [d["id"] for d in letters] == [letter["id"]], f"dead letters of {placed.order_id}: {letters}"
    assert letters[0]["redriven_at"] == body["redriven_at"], letters


# --- 5. a poison message ------------------------------------------------------------------


async def test_a_poison_message_is_dead_lettered_by_every_reader_and_the_consumers_go_on(api, events):
    key = api.unique("poison")
    producer = AIOKafkaProducer(bootstrap_servers=events.bootstrap_servers)
    await producer.start()
    try:
        await producer.send_and_wait(Topics.ORDER, key=key.encode(), value=b"\x00\xffnot a CloudEvent {")
    finally:
        await producer.stop()

    found: dict[str, list[dict[str, Any]]] = {}

    async def every_reader_gave_up() -> bool:
        found.clear()
        for letter in await api.dead_letters_where(order_id=key):
            found.setdefault(letter["consumer"], []).append(letter)
        return set(found) >= ORDER_TOPIC_READERS

    await eventually(every_reader_gave_up, timeout=SETTLE, interval=0.5, what=f"each reader of {Topics.ORDER} to dead-letter {key}")
    assert set(found) == ORDER_TOPIC_READERS, found
    for consumer, letters in found.items():
        assert len(letters) == 1, f"{consumer} dead-lettered it {len(letters)} times: {letters}"
        letter = letters[0]
        assert (letter["topic"], letter["reason"]) == (Topics.ORDER, "undecodable"), letter
        assert letter["event_type"] is None and letter["event_id"] is None and letter["redriven_at"] is None, letter

    # The consumers went on: an order placed afterwards goes all the way.
    product = await api.product(prefer="CON-BATON")
    placed = await api.place(api.body(product["sku"], token=APPROVED))
    order = await api.terminal(placed.order_id)
    assert order["status"] == "COMPLETED", order
    timeline = await saga_in(api, placed.order_id, "COMPLETED")
    assert "OrderConfirmed" in event_types(timeline), event_types(timeline)
