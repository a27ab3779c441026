"""paynext: a payments API. Amounts as {value, currency} in minor units; the merchant
reference identifies a payment, so sending the same reference again returns the same one."""

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
    minor_units,
    send,
)


# paynext's answers, as far as we read them.
class PaynextAmount(ProviderAnswer):
    value: Amount
    currency: Currency


class PaynextPayment(ProviderAnswer):
    pspReference: Reference
    resultCode: Literal["Authorised", "Refused"]
    refusalReason: str | None = None
    amount: PaynextAmount
    card: ProviderCard | None = None


class PaynextList(ProviderAnswer):
    payments: list[PaynextPayment]


class PaynextRefund(ProviderAnswer):
    pspReference: Reference
    status: Literal["received"]


class PaynextGateway:
    def __init__(self, base_url: str, timeout: float, name: str = "paynext") -> None:
        self.name = name
        self.base_url = base_url
        self._client = httpx.AsyncClient(base_url=base_url, timeout=timeout)

    async def charge(self, charge: Charge) -> ChargeOutcome:
        answer = await send(
            self.name,
            self._client,
            "POST",
            "/payments",
            json={
                "merchantReference": charge.key,
                "amount": {"value": minor_units(charge.amount), "currency": charge.currency.upper()},
                "paymentMethod": {"type": "scheme", "token": charge.token},
            },
        )
        answer.raise_if_refused()
        return _outcome(answer, answer.read(PaynextPayment), charge)

    async def find_charge(self, key: str, charge: Charge | None = None) -> ChargeOutcome | None:
        answer = await send(self.name, self._client, "GET", "/payments", params={"merchantReference": key})
        payments = answer.read(PaynextList).payments
        return _outcome(answer, payments[0], charge) if payments else None

    async def refund(self, refund: Refund) -> str:
        answer = await send(
            self.name,
            self._client,
            "POST",
            f"/payments/{refund.charge_reference}/refunds",
            json={
                "merchantReference": refund.key,
                "amount": {"value": minor_units(refund.amount), "currency": refund.currency.upper()},
            },
        )
        answer.raise_if_refused()
        return answer.read(PaynextRefund, statuses=(200, 201)).pspReference


def _outcome(answer: Answer, payment: PaynextPayment, asked: Charge | None) -> ChargeOutcome:
    answer.check_charged(asked, payment.amount.value, payment.amount.currency)
    card = payment.card.masked() if payment.card else None
    if payment.resultCode == "Authorised":
        return ChargeOutcome(approved=True, reference=payment.pspReference, card=card)
    reason = "insufficient_funds" if payment.refusalReason == "Not enough balance" else "declined"
    return ChargeOutcome(approved=False, reference=payment.pspReference, card=card, decline_reason=reason)
