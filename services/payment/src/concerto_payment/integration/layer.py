"""The payment gateways as PaymentWorkflow's activities see them: one call to charge, one to
refund, whatever the providers are doing.

- Gateways are tried in order of preference; a gateway whose circuit is open is skipped.
- At one gateway, a failure that may be transient is retried (backoff with jitter, bounded);
  a decline is an answer, never retried.
- If a gateway certainly did nothing (refused, overloaded, outage), the next one is tried.
- If a gateway may have charged (timeout, dropped response, an answer that cannot be read),
  the payment stays with that gateway: it is looked up there before it is charged again, with
  the same idempotency key, and never sent elsewhere. That is how a retry, a worker crash or
  a redelivered event can never charge a card twice.
- Every call is recorded in the payment database (`gateway_attempts`).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from concerto_payment.adapters.db import gateway_attempts
from concerto_payment.integration.gateways import (
    Charge,
    ChargeOutcome,
    GatewayAmbiguous,
    GatewayRejected,
    GatewayUnavailable,
    PaymentGateway,
    Refund,
)
from concerto_observability.metrics import gauge
from concerto_resilience import Breaker, BreakerOpen, retrying

T = TypeVar("T")

BREAKER_STATE = gauge("concerto_circuit_breaker_state", "1 for the state each gateway's circuit breaker is in", ["gateway", "state"])


class NoGatewayAvailable(Exception):
    """Every gateway is down or has its circuit open. Nothing was charged: try again later."""


@dataclass(frozen=True)
class GatewayCharge:
    gateway: str
    outcome: ChargeOutcome


class PaymentGateways:
    def __init__(
        self,
        gateways: list[PaymentGateway],
        sessions: async_sessionmaker[AsyncSession],
        *,
        failure_threshold: int = 5,
        recovery_seconds: float = 15.0,
        tries_per_gateway: int = 3,
    ) -> None:
        self.gateways = gateways
        self._by_name = {gateway.name: gateway for gateway in gateways}
        self._sessions = sessions
        self._tries = tries_per_gateway
        self.breakers = {
            gateway.name: Breaker(
                gateway.name,
                failure_threshold=failure_threshold,
                recovery_seconds=recovery_seconds,
                counts_as_failure=(GatewayUnavailable, GatewayAmbiguous),
            )
            for gateway in gateways
        }

    def gateway(self, name: str) -> PaymentGateway:
        return self._by_name[name]

    async def charge(self, payment_id: str, charge: Charge) -> GatewayCharge:
        pinned = await self.gateway_that_may_hold(payment_id)
        if pinned:  # it may hold this charge already: ask it, and only it
            return GatewayCharge(pinned.name, await self._charge_at(pinned, payment_id, charge, look_up_first=True))
        for gateway in self.gateways:
            try:
                return GatewayCharge(gateway.name, await self._charge_at(gateway, payment_id, charge, look_up_first=False))
            except (GatewayUnavailable, BreakerOpen):
                continue  # nothing happened there: the next gateway may take it
        raise NoGatewayAvailable("every payment gateway is unavailable")

    async def _charge_at(self, gateway: PaymentGateway, payment_id: str, charge: Charge, look_up_first: bool) -> ChargeOutcome:
        maybe_charged = look_up_first
        try:
            async for attempt in retrying(attempts=self._tries, on=(GatewayUnavailable, GatewayAmbiguous)):
                with attempt:
                    if maybe_charged:
                        found = await self.look_up(payment_id, gateway, charge.key, charge)
                        if found is not None:
                            return found
                    try:
                        return await self._call(gateway, payment_id, "charge", lambda: gateway.charge(charge))
                    except GatewayAmbiguous:
                        maybe_charged = True
                        raise
        except (GatewayUnavailable, BreakerOpen) as exc:
            if maybe_charged:  # it went quiet after it may have charged: stay with it
                raise GatewayAmbiguous(f"{gateway.name} may already hold this charge and is unavailable: {exc}") from exc
            raise
        raise AssertionError("unreachable: retrying() reraises")

    async def refund(self, payment_id: str, gateway_name: str, refund: Refund) -> str:
        """Refunds go back through the gateway that charged; refund keys make retries safe."""
        gateway = self.gateway(gateway_name)
        async for attempt in retrying(attempts=self._tries, on=(GatewayUnavailable, GatewayAmbiguous)):
            with attempt:
                return await self._call(gateway, payment_id, "refund", lambda: gateway.refund(refund))
        raise AssertionError("unreachable: retrying() reraises")

    async def look_up(
        self, payment_id: str, gateway: PaymentGateway, key: str, charge: Charge | None = None
    ) -> ChargeOutcome | None:
        return await self._call(gateway, payment_id, "lookup", lambda: gateway.find_charge(key, charge))

    async def gateway_that_may_hold(self, payment_id: str) -> PaymentGateway | None:
        """The gateway where an earlier charge attempt for this payment ended ambiguously."""
        async with self._sessions() as session:
            name = await session.scalar(
                select(gateway_attempts.c.gateway)
                .where(
                    gateway_attempts.c.payment_id == payment_id,
                    gateway_attempts.c.operation == "charge",
                    # "in_flight": the process died mid-call; "error": the call was cut short or
                    # failed in a way not sorted out. Either may have charged just the same.
                    gateway_attempts.c.outcome.in_(("ambiguous", "error", "in_flight")),
                )
                .limit(1)
            )
        return self._by_name.get(name) if name else None

    async def measure(self) -> None:
        """The breakers' states, for /metrics (read when asked: an open breaker turns half-open
        by the clock, not by a call)."""
        for name, breaker in self.breakers.items():
            for state in ("closed", "open", "half_open"):
                BREAKER_STATE.labels(name, state).set(breaker.state == state)

    def status(self) -> list[dict]:
        return [{"name": gateway.name, **self.breakers[gateway.name].snapshot()} for gateway in self.gateways]

    async def _call(self, gateway: PaymentGateway, payment_id: str, operation: str, call: Callable[[], Awaitable[T]]) -> T:
        # Recorded before the call, so even a crash mid-call leaves a trace (and pins the payment).
        async with self._sessions() as session, session.begin():
            attempt_id = (
                await session.execute(
                    insert(gateway_attempts)
                    .values(payment_id=payment_id, gateway=gateway.name, operation=operation, outcome="in_flight", duration_ms=0)
                    .returning(gateway_attempts.c.id)
                )
            ).scalar_one()
        started = time.monotonic()
        outcome, detail = "error", None
        try:
            result = await self.breakers[gateway.name].call(call)
            outcome = _describe(result)
            return result
        except BreakerOpen as exc:
            outcome, detail = "circuit_open", str(exc)
            raise
        except GatewayUnavailable as exc:
            outcome, detail = "unavailable", str(exc)
            raise
        except GatewayAmbiguous as exc:
            outcome, detail = "ambiguous", str(exc)
            raise
        except GatewayRejected as exc:
            outcome, detail = "rejected", str(exc)
            raise
        except BaseException as exc:  # cancelled, or a bug
            detail = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            async with self._sessions() as session, session.begin():
                await session.execute(
                    update(gateway_attempts)
                    .where(gateway_attempts.c.id == attempt_id)
                    .values(
                        outcome=outcome,
                        detail=(detail or "")[:500] or None,
                        duration_ms=int((time.monotonic() - started) * 1000),
                    )
                )


def _describe(result: object) -> str:
    if isinstance(result, ChargeOutcome):
        return "approved" if result.approved else "declined"
    if result is None:
        return "not_found"
    return "succeeded"
