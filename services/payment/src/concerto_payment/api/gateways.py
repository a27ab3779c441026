"""Operator and demo controls for the payment gateways: breaker state and call counts from
the integration layer; faults and ledgers from the (simulated) providers themselves."""

from __future__ import annotations

import httpx
from fastapi import APIRouter, Depends

from concerto_contracts.http import GatewayFaults, PaymentGatewayStatus
from concerto_payment.integration.layer import PaymentGateways
from concerto_runtime import Problem, Runtime, runtime_of

router = APIRouter(prefix="/payment-gateways")


def gateways_of(runtime: Runtime = Depends(runtime_of)) -> PaymentGateways:
    return runtime.extras["payment_gateways"]


@router.get("")
async def gateway_status(gateways: PaymentGateways = Depends(gateways_of)) -> list[PaymentGatewayStatus]:
    return [PaymentGatewayStatus(**status) for status in gateways.status()]


@router.put("/{name}/faults")
async def set_faults(name: str, faults: GatewayFaults, gateways: PaymentGateways = Depends(gateways_of)) -> dict:
    return await _simulator(name, gateways, "PUT", "/_admin/faults", json=faults.model_dump(exclude_none=True))


@router.get("/{name}/charges")
async def ledger(name: str, gateways: PaymentGateways = Depends(gateways_of)) -> dict:
    return await _simulator(name, gateways, "GET", "/_admin/ledger")


async def _simulator(name: str, gateways: PaymentGateways, method: str, path: str, **kwargs) -> dict:
    gateway = next((g for g in gateways.gateways if g.name == name), None)
    if gateway is None:
        raise Problem(404, "Unknown payment gateway", f"no payment gateway named {name!r}")
    try:
        async with httpx.AsyncClient(base_url=gateway.base_url, timeout=5) as client:
            response = await client.request(method, path, **kwargs)
            response.raise_for_status()
    except httpx.HTTPError as exc:
        raise Problem(502, "Payment gateway unreachable", f"{name}'s control endpoint failed: {exc}") from None
    return response.json()
