"""The one interface every payment provider adapter offers, and what can come back."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Protocol, TypeVar

import httpx
from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, ValidationError

from concerto_contracts.values import MaskedCard

log = logging.getLogger(__name__)

# The most of a provider's answer we read: its answers are a few hundred bytes.
MAX_ANSWER_BYTES = 64 * 1024


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

    async def find_charge(self, key: str, charge: Charge | None = None) -> ChargeOutcome | None:
        """The charge made with `key`, if any; given `charge`, one found for another amount or
        currency is not believed (GatewayAmbiguous)."""

    async def refund(self, refund: Refund) -> str: ...


# What we keep of a provider's answer, validated first: its references end up in our database
# and in our events, its card in our customers' orders.
Reference = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
Word = Annotated[str, Field(pattern=r"^[A-Za-z_]{1,32}$")]
Currency = Annotated[str, Field(pattern=r"^[A-Za-z]{3}$")]
Amount = NonNegativeInt  # minor units


class ProviderAnswer(BaseModel):
    """A provider's answer, or part of one: fields it adds are ignored, the ones we read are
    checked strictly (no "12" for 12)."""

    model_config = ConfigDict(extra="ignore", strict=True)


class ProviderCard(ProviderAnswer):
    brand: Word
    last4: str = Field(pattern=r"^[0-9]{4}$")

    def masked(self) -> MaskedCard:
        return MaskedCard(brand=self.brand, last4=self.last4)


M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Answer:
    """A provider's HTTP answer, read whole but never beyond MAX_ANSWER_BYTES."""

    provider: str
    status: int
    body: bytes

    def read(self, model: type[M], statuses: tuple[int, ...] = (200,)) -> M:
        """The body as `model`; GatewayAmbiguous if it is not one, or came with another status."""
        if self.status not in statuses:
            raise self.unreadable(f"HTTP {self.status}")
        try:
            return model.model_validate_json(self.body)
        except ValidationError as exc:
            where = sorted({".".join(map(str, error["loc"])) or "the body" for error in exc.errors()})
            # `from None`: the validation error quotes the body, which may carry card data.
            raise self.unreadable(f"not a valid {model.__name__} at {', '.join(where)}") from None

    def raise_if_refused(self) -> None:
        """A 4xx: the provider refused the request, so nothing happened."""
        if 400 <= self.status < 500:
            raise GatewayRejected(f"{self.provider} answered HTTP {self.status}")

    def unreadable(self, what: str) -> GatewayAmbiguous:
        """An answer we cannot read may follow a request that was carried out: ambiguous. Logged
        without the body, which may carry card data."""
        log.warning("%s answered what we cannot read (%d bytes): %s", self.provider, len(self.body), what)
        return GatewayAmbiguous(f"{self.provider} answered what we cannot read: {what}")

    def check_charged(self, charge: Charge | None, amount: int, currency: str) -> None:
        """A charge answered for another amount or currency than `charge`'s (if given) is not one
        we can take at its word."""
        if charge and (amount, currency.upper()) != (minor_units(charge.amount), charge.currency.upper()):
            raise self.unreadable("another amount or currency than the one charged")


def minor_units(amount: Decimal) -> int:
    return int((amount * 100).to_integral_value())


async def send(provider: str, client: httpx.AsyncClient, method: str, url: str, **kwargs) -> Answer:
    """One HTTP call, its failures sorted into unavailable (nothing happened) and ambiguous."""
    try:
        async with client.stream(method, url, **kwargs) as response:
            if response.status_code in (429, 503):
                raise GatewayUnavailable(f"HTTP {response.status_code}")
            if response.status_code >= 500:
                raise GatewayAmbiguous(f"HTTP {response.status_code}")
            body = b""
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > MAX_ANSWER_BYTES:
                    raise Answer(provider, response.status_code, body).unreadable(f"more than {MAX_ANSWER_BYTES} bytes")
            return Answer(provider, response.status_code, body)
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
        raise GatewayUnavailable(f"{type(exc).__name__}: {exc}") from exc
    except httpx.TransportError as exc:  # read timeout, dropped connection: it may have happened
        raise GatewayAmbiguous(f"{type(exc).__name__}: {exc}") from exc
