"""The payment integration layer (PaymentGateways, ADR 0006) over real HTTP against the real
simulated PSPs, with faults injected through their admin API: retries, the circuit breaker,
failover only when nothing happened, pinning after an ambiguous outcome, refunds, and every
call recorded in gateway_attempts (a real SQLite file)."""

from __future__ import annotations

import asyncio
import random
import socket
import uuid
from decimal import Decimal

import pytest

from concerto_payment.integration.gateways import Charge, GatewayAmbiguous, Refund
from concerto_payment.integration.layer import NoGatewayAvailable
from concerto_runtime.testing import eventually

# How long an injected timeout or dropped response hangs: longer than the layer's client
# timeout in conftest.py (0.5 s), so the client gives up first.
HANG_SECONDS = 1.5
AMOUNT = Decimal("62.59")
AMOUNT_MINOR = 6259


def new_payment_id() -> str:
    return f"pay-ord-{uuid.uuid4().hex[:12]}"


def charge_for(payment_id: str, token: str = "tok_visa") -> Charge:
    return Charge(key=payment_id, amount=AMOUNT, currency="EUR", token=token)


def status_of(layer, name: str) -> dict:
    (status,) = [gateway for gateway in layer.status() if gateway["name"] == name]
    return status


def seed_failing_first(failures: int, rate: float = 0.5) -> int:
    """A seed for the simulators' fault draws (random.Random(seed), one draw per API call when
    only error_rate is set) under which the first `failures` calls get a 503 and the next does not."""
    for seed in range(100_000):
        draws = random.Random(seed)
        if all(draws.random() < rate for _ in range(failures)) and draws.random() >= rate:
            return seed
    raise AssertionError("no such seed")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- 1. approve, decline -----------------------------------------------------------------------


async def test_payment_integration_approves_through_the_primary(psps, make_layer, attempts):
    cardpay, paynext = psps
    layer = make_layer()
    payment_id = new_payment_id()
    paynext_calls = await paynext.calls()

    charged = await layer.charge(payment_id, charge_for(payment_id))

    assert charged.gateway == "cardpay"
    assert charged.outcome.approved is True
    assert charged.outcome.decline_reason is None
    assert charged.outcome.card is not None and (charged.outcome.card.brand, charged.outcome.card.last4) == ("visa", "4242")
    (booked,) = await cardpay.charges_for(payment_id)
    assert booked["reference"] == charged.outcome.reference
    assert (booked["amount"], booked["currency"], booked["status"]) == (AMOUNT_MINOR, "eur", "succeeded")
    assert await paynext.charges_for(payment_id) == []
    assert await paynext.calls() == paynext_calls
    assert await attempts(payment_id) == [("cardpay", "charge", "approved")]


async def test_payment_integration_decline_is_an_answer_not_retried_nor_counted_by_the_breaker(psps, make_layer, attempts):
    cardpay, paynext = psps
    # A breaker that opens on a single failure: if a decline counted, it would open.
    layer = make_layer(failure_threshold=1)
    payment_id = new_payment_id()
    cardpay_calls, paynext_calls = await cardpay.calls(), await paynext.calls()

    charged = await layer.charge(payment_id, charge_for(payment_id, "tok_chargeDeclined"))

    assert charged.gateway == "cardpay"
    assert charged.outcome.approved is False
    assert charged.outcome.decline_reason == "declined"
    assert await cardpay.calls() == cardpay_calls + 1  # not retried
    (booked,) = await cardpay.charges_for(payment_id)
    assert booked["status"] == "failed"
    assert booked["reference"] == charged.outcome.reference
    assert await paynext.calls() == paynext_calls  # not failed over either
    assert await attempts(payment_id) == [("cardpay", "charge", "declined")]
    status = status_of(layer, "cardpay")
    assert (status["state"], status["consecutive_failures"]) == ("closed", 0)
    assert status["calls"].get("failed", 0) == 0

    # The breaker stayed closed: the next payment still goes to cardpay.
    next_payment = new_payment_id()
    assert (await layer.charge(next_payment, charge_for(next_payment))).gateway == "cardpay"


async def test_payment_integration_insufficient_funds_is_reported_as_such(psps, make_layer):
    cardpay, _ = psps
    layer = make_layer()
    payment_id = new_payment_id()

    charged = await layer.charge(payment_id, charge_for(payment_id, "tok_chargeDeclinedInsufficientFunds"))

    assert (charged.gateway, charged.outcome.approved, charged.outcome.decline_reason) == ("cardpay", False, "insufficient_funds")
    assert len(await cardpay.charges_for(payment_id)) == 1


# --- 2. retries with backoff -----------------------------------------------------------------


