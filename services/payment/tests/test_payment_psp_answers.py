"""OWASP API10, unsafe consumption of APIs: a provider's answer is validated before it is used.
Stand-in providers, served over real HTTP, answer what no provider should (not JSON, missing
fields, an unknown status, a hostile reference, a whole card number as last4, another amount,
a megabyte): a charge, a lookup or a refund so answered may have been carried out, so each is
ambiguous (looked up, never failed over), never approved, never a decline, never a crash; and
nothing of the body reaches the logs."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal

import pytest
from fastapi import FastAPI, Request, Response

from concerto_contracts.values import MaskedCard
from concerto_payment.integration.cardpay import CardpayGateway
from concerto_payment.integration.gateways import Charge, ChargeOutcome, GatewayAmbiguous, PaymentGateway, Refund
from concerto_payment.integration.paynext import PaynextGateway
from concerto_runtime.testing import local_server

CHARGE = Charge(key="pay-ord-answers", amount=Decimal("62.59"), currency="EUR", token="tok_visa")
VISA = {"brand": "visa", "last4": "4242"}
CARD_NUMBER = "4242424242424242"
HOSTILE_REFERENCE = "ch_1\u0000\r\nX-Injected: yes"


@dataclass(frozen=True)
class Provider:
    """A provider's routes and well-formed answers, as its simulator gives them."""

    name: str
    gateway: type
    charge_route: str
    lookup_route: str
    refund_route: str
    refund_status: int
    charge: dict  # a well-formed answer to CHARGE
    refund: dict  # a well-formed answer to REFUND
    reference: str  # the name of the reference field, in both
    status: str  # the name of the status field, in both
    another_amount: dict
    listed_in: str  # the field of a lookup's answer that lists the charges found

    def listing(self, charge: object) -> dict:
        return {self.listed_in: [charge]}


CARDPAY = Provider(
    name="cardpay",
    gateway=CardpayGateway,
    charge_route="POST /v1/charges",
    lookup_route="GET /v1/charges",
    refund_route="POST /v1/refunds",
    refund_status=200,
    charge={"id": "ch_1", "object": "charge", "amount": 6259, "currency": "eur", "status": "succeeded", "card": VISA},
    refund={"id": "re_1", "object": "refund", "charge": "ch_1", "amount": 6259, "status": "succeeded"},
    reference="id",
    status="status",
    another_amount={"amount": 1},
    listed_in="data",
)
PAYNEXT = Provider(
    name="paynext",
    gateway=PaynextGateway,
    charge_route="POST /payments",
    lookup_route="GET /payments",
    refund_route="POST /payments/ch_1/refunds",
    refund_status=201,
    charge={
        "pspReference": "PN1",
        "resultCode": "Authorised",
        "merchantReference": CHARGE.key,
        "amount": {"value": 6259, "currency": "EUR"},
        "card": VISA,
    },
    refund={"pspReference": "PNR1", "paymentPspReference": "ch_1", "status": "received"},
    reference="pspReference",
    status="resultCode",
    another_amount={"amount": {"value": 1, "currency": "EUR"}},
    listed_in="payments",
)
PROVIDERS = [pytest.param(CARDPAY, id="cardpay"), pytest.param(PAYNEXT, id="paynext")]
REFUND = Refund(key="refund-pay-ord-answers", charge_reference="ch_1", amount=CHARGE.amount, currency="EUR")


def garbled(good: dict, reference: str, status: str) -> dict[str, object]:
    """Answers no provider should give in place of `good` (bytes are sent as they are)."""
    return {
        "not JSON": b"<html><body>Thank you for your payment</body></html>",
        "missing fields": {"object": "charge"},
        "an unknown status": good | {status: "Pending"},
        "control characters in the reference": good | {reference: HOSTILE_REFERENCE},
        "a 10 000-character reference": good | {reference: "9" * 10_000},
        "a 1 MB body": good | {"padding": "x" * 1_000_000},
    }


def garbled_charges(provider: Provider) -> dict[str, object]:
    return garbled(provider.charge, provider.reference, provider.status) | {
        "a card number as last4": provider.charge | {"card": {"brand": "visa", "last4": CARD_NUMBER}},
        "a card brand that is no word": provider.charge | {"card": {"brand": "<script>", "last4": "4242"}},
    }


