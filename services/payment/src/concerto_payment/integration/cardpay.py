"""cardpay: a charges API. Amounts in minor units; an Idempotency-Key header makes a repeated
charge a replay of the first, so the payment id is the key."""

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


class CardpayGateway:
    def __init__(self, base_url: str, timeout: float, name: str = "cardpay") -> None:
        self.name = name
        self.base_url = base_url
        self._client = httpx.AsyncClient(base_url=base_url, timeout=timeout)

    async def charge(self, charge: Charge) -> ChargeOutcome:
        response = await send(
            self._client,
            "POST",
            "/v1/charges",
            headers={"Idempotency-Key": charge.key},
            json={"amount": minor_units(charge.amount), "currency": charge.currency.lower(), "source": charge.token},
        )
        body = response.json()
        if response.status_code == 200:
            return _outcome(body)
        if response.status_code == 402:  # card_error: a decline, final
            error = body["error"]
            return ChargeOutcome(approved=False, reference=error.get("charge", ""), decline_reason=_decline(error))
        raise GatewayRejected(f"cardpay answered {response.status_code}: {body}")

    async def find_charge(self, key: str) -> ChargeOutcome | None:
        response = await send(self._client, "GET", "/v1/charges", params={"idempotency_key": key})
        charges = response.json()["data"]
        return _outcome(charges[0]) if charges else None

    async def refund(self, refund: Refund) -> str:
        response = await send(
            self._client,
            "POST",
            "/v1/refunds",
            headers={"Idempotency-Key": refund.key},
            json={"charge": refund.charge_reference, "amount": minor_units(refund.amount)},
        )
        if response.status_code != 200:
            raise GatewayRejected(f"cardpay refused the refund: {response.status_code} {response.text[:200]}")
        return response.json()["id"]


def _outcome(charge: dict) -> ChargeOutcome:
    card = MaskedCard(**charge["card"]) if charge.get("card") else None
    if charge["status"] == "succeeded":
        return ChargeOutcome(approved=True, reference=charge["id"], card=card)
    return ChargeOutcome(approved=False, reference=charge["id"], card=card, decline_reason=_decline(charge))


def _decline(error: dict) -> str:
    code = error.get("decline_code") or error.get("failure_code") or "declined"
    return "insufficient_funds" if code == "insufficient_funds" else "declined"
