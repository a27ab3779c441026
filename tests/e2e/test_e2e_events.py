"""What the contexts tell each other about one order, read from the real broker: CloudEvents
in Kafka binary mode, one correlation id for the whole saga, causation links between steps,
and no card token or e-mail address on the wire."""

from __future__ import annotations

import pytest

from concerto_contracts import decode

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(90)]

HAPPY_PATH = ["OrderConfirmed", "PaymentCompleted", "InventoryReserved", "ShipmentScheduled", "ShipmentDispatched", "OrderCompleted"]


async def test_an_orders_events_are_cloudevents_sharing_its_correlation_id(api, events):
    product = await api.product(prefer="CON-METRONOME")
    customer_id = api.unique("cust")
    email = f"{customer_id}.secret@example.org"
    token = "tok_visa"
    placed = await api.place(api.body(product["sku"], token=token, customer_id=customer_id, email=email))
    key = placed.order_id.encode()

    records = await events.collect(
        lambda record: record.key == key,
        lambda found: any(r.type_name == "OrderCompleted" for r in found),
        timeout=30,
        what=f"OrderCompleted for order {placed.order_id}",
    )

    envelopes = {}
    for record in records:
        headers = record.headers
        assert headers.get("ce_specversion") == b"1.0", record.raw_headers
        for attribute in ("ce_id", "ce_source", "ce_type"):
            assert headers.get(attribute), f"{record!r} has no {attribute}: {record.raw_headers}"
        assert headers.get("content-type") == b"application/json", record.raw_headers
        envelope = decode(record.raw_headers, record.key, record.value)  # raises if it is not one of ours
        assert envelope.type == record.header("ce_type")
        assert envelope.correlation_id == placed.correlation_id, f"{record!r} is in another correlation"
        assert envelope.event.order_id == placed.order_id, record
        # No secrets or raw PII on the wire, in the headers or the payload.
        for where, raw in [("value", record.value or b"")] + [(f"header {n}", v or b"") for n, v in record.raw_headers]:
            assert token.encode() not in raw, f"the card token travels in the {where} of {record!r}"
            assert email.encode() not in raw, f"the customer's e-mail travels in the {where} of {record!r}"
        envelopes.setdefault(record.type_name, envelope)

    missing = [name for name in HAPPY_PATH if name not in envelopes]
    assert not missing, f"missing {missing}; seen {[r.type_name for r in records]}"
    # Each step follows the one before it.
    times = [envelopes[name].time for name in HAPPY_PATH]
    assert times == sorted(times), list(zip(HAPPY_PATH, times, strict=True))
    # Causation: each reaction names the event it reacted to.
    assert envelopes["PaymentCompleted"].causation_id == envelopes["OrderConfirmed"].id
    assert envelopes["InventoryReserved"].causation_id == envelopes["PaymentCompleted"].id
    assert envelopes["OrderCompleted"].causation_id == envelopes["ShipmentDispatched"].id
    # Tracing across the broker: every event carries a W3C traceparent of one trace.
    trace_ids = {envelope.traceparent.split("-")[1] for envelope in envelopes.values() if envelope.traceparent}
    assert all(envelope.traceparent for envelope in envelopes.values()), "every event needs a traceparent"
    assert len(trace_ids) == 1, trace_ids
    # Event-carried state: what downstream needs, with the e-mail masked.
    confirmed = envelopes["OrderConfirmed"].event
    assert confirmed.order.customer.id == customer_id
    assert confirmed.order.customer.email_masked != email
    assert [item.sku for item in confirmed.order.items] == [product["sku"]]
    paid = envelopes["PaymentCompleted"].event
    assert (paid.card.brand, paid.card.last4) == ("visa", "4242")
    assert paid.amount == confirmed.order.totals.total
    order = await api.order(placed.order_id)
    assert order["status"] == "COMPLETED", order
    assert envelopes["ShipmentDispatched"].event.tracking_number == order["shipment"]["tracking_number"]
