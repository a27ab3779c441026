"""The payment service's gateway controls (faults, charges) reach the simulators' admin routes,
which take only the payment service's calls signed for that simulator (ADR 12). With the wrong
key, or none, the simulator refuses, and payment answers a 502 problem that says so."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from types import SimpleNamespace

import httpx
import pytest
from fastapi import FastAPI

from concerto_payment.api import gateways
from concerto_payment.integration.layer import PaymentGateways
from concerto_runtime import Settings, install_problem_handlers

from concerto_runtime.service_tokens import new_key_pair

from .conftest import PAYMENT_KEY, Simulator


@asynccontextmanager
async def payment_controls(layer: PaymentGateways, key: str | None) -> AsyncIterator[httpx.AsyncClient]:
    """Payment's /payment-gateways routes over `layer`, signing with `key` (None: no key)."""
    app = FastAPI()
    install_problem_handlers(app)
    app.state.runtime = SimpleNamespace(settings=Settings(service_signing_key=key), extras={"payment_gateways": layer})
    app.include_router(gateways.router)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://payment.test") as client:
        yield client


async def test_payment_signs_its_calls_for_each_simulator(psps: tuple[Simulator, Simulator], make_layer: Callable[..., PaymentGateways]):
    cardpay, paynext = psps
    async with payment_controls(make_layer(), PAYMENT_KEY) as payment:
        set_faults = await payment.put("/payment-gateways/cardpay/faults", json={"outage": True})
        charges = await payment.get("/payment-gateways/paynext/charges")

    assert set_faults.status_code == 200, set_faults.text
    assert (await cardpay.admin.get("/_admin/faults")).json()["outage"] is True
    assert charges.status_code == 200, charges.text
    assert charges.json() == await paynext.ledger()


@pytest.mark.parametrize("key", [new_key_pair()[0], None], ids=["another key", "no key"])
async def test_a_simulator_refusing_payment_is_a_502(psps: tuple[Simulator, Simulator], make_layer: Callable[..., PaymentGateways], key):
    cardpay, _ = psps
    async with payment_controls(make_layer(), key) as payment:
        refused = await payment.put("/payment-gateways/cardpay/faults", json={"outage": True})

    assert refused.status_code == 502, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    problem = refused.json()
    assert problem["title"] == "Payment gateway refused the call", problem
    assert problem["detail"].startswith("cardpay answered 401 to PUT /_admin/faults: "), problem
    assert (await cardpay.admin.get("/_admin/faults")).json()["outage"] is False, "a refused call changed nothing"