def cases(answers: Callable[[Provider], dict[str, object]]) -> list:
    """(provider, answer) for each provider and each of the answers `answers` gives for it."""
    providers = (CARDPAY, PAYNEXT)
    return [pytest.param(p, answer, id=f"{p.name}-{what}") for p in providers for what, answer in answers(p).items()]


def encoded(answer: object) -> bytes:
    return answer if isinstance(answer, bytes) else json.dumps(answer).encode()


@asynccontextmanager
async def provider_answering(
    provider: Provider, answers: dict[str, tuple[int, object]]
) -> AsyncIterator[tuple[PaymentGateway, list[str]]]:
    """The provider's adapter, talking over HTTP to a stand-in that answers "METHOD /path" with
    (status, body) and records each call."""
    app, calls = FastAPI(), []

    @app.api_route("/{path:path}", methods=["GET", "POST"])
    async def answer(request: Request) -> Response:
        calls.append(f"{request.method} {request.url.path}")
        status, body = answers[calls[-1]]
        return Response(encoded(body), status, media_type="application/json")

    async with local_server(app) as url:
        gateway = provider.gateway(url, timeout=5)
        try:
            yield gateway, calls
        finally:
            await gateway._client.aclose()


def assert_nothing_of_the_body_in(*texts: str) -> None:
    for text in texts:
        for piece in (CARD_NUMBER, "X-Injected", "9" * 100, "x" * 100, "<html>", "Pending", "<script>"):
            assert piece not in text, f"{piece!r} from the provider's body in {text[:300]!r}"


# --- well-formed answers are taken (so the stand-ins are right) ---------------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_well_formed_answers_are_taken(provider):
    async with provider_answering(
        provider,
        {
            provider.charge_route: (200, provider.charge),
            provider.lookup_route: (200, provider.listing(provider.charge)),
            provider.refund_route: (provider.refund_status, provider.refund),
        },
    ) as (gateway, _):
        approved = ChargeOutcome(approved=True, reference=provider.charge[provider.reference], card=MaskedCard(**VISA))
        assert await gateway.charge(CHARGE) == approved
        assert await gateway.find_charge(CHARGE.key) == approved
        assert await gateway.refund(REFUND) == provider.refund[provider.reference]


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_providers_adding_fields_is_fine(provider):
    extra = {"risk": {"score": 3}, "new_field": "x"}
    async with provider_answering(provider, {provider.charge_route: (200, provider.charge | extra)}) as (gateway, _):
        assert (await gateway.charge(CHARGE)).approved is True


# --- an answer that cannot be read is ambiguous ----------------------------------------------


@pytest.mark.parametrize(
    ("provider", "answer"), cases(lambda p: garbled_charges(p) | {"another amount": p.charge | p.another_amount})
)
async def test_a_charge_answered_garbled_is_ambiguous_never_approved_nor_declined(provider, answer, caplog):
    async with provider_answering(provider, {provider.charge_route: (200, answer)}) as (gateway, calls):
        with caplog.at_level(logging.WARNING), pytest.raises(GatewayAmbiguous) as raised:
            await gateway.charge(CHARGE)
    assert calls == [provider.charge_route]
    (warning,) = [record.getMessage() for record in caplog.records if record.name == "concerto_payment.integration.gateways"]
    assert warning.startswith(f"{gateway.name} answered what we cannot read")
    assert_nothing_of_the_body_in(caplog.text, str(raised.value))
    assert raised.value.__cause__ is None  # the validation error, which quotes the body, is not carried along


@pytest.mark.parametrize(("provider", "answer"), cases(garbled_charges))
async def test_a_lookup_answered_garbled_is_ambiguous(provider, answer, caplog):
    listing = answer if isinstance(answer, bytes) else provider.listing(answer)
    async with provider_answering(provider, {provider.lookup_route: (200, listing)}) as (gateway, _):
        with caplog.at_level(logging.WARNING), pytest.raises(GatewayAmbiguous) as raised:
            await gateway.find_charge(CHARGE.key)
    assert_nothing_of_the_body_in(caplog.text, str(raised.value))


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_lookup_finding_another_amount_is_ambiguous_when_the_charge_is_known(provider):
    found = provider.listing(provider.charge | provider.another_amount)
    async with provider_answering(provider, {provider.lookup_route: (200, found)}) as (gateway, _):
        with pytest.raises(GatewayAmbiguous):
            await gateway.find_charge(CHARGE.key, CHARGE)
        # Without the charge (release_unclaimed_charge): whatever was taken is found, to be refunded.
        assert (await gateway.find_charge(CHARGE.key)).approved is True


