"""paynext: a payments API. Amounts as {value, currency} in minor units; the merchant
reference identifies a payment, so sending the same reference again returns the same one."""

from __future__ import annotations

import httpx

from concerto_contracts.values import MaskedCard
from concerto_payment.integration.gateways import (
    Charge,
    ChargeOutcome,
    GatewayRejected,
    Refund,
    minor_units,
    send,
)


class PaynextGateway:
    def __init__(self, base_url: str, timeout: float, name: str = "paynext") -> None:
        self.name = name
        self.base_url = base_url
        self._client = httpx.AsyncClient(base_url=base_url, timeout=timeout)

    async def charge(self, charge: Charge) -> ChargeOutcome:
        response = await send(
            self._client,
            "POST",
            "/payments",
            json={
                "merchantReference": charge.key,
                "amount": {"value": minor_units(charge.amount), "currency": charge.currency.upper()},
                "paymentMethod": {"type": "scheme", "token": charge.token},
            },
        )
        if response.status_code != 200:
            raise GatewayRejected(f"paynext answered {response.status_code}: {response.text[:200]}")
        return _outcome(response.json())

    async def find_charge(self, key: str) -> ChargeOutcome | None:
        response = await send(self._client, "GET", "/payments", params={"merchantReference": key})
        payments = response.json()["payments"]
        return _outcome(payments[0]) if payments else None

    async def refund(self, refund: Refund) -> str:
        response = await send(
            self._client,
            "POST",
            f"/payments/{refund.charge_reference}/refunds",
            json={
                "merchantReference": refund.key,
                "amount": {"value": minor_units(refund.amount), "currency": refund.currency.upper()},
            },
        )
        if response.status_code not in (200, 201):
            raise GatewayRejected(f"paynext refused the refund: {response.status_code} {response.text[:200]}")
        return response.json()["pspReference"]


def _outcome(payment: dict) -> ChargeOutcome:
    card = MaskedCard(**payment["card"]) if payment.get("card") else None
    if payment["resultCode"] == "Authorised":
        return ChargeOutcome(approved=True, reference=payment["pspReference"], card=card)
    reason = "insufficient_funds" if payment.get("refusalReason") == "Not enough balance" else "declined"
    return ChargeOutcome(approved=False, reference=payment["pspReference"], card=card, decline_reason=reason)
