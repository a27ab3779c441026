"""The one interface every payment provider adapter offers, and what can come back."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

import httpx

from concerto_contracts.values import MaskedCard


class GatewayUnavailable(Exception):
    """The provider did not take the request (refused, overloaded, in outage): nothing happened,
    so trying again, here or at another provider, is safe."""


class GatewayAmbiguous(Exception):
    """The request may or may not have been carried out (a timeout, a dropped connection, a 5xx
    mid-way): look the charge up before charging again, and never fail over meanwhile."""


class GatewayRejected(Exception):
    """The provider refused the request as malformed: a bug on our side, not worth a retry."""


@dataclass(frozen=True)
class Charge:
    key: str  # the idempotency key (cardpay) or merchant reference (paynext): the payment id
    amount: Decimal
    currency: str
    token: str


@dataclass(frozen=True)
class ChargeOutcome:
    approved: bool
    reference: str  # the provider's id for the charge
    card: MaskedCard | None = None
    decline_reason: str | None = None


@dataclass(frozen=True)
class Refund:
    key: str
    charge_reference: str
    amount: Decimal
    currency: str


class PaymentGateway(Protocol):
    name: str
    base_url: str

    async def charge(self, charge: Charge) -> ChargeOutcome: ...

    async def find_charge(self, key: str) -> ChargeOutcome | None: ...

    async def refund(self, refund: Refund) -> str: ...


def minor_units(amount: Decimal) -> int:
    return int((amount * 100).to_integral_value())


async def send(client: httpx.AsyncClient, method: str, url: str, **kwargs) -> httpx.Response:
    """One HTTP call, its failures sorted into unavailable (nothing happened) and ambiguous."""
    try:
        response = await client.request(method, url, **kwargs)
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
        raise GatewayUnavailable(f"{type(exc).__name__}: {exc}") from exc
    except httpx.TransportError as exc:  # read timeout, dropped connection: it may have happened
        raise GatewayAmbiguous(f"{type(exc).__name__}: {exc}") from exc
    if response.status_code in (429, 503):
        raise GatewayUnavailable(f"HTTP {response.status_code}")
    if response.status_code >= 500:
        raise GatewayAmbiguous(f"HTTP {response.status_code}")
    return response