@pytest.mark.parametrize(("provider", "answer"), cases(lambda p: garbled(p.refund, p.reference, "status")))
async def test_a_refund_answered_garbled_is_ambiguous_so_retried(provider, answer, caplog):
    async with provider_answering(provider, {provider.refund_route: (provider.refund_status, answer)}) as (gateway, _):
        with caplog.at_level(logging.WARNING), pytest.raises(GatewayAmbiguous) as raised:
            await gateway.refund(REFUND)
    assert_nothing_of_the_body_in(caplog.text, str(raised.value))


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("status", [202, 302, 404])
async def test_a_lookup_answered_with_another_status_is_ambiguous(provider, status):
    answers = {provider.lookup_route: (status, provider.listing(provider.charge))}
    async with provider_answering(provider, answers) as (gateway, _):
        with pytest.raises(GatewayAmbiguous):
            await gateway.find_charge(CHARGE.key)


@pytest.mark.parametrize(
    "error",
    [
        {"type": "card_error", "decline_code": "generic_decline", "charge": HOSTILE_REFERENCE},
        {"type": "api_error", "charge": "ch_1"},  # a 402 that is no card error is no decline
    ],
    ids=["hostile-reference", "not-a-card-error"],
)
async def test_a_cardpay_decline_answered_garbled_is_ambiguous_not_a_decline(error):
    answer = {"error": error}
    async with provider_answering(CARDPAY, {CARDPAY.charge_route: (402, answer)}) as (gateway, _):
        with pytest.raises(GatewayAmbiguous):
            await gateway.charge(CHARGE)


# --- through the integration layer ------------------------------------------------------------


async def test_a_garbled_charge_answer_is_looked_up_and_approved_exactly_once(psps, make_layer, attempts):
    """cardpay charges, then answers nonsense; the layer does not fail over to paynext but looks
    the charge up at cardpay, and finds it."""
    _, paynext = psps
    payment_id = f"pay-ord-{uuid.uuid4().hex[:12]}"
    charge = Charge(key=payment_id, amount=CHARGE.amount, currency="EUR", token="tok_visa")
    tampered = CARDPAY.charge | {"id": HOSTILE_REFERENCE, "amount": 1, "card": {"brand": "visa", "last4": CARD_NUMBER}}
    answers = {CARDPAY.charge_route: (200, tampered), CARDPAY.lookup_route: (200, CARDPAY.listing(CARDPAY.charge))}
    paynext_calls = await paynext.calls()

    async with provider_answering(CARDPAY, answers) as (stand_in, calls):
        charged = await make_layer(cardpay_url=stand_in.base_url).charge(payment_id, charge)

    assert charged.gateway == "cardpay"
    assert charged.outcome == ChargeOutcome(approved=True, reference="ch_1", card=MaskedCard(**VISA))
    assert calls == [CARDPAY.charge_route, CARDPAY.lookup_route]  # charged once, then looked up
    assert await attempts(payment_id) == [("cardpay", "charge", "ambiguous"), ("cardpay", "lookup", "approved")]
    assert await paynext.calls() == paynext_calls  # never failed over


async def test_a_lookup_finding_another_amount_is_never_approved(psps, make_layer, attempts):
    """cardpay answers the charge with nonsense, then its lookup finds a charge for 1 cent: the
    layer takes neither, stays with cardpay (never fails over) and the payment stays ambiguous."""
    _, paynext = psps
    payment_id = f"pay-ord-{uuid.uuid4().hex[:12]}"
    charge = Charge(key=payment_id, amount=CHARGE.amount, currency="EUR", token="tok_visa")
    one_cent = CARDPAY.charge | {"amount": 1}
    answers = {CARDPAY.charge_route: (200, b"not JSON"), CARDPAY.lookup_route: (200, CARDPAY.listing(one_cent))}
    paynext_calls = await paynext.calls()

    async with provider_answering(CARDPAY, answers) as (stand_in, _):
        with pytest.raises(GatewayAmbiguous):
            await make_layer(cardpay_url=stand_in.base_url).charge(payment_id, charge)

    assert ("cardpay", "lookup", "approved") not in await attempts(payment_id)
    assert ("cardpay", "lookup", "ambiguous") in await attempts(payment_id)
    assert await paynext.calls() == paynext_calls  # never failed over