async def test_payment_integration_retries_the_primary_with_backoff_until_it_answers(psps, make_layer, attempts):
    cardpay, paynext = psps
    layer = make_layer(tries_per_gateway=3)
    payment_id = new_payment_id()
    # Half the calls fail; with this seed the first two do and the third does not.
    await cardpay.set_faults(error_rate=0.5, seed=seed_failing_first(2))
    cardpay_calls, paynext_calls = await cardpay.calls(), await paynext.calls()

    charged = await layer.charge(payment_id, charge_for(payment_id))

    assert (charged.gateway, charged.outcome.approved) == ("cardpay", True)
    assert await attempts(payment_id) == [
        ("cardpay", "charge", "unavailable"),
        ("cardpay", "charge", "unavailable"),
        ("cardpay", "charge", "approved"),
    ]
    assert await cardpay.calls() == cardpay_calls + 3
    assert (await cardpay.stats())["faults_injected"]["error"] >= 2
    assert len(await cardpay.charges_for(payment_id)) == 1
    assert await paynext.calls() == paynext_calls


# --- 3. the circuit breaker --------------------------------------------------------------------


async def test_payment_integration_breaker_opens_fails_over_half_opens_and_closes(psps, make_layer, attempts):
    cardpay, paynext = psps
    layer = make_layer(failure_threshold=3, recovery_seconds=1.5, tries_per_gateway=1)
    assert [(s["name"], s["state"], s["consecutive_failures"]) for s in layer.status()] == [
        ("cardpay", "closed", 0),
        ("paynext", "closed", 0),
    ]
    await cardpay.set_faults(outage=True)

    # Closed: each failure counts, and each payment fails over to paynext.
    for failures in (1, 2, 3):
        payment_id = new_payment_id()
        charged = await layer.charge(payment_id, charge_for(payment_id))
        assert (charged.gateway, charged.outcome.approved) == ("paynext", True)
        assert await attempts(payment_id) == [("cardpay", "charge", "unavailable"), ("paynext", "charge", "approved")]
        status = status_of(layer, "cardpay")
        assert status["consecutive_failures"] == failures
        assert status["state"] == ("open" if failures == 3 else "closed")

    status = status_of(layer, "cardpay")
    assert status["retry_in_seconds"] > 0
    assert status["calls"] == {"failed": 3}
    assert status_of(layer, "paynext")["state"] == "closed"

    # Open: cardpay is not called at all; the attempt is recorded as circuit_open.
    payment_id = new_payment_id()
    cardpay_calls = await cardpay.calls()
    charged = await layer.charge(payment_id, charge_for(payment_id))
    assert (charged.gateway, charged.outcome.approved) == ("paynext", True)
    assert await cardpay.calls() == cardpay_calls
    assert await attempts(payment_id) == [("cardpay", "charge", "circuit_open"), ("paynext", "charge", "approved")]
    assert status_of(layer, "cardpay")["calls"]["rejected"] == 1

    # Half-open after recovery_seconds; a failed trial opens it again at once.
    await eventually(lambda: _state_is(layer, "cardpay", "half_open"), timeout=5, interval=0.05, what="cardpay half-open")
    payment_id = new_payment_id()
    charged = await layer.charge(payment_id, charge_for(payment_id))
    assert charged.gateway == "paynext"
    assert await cardpay.calls() == cardpay_calls + 1  # exactly one trial call
    assert await attempts(payment_id) == [("cardpay", "charge", "unavailable"), ("paynext", "charge", "approved")]
    assert status_of(layer, "cardpay")["state"] == "open"

    # cardpay recovers; after recovery_seconds the trial call succeeds and closes the circuit.
    await cardpay.clear_faults()
    await eventually(lambda: _state_is(layer, "cardpay", "half_open"), timeout=5, interval=0.05, what="cardpay half-open")
    payment_id = new_payment_id()
    charged = await layer.charge(payment_id, charge_for(payment_id))
    assert (charged.gateway, charged.outcome.approved) == ("cardpay", True)
    assert await attempts(payment_id) == [("cardpay", "charge", "approved")]
    status = status_of(layer, "cardpay")
    assert (status["state"], status["consecutive_failures"], status["retry_in_seconds"]) == ("closed", 0, 0)


async def _state_is(layer, name: str, state: str) -> bool:
    return status_of(layer, name)["state"] == state


# --- 4. failover when nothing happened ---------------------------------------------------------


