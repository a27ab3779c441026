"""cardpay: a charges API. Amounts in minor units; an Idempotency-Key header makes a repeated
charge a replay of the first, so the payment id is the key."""

from __future__ import annotations

from typing import Literal

import httpx

from concerto_payment.integration.gateways import (
    Amount,
    Answer,
    Charge,
    ChargeOutcome,
    Currency,
    ProviderAnswer,
    ProviderCard,
    Reference,
    Refund,
    Word,
    minor_units,
    send,
)


# cardpay's answers, as far as we read them.
class CardpayCharge(ProviderAnswer):
    id: Reference
    amount: Amount
    currency: Currency
    status: Literal["succeeded", "failed"]
    card: ProviderCard | None = None
    failure_code: Word | None = None
    decline_code: Word | None = None


class CardpayCardError(ProviderAnswer):
    type: Literal["card_error"]
    charge: Reference
    decline_code: Word | None = None


class CardpayDecline(ProviderAnswer):  # the body of a 402
    error: CardpayCardError


class CardpayList(ProviderAnswer):
    data: list[CardpayCharge]


class CardpayRefund(ProviderAnswer):
    id: Reference
    status: Literal["succeeded"]


class CardpayGateway:
    def __init__(self, base_url: str, timeout: float, name: str = "cardpay") -> None:
        self.name = name
        self.base_url = base_url
        self._client = httpx.AsyncClient(base_url=base_url, timeout=timeout)

    async def charge(self, charge: Charge) -> ChargeOutcome:
        answer = await send(
            self.name,
            self._client,
            "POST",
            "/v1/charges",
            headers={"Idempotency-Key": charge.key},
            json={"amount": minor_units(charge.amount), "currency": charge.currency.lower(), "source": charge.token},
        )
        if answer.status == 402:  # card_error: a decline, final
            error = answer.read(CardpayDecline, statuses=(402,)).error
            return ChargeOutcome(approved=False, reference=error.charge, decline_reason=_decline(error.decline_code))
        answer.raise_if_refused()
        return _outcome(answer, answer.read(CardpayCharge), charge)

    async def find_charge(self, key: str, charge: Charge | None = None) -> ChargeOutcome | None:
        answer = await send(self.name, self._client, "GET", "/v1/charges", params={"idempotency_key": key})
        charges = answer.read(CardpayList).data
        return _outcome(answer, charges[0], charge) if charges else None

    async def refund(self, refund: Refund) -> str:
        answer = await send(
            self.name,
            self._client,
            "POST",
            "/v1/refunds",
            headers={"Idempotency-Key": refund.key},
            json={"charge": refund.charge_reference, "amount": minor_units(refund.amount)},
        )
        answer.raise_if_refused()
        return answer.read(CardpayRefund).id


def _outcome(answer: Answer, charge: CardpayCharge, asked: Charge | None) -> ChargeOutcome:
    answer.check_charged(asked, charge.amount, charge.currency)
    card = charge.card.masked() if charge.card else None
    if charge.status == "succeeded":
        return ChargeOutcome(approved=True, reference=charge.id, card=card)
    reason = _decline(charge.decline_code or charge.failure_code)
    return ChargeOutcome(approved=False, reference=charge.id, card=card, decline_reason=reason)


def _decline(code: str | None) -> str:
    return "insufficient_funds" if code == "insufficient_funds" else "declined"
