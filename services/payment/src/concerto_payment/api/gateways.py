"""Operator and demo controls for the payment gateways: breaker state and call counts from
the integration layer; faults and ledgers from the (simulated) providers themselves."""

from __future__ import annotations

import httpx
from fastapi import APIRouter, Depends

from concerto_contracts.http import GatewayFaults, PaymentGatewayStatus
from concerto_payment.integration.layer import PaymentGateways
from concerto_runtime import Problem, Runtime, runtime_of
from concerto_runtime.service_tokens import SignedAs

router = APIRouter(prefix="/payment-gateways")


def gateways_of(runtime: Runtime = Depends(runtime_of)) -> PaymentGateways:
    return runtime.extras["payment_gateways"]


@router.get("")
async def gateway_status(gateways: PaymentGateways = Depends(gateways_of)) -> list[PaymentGatewayStatus]:
    return [PaymentGatewayStatus(**status) for status in gateways.status()]


@router.put("/{name}/faults")
async def set_faults(name: str, faults: GatewayFaults, runtime: Runtime = Depends(runtime_of)) -> dict:
    return await _simulator(name, runtime, "PUT", "/_admin/faults", json=faults.model_dump(exclude_none=True))


@router.get("/{name}/charges")
async def ledger(name: str, runtime: Runtime = Depends(runtime_of)) -> dict:
    return await _simulator(name, runtime, "GET", "/_admin/ledger")


async def _simulator(name: str, runtime: Runtime, method: str, path: str, **kwargs) -> dict:
    gateway = next((g for g in gateways_of(runtime).gateways if g.name == name), None)
    if gateway is None:
        raise Problem(404, "Unknown payment gateway", f"no payment gateway named {name!r}")
    # The simulators' admin routes take only the payment service's signed calls (ADR 12).
    key = runtime.settings.service_signing_key
    auth = SignedAs(key.get_secret_value(), "payment", name) if key else None
    try:
        async with httpx.AsyncClient(base_url=gateway.base_url, timeout=5, auth=auth) as client:
            response = await client.request(method, path, **kwargs)
    except httpx.HTTPError as exc:
        raise Problem(502, "Payment gateway unreachable", f"{name}'s control endpoint failed: {exc}") from None
    if response.is_error:  # a refusal (401, 403: not payment's signed call) or the simulator's own error
        said = response.json().get("detail") if response.headers.get("content-type") == "application/problem+json" else None
        raise Problem(502, "Payment gateway refused the call", f"{name} answered {response.status_code} to {method} {path}: {said or response.reason_phrase}")
    return response.json()