async def test_payment_integration_primary_outage_fails_over_to_the_secondary(psps, make_layer, attempts):
    cardpay, paynext = psps
    layer = make_layer(tries_per_gateway=3)
    payment_id = new_payment_id()
    await cardpay.set_faults(outage=True)

    charged = await layer.charge(payment_id, charge_for(payment_id))

    assert (charged.gateway, charged.outcome.approved) == ("paynext", True)
    assert await cardpay.charges_for(payment_id) == []
    (booked,) = await paynext.charges_for(payment_id)
    assert booked["reference"] == charged.outcome.reference
    assert (booked["amount"], booked["currency"], booked["status"]) == (AMOUNT_MINOR, "EUR", "succeeded")
    assert await attempts(payment_id) == [("cardpay", "charge", "unavailable")] * 3 + [("paynext", "charge", "approved")]
    assert await layer.gateway_that_may_hold(payment_id) is None


async def test_payment_integration_refused_connection_fails_over_to_the_secondary(psps, make_layer, attempts):
    _, paynext = psps
    layer = make_layer(tries_per_gateway=2, cardpay_url=f"http://127.0.0.1:{free_port()}")
    payment_id = new_payment_id()

    charged = await layer.charge(payment_id, charge_for(payment_id))

    assert (charged.gateway, charged.outcome.approved) == ("paynext", True)
    assert len(await paynext.charges_for(payment_id)) == 1
    assert await attempts(payment_id) == [("cardpay", "charge", "unavailable")] * 2 + [("paynext", "charge", "approved")]


# --- 5, 6. ambiguous outcomes: pinned, looked up, never charged twice ------------------------------


async def test_payment_integration_ambiguous_charge_is_looked_up_and_charged_exactly_once(psps, make_layer, attempts):
    cardpay, paynext = psps
    layer = make_layer(tries_per_gateway=3)
    payment_id = new_payment_id()
    # cardpay carries out every call and then loses the answer: the client times out.
    await cardpay.set_faults(drop_response_rate=1, hang_seconds=HANG_SECONDS)
    paynext_calls = await paynext.calls()

    with pytest.raises((GatewayAmbiguous, NoGatewayAvailable)):
        await layer.charge(payment_id, charge_for(payment_id))

    assert len(await cardpay.charges_for(payment_id)) == 1  # it did charge
    assert await paynext.charges_for(payment_id) == []  # and the payment did not fail over
    assert await paynext.calls() == paynext_calls
    first = await attempts(payment_id)
    assert first[0] == ("cardpay", "charge", "ambiguous")
    # The retries looked the charge up (their answers were lost too) rather than charge again.
    assert first[1:] == [("cardpay", "lookup", "ambiguous")] * 2
    assert (await layer.gateway_that_may_hold(payment_id)).name == "cardpay"

    await cardpay.clear_faults()
    charged = await layer.charge(payment_id, charge_for(payment_id))

    assert (charged.gateway, charged.outcome.approved) == ("cardpay", True)
    (booked,) = await cardpay.charges_for(payment_id)  # exactly ONE charge
    assert booked["reference"] == charged.outcome.reference
    assert await paynext.charges_for(payment_id) == []
    assert (await attempts(payment_id))[len(first):] == [("cardpay", "lookup", "approved")]


async def test_payment_integration_pinned_payment_never_fails_over_while_its_gateway_is_down(psps, make_layer, attempts):
    cardpay, paynext = psps
    layer = make_layer(tries_per_gateway=2)
    payment_id = new_payment_id()
    # cardpay hangs past the client's timeout: the client cannot know that nothing was done.
    await cardpay.set_faults(timeout_rate=1, hang_seconds=HANG_SECONDS)
    paynext_calls = await paynext.calls()

    with pytest.raises((GatewayAmbiguous, NoGatewayAvailable)):
        await layer.charge(payment_id, charge_for(payment_id))
    assert (await attempts(payment_id))[0] == ("cardpay", "charge", "ambiguous")

    # Now cardpay is down outright, paynext healthy: the payment stays with cardpay.
    await cardpay.set_faults(outage=True)
    with pytest.raises((NoGatewayAvailable, GatewayAmbiguous)) as raised:
        await layer.charge(payment_id, charge_for(payment_id))
    if isinstance(raised.value, NoGatewayAvailable):
        assert "may already hold" in str(raised.value)
    assert await paynext.calls() == paynext_calls
    assert await paynext.charges_for(payment_id) == []
    assert all(gateway == "cardpay" for gateway, _, _ in await attempts(payment_id))
    assert (await attempts(payment_id))[-2:] == [("cardpay", "lookup", "unavailable")] * 2

    # cardpay is back: the lookup finds nothing (the timed-out call did nothing), so the
    # payment is charged there, with the same key, once.
    await cardpay.clear_faults()
    charged = await layer.charge(payment_id, charge_for(payment_id))
    assert (charged.gateway, charged.outcome.approved) == ("cardpay", True)
    assert (await attempts(payment_id))[-2:] == [("cardpay", "lookup", "not_found"), ("cardpay", "charge", "approved")]
    assert len(await cardpay.charges_for(payment_id)) == 1
    assert await paynext.charges_for(payment_id) == []
    assert await paynext.calls() == paynext_calls


