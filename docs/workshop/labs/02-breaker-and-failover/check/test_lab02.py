"""Lab 2's checks: the integration layer fails over to the next gateway when, and only when,
the first one certainly did nothing. Against the real simulated PSPs over real HTTP."""

from __future__ import annotations

import socket
import uuid
from decimal import Decimal

import pytest

from concerto_payment.integration.gateways import Charge, GatewayAmbiguous
from concerto_payment.integration.layer import NoGatewayAvailable

# How long an injected dropped answer hangs: longer than the layer's client timeout in the
# copy's services/payment/tests/conftest.py (0.5 s), so the client gives up first.
HANG_SECONDS = 1.5


def new_payment_id() -> str:
    return f"pay-lab02-{uuid.uuid4().hex[:12]}"


def charge_for(payment_id: str, token: str = "tok_visa") -> Charge:
    return Charge(key=payment_id, amount=Decimal("62.59"), currency="EUR", token=token)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def charge(layer, payment_id: str, token: str = "tok_visa", *, when: str):
    try:
        return await layer.charge(payment_id, charge_for(payment_id, token))
    except NoGatewayAvailable:
        pytest.fail(f"{when}, the charge should go to paynext, but the layer gave up: NoGatewayAvailable")


async def test_with_cardpay_in_outage_the_charge_goes_to_paynext(psps, make_layer, attempts):
    cardpay, paynext = psps
    layer = make_layer(tries_per_gateway=2)
    payment_id = new_payment_id()
    await cardpay.set_faults(outage=True)

    charged = await charge(layer, payment_id, when="with cardpay down (outage: 503s)")

    assert (charged.gateway, charged.outcome.approved) == ("paynext", True), (
        f"with cardpay down (outage: 503s), the charge should go to paynext and be approved; it went to {charged.gateway}"
    )
    assert len(await paynext.charges_for(payment_id)) == 1, "with cardpay down, paynext should hold exactly one charge for the payment"
    assert await cardpay.charges_for(payment_id) == [], "with cardpay down, cardpay should hold no charge for the payment"
    assert await attempts(payment_id) == [("cardpay", "charge", "unavailable")] * 2 + [("paynext", "charge", "approved")], (
        "with cardpay down, cardpay should be tried (and retried) first, then paynext once: "
        f"the attempts were {await attempts(payment_id)}"
    )


async def test_with_cardpay_refusing_connections_the_charge_goes_to_paynext(psps, make_layer, attempts):
    _, paynext = psps
    layer = make_layer(tries_per_gateway=1, cardpay_url=f"http://127.0.0.1:{closed_port()}")
    payment_id = new_payment_id()

    charged = await charge(layer, payment_id, when="with cardpay refusing connections")

    assert charged.gateway == "paynext", f"with cardpay refusing connections, the charge should go to paynext, not {charged.gateway}"
    assert len(await paynext.charges_for(payment_id)) == 1, "with cardpay refusing connections, paynext should hold one charge"


async def test_with_cardpays_circuit_open_paynext_takes_the_charge_and_cardpay_is_not_called(psps, make_layer, attempts):
    cardpay, paynext = psps
    layer = make_layer(failure_threshold=2, recovery_seconds=30, tries_per_gateway=1)
    await cardpay.set_faults(outage=True)
    for _ in range(2):  # two failures in a row: the breaker opens
        payment_id = new_payment_id()
        await charge(layer, payment_id, when="with cardpay down")
    cardpay_state = next(gateway for gateway in layer.status() if gateway["name"] == "cardpay")["state"]
    assert cardpay_state == "open", f"after two failures in a row (threshold 2) cardpay's breaker should be open, it is {cardpay_state}"

    payment_id = new_payment_id()
    calls = await cardpay.calls()
    charged = await charge(layer, payment_id, when="with cardpay's circuit open")

    assert charged.gateway == "paynext", f"with cardpay's circuit open, the charge should go to paynext, not {charged.gateway}"
    assert await cardpay.calls() == calls, "with cardpay's circuit open, cardpay should not be called at all"
    assert await attempts(payment_id) == [("cardpay", "charge", "circuit_open"), ("paynext", "charge", "approved")], (
        f"with cardpay's circuit open, the attempts should be cardpay circuit_open, then paynext approved: {await attempts(payment_id)}"
    )


async def test_a_decline_is_an_answer_not_a_reason_to_fail_over(psps, make_layer, attempts):
    cardpay, paynext = psps
    layer = make_layer()
    payment_id = new_payment_id()
    calls = await paynext.calls()

    charged = await layer.charge(payment_id, charge_for(payment_id, "tok_chargeDeclined"))

    assert (charged.gateway, charged.outcome.approved) == ("cardpay", False), (
        f"a card cardpay declines should come back declined from cardpay, not {charged.gateway} approved={charged.outcome.approved}"
    )
    assert await paynext.calls() == calls, "a decline is the card's answer: the charge should not be tried again at paynext"


async def test_a_charge_that_may_have_gone_through_never_fails_over(psps, make_layer, attempts):
    cardpay, paynext = psps
    layer = make_layer(tries_per_gateway=2)
    payment_id = new_payment_id()
    # cardpay carries the charge out and the answer is lost: the layer cannot know it charged.
    await cardpay.set_faults(drop_response_rate=1, hang_seconds=HANG_SECONDS)
    calls = await paynext.calls()

    try:
        await layer.charge(payment_id, charge_for(payment_id))
    except (GatewayAmbiguous, NoGatewayAvailable):
        pass  # as it should: the payment stays with cardpay, to be looked up there later

    assert await paynext.calls() == calls and await paynext.charges_for(payment_id) == [], (
        "with cardpay's answer lost (it may have charged), the payment should stay with cardpay and never go to "
        "paynext: that would charge the card twice. Fail over on GatewayUnavailable and BreakerOpen only"
    )
    assert len(await cardpay.charges_for(payment_id)) == 1, "cardpay should hold the one charge it made, no second one"


async def test_with_both_gateways_down_the_layer_says_no_gateway_is_available(psps, make_layer, attempts):
    cardpay, paynext = psps
    layer = make_layer(tries_per_gateway=1)
    payment_id = new_payment_id()
    await cardpay.set_faults(outage=True)
    await paynext.set_faults(outage=True)

    with pytest.raises(NoGatewayAvailable):
        await layer.charge(payment_id, charge_for(payment_id))

    assert await attempts(payment_id) == [("cardpay", "charge", "unavailable"), ("paynext", "charge", "unavailable")], (
        "with both gateways down, each should be tried once in order of preference (cardpay, then paynext) before "
        f"NoGatewayAvailable: the attempts were {await attempts(payment_id)}"
    )
