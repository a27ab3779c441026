"""Each test gets a fresh simulator, in-process (httpx's ASGITransport, the app's lifespan run as
the server would), with its ledger in the test's own temporary directory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from types import ModuleType

import httpx
import pytest

from concerto_psp_simulators import cardpay, paynext
from concerto_runtime import Settings
from concerto_runtime.service_tokens import SignedAs, new_key_pair

# The payment service's signing key; the simulators know its public key only (ADR 12).
PAYMENT_KEY, PAYMENT_PUBLIC_KEY = new_key_pair()


@asynccontextmanager
async def running(simulator: ModuleType, data_dir: Path, *, signed: bool = True) -> AsyncIterator[httpx.AsyncClient]:
    """A client of a fresh simulator; its calls are signed as the payment service's (the only
    caller its admin routes take) unless `signed` is False."""
    app = simulator.create_app(Settings(data_dir=data_dir, service_caller_keys={"payment": PAYMENT_PUBLIC_KEY}))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        auth = SignedAs(PAYMENT_KEY, "payment", simulator.NAME) if signed else None
        async with httpx.AsyncClient(transport=transport, base_url=f"http://{simulator.NAME}.test", auth=auth) as client:
            yield client


@pytest.fixture
async def cardpay_client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with running(cardpay, tmp_path) as client:
        yield client


@pytest.fixture
async def paynext_client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with running(paynext, tmp_path) as client:
        yield client


@pytest.fixture
def start():
    """For tests that stop and start a simulator: `async with start(cardpay, tmp_path) as client`."""
    return running