async def test_payment_integration_charge_cancelled_in_flight_stays_pinned(psps, make_layer, attempts):
    """A charge attempt cut short (the activity cancelled, the worker shutting down) after
    the gateway took it may have charged: it must pin the payment like a timeout does."""
    cardpay, paynext = psps
    layer = make_layer(tries_per_gateway=1)
    payment_id = new_payment_id()
    await cardpay.set_faults(drop_response_rate=1, hang_seconds=HANG_SECONDS)
    paynext_calls = await paynext.calls()

    in_flight = asyncio.create_task(layer.charge(payment_id, charge_for(payment_id)))
    await eventually(lambda: cardpay.charges_for(payment_id), timeout=5, interval=0.02, what="cardpay to book the charge")
    assert not in_flight.done()  # the answer has not come back (the client waits up to 0.5 s)
    in_flight.cancel()
    with pytest.raises(asyncio.CancelledError):
        await in_flight
    assert await attempts(payment_id) == [("cardpay", "charge", "error")]
    assert (await layer.gateway_that_may_hold(payment_id)).name == "cardpay"

    await cardpay.set_faults(outage=True)
    with pytest.raises((NoGatewayAvailable, GatewayAmbiguous)):
        await layer.charge(payment_id, charge_for(payment_id))
    assert await paynext.charges_for(payment_id) == []
    assert await paynext.calls() == paynext_calls

    await cardpay.clear_faults()
    charged = await layer.charge(payment_id, charge_for(payment_id))
    assert (charged.gateway, charged.outcome.approved) == ("cardpay", True)
    assert len(await cardpay.charges_for(payment_id)) == 1
    assert await paynext.charges_for(payment_id) == []


# --- 7. refunds ----------------------------------------------------------------------------------


@pytest.mark.parametrize("gateway", ["cardpay", "paynext"])
async def test_payment_integration_refund_goes_through_the_gateway_that_charged_once(psps, make_layer, attempts, gateway):
    sims = dict(zip(("cardpay", "paynext"), psps))
    charging, other = sims[gateway], sims["paynext" if gateway == "cardpay" else "cardpay"]
    layer = make_layer(tries_per_gateway=3)
    payment_id = new_payment_id()
    if gateway == "paynext":
        await sims["cardpay"].set_faults(outage=True)  # so the charge goes to paynext
    charged = await layer.charge(payment_id, charge_for(payment_id))
    assert charged.gateway == gateway
    await sims["cardpay"].clear_faults()

    refund = Refund(key=f"refund-{payment_id}", charge_reference=charged.outcome.reference, amount=AMOUNT, currency="EUR")
    # The first refund call gets a 503 and is retried; the refund is made once all the same.
    await charging.set_faults(error_rate=0.5, seed=seed_failing_first(1))
    other_calls = await other.calls()
    first = await layer.refund(payment_id, charged.gateway, refund)
    await charging.clear_faults()
    again = await layer.refund(payment_id, charged.gateway, refund)

    assert first == again
    (refunded,) = await charging.refunds_of(charged.outcome.reference)
    assert (refunded["reference"], refunded["amount"], refunded["status"]) == (first, AMOUNT_MINOR, "succeeded")
    assert await other.calls() == other_calls
    assert [r for r in (await other.ledger())["refunds"] if r["key"] == refund.key] == []
    assert [a for a in await attempts(payment_id) if a[1] == "refund"] == [
        (gateway, "refund", "unavailable"),
        (gateway, "refund", "succeeded"),
        (gateway, "refund", "succeeded"),
    ]


# --- 8. both down ----------------------------------------------------------------------------------


async def test_payment_integration_both_gateways_down_is_no_gateway_available(psps, make_layer, attempts):
    cardpay, paynext = psps
    layer = make_layer(tries_per_gateway=2)
    payment_id = new_payment_id()
    await cardpay.set_faults(outage=True)
    await paynext.set_faults(outage=True)

    with pytest.raises(NoGatewayAvailable, match="every payment gateway is unavailable"):
        await layer.charge(payment_id, charge_for(payment_id))

    assert await cardpay.charges_for(payment_id) == []
    assert await paynext.charges_for(payment_id) == []
    assert await attempts(payment_id) == [("cardpay", "charge", "unavailable")] * 2 + [("paynext", "charge", "unavailable")] * 2
    assert await layer.gateway_that_may_hold(payment_id) is None  # nothing pinned: safe to try anywhere later
