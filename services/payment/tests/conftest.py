"""Fixtures for the payment integration layer tests: the REAL simulated PSPs (cardpay, paynext)
served by uvicorn on free 127.0.0.1 ports for the test session (never the stack's 8201/8202),
each with its ledger in a temporary directory of its own, and the payment database as a real
SQLite file per test."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
import uvicorn
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from concerto_payment.adapters.db import gateway_attempts, tables
from concerto_payment.integration.cardpay import CardpayGateway
from concerto_payment.integration.layer import PaymentGateways
from concerto_payment.integration.paynext import PaynextGateway
from concerto_psp_simulators import cardpay as cardpay_simulator
from concerto_psp_simulators import paynext as paynext_simulator
from concerto_runtime import Settings
from concerto_runtime.database import create_engine, create_sessions, create_tables
from concerto_runtime.service_tokens import SignedAs, new_key_pair
from concerto_runtime.testing import eventually

# The layer's HTTP timeout, and how long an injected timeout or dropped response hangs: longer,
# so the client gives up first and cannot tell whether the request was carried out.
CLIENT_TIMEOUT = 0.5
HANG_SECONDS = 1.5


class _QuietServer(uvicorn.Server):
    """A uvicorn server that leaves the process's signal handlers (pytest's Ctrl-C) alone."""

    @contextlib.contextmanager
    def capture_signals(self):
        yield


# The payment service's signing key; the simulators know its public key only (ADR 12).
PAYMENT_KEY, PAYMENT_PUBLIC_KEY = new_key_pair()


@dataclass
class Simulator:
    """One simulated PSP running over real HTTP, with its admin API at hand."""

    name: str
    url: str
    admin: httpx.AsyncClient

    async def set_faults(self, **faults: Any) -> None:
        response = await self.admin.put("/_admin/faults", json=faults)
        response.raise_for_status()

    async def clear_faults(self) -> None:
        await self.set_faults()

    async def stats(self) -> dict:
        response = await self.admin.get("/_admin/stats")
        response.raise_for_status()
        return response.json()

    async def calls(self) -> int:
        """PSP API calls received since the session began (faulted ones included)."""
        return (await self.stats())["calls"]

    async def ledger(self) -> dict:
        response = await self.admin.get("/_admin/ledger")
        response.raise_for_status()
        return response.json()

    async def charges_for(self, key: str) -> list[dict]:
        return [charge for charge in (await self.ledger())["charges"] if charge["key"] == key]

    async def refunds_of(self, charge_reference: str) -> list[dict]:
        return [refund for refund in (await self.ledger())["refunds"] if refund["charge_reference"] == charge_reference]


@contextlib.asynccontextmanager
async def serving(module: ModuleType, data_dir: Path) -> AsyncIterator[Simulator]:
    app = module.create_app(Settings(data_dir=data_dir, service_caller_keys={"payment": PAYMENT_PUBLIC_KEY}))
    server = _QuietServer(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on", timeout_graceful_shutdown=3)
    )
    task = asyncio.create_task(server.serve())

    async def started() -> bool:
        if task.done():  # failed to start: surface its error rather than wait
            task.result()
        return server.started

    await eventually(started, timeout=15, interval=0.02, what=f"{module.NAME} to start")
    port = server.servers[0].sockets[0].getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    try:
        # Its admin routes answer the payment service's signed calls only (ADR 12).
        async with httpx.AsyncClient(base_url=url, timeout=10, auth=SignedAs(PAYMENT_KEY, "payment", module.NAME)) as admin:
            yield Simulator(module.NAME, url, admin)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=15)


@pytest.fixture(scope="session")
async def cardpay_sim(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Simulator]:
    async with serving(cardpay_simulator, tmp_path_factory.mktemp("cardpay-data")) as simulator:
        yield simulator


@pytest.fixture(scope="session")
async def paynext_sim(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Simulator]:
    async with serving(paynext_simulator, tmp_path_factory.mktemp("paynext-data")) as simulator:
        yield simulator


@pytest.fixture
async def psps(cardpay_sim: Simulator, paynext_sim: Simulator) -> AsyncIterator[tuple[Simulator, Simulator]]:
    """Both simulators, with no faults in force before the test and after it."""
    for simulator in (cardpay_sim, paynext_sim):
        await simulator.clear_faults()
    yield cardpay_sim, paynext_sim
    for simulator in (cardpay_sim, paynext_sim):
        await simulator.clear_faults()


@pytest.fixture
async def payment_sessions(tmp_path: Path) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """The payment database: a real SQLite file of the test's own."""
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'payment.db'}")
    await create_tables(engine, tables)
    try:
        yield create_sessions(engine)
    finally:
        await engine.dispose()


@pytest.fixture
async def make_layer(
    psps: tuple[Simulator, Simulator], payment_sessions: async_sessionmaker[AsyncSession]
) -> AsyncIterator[Callable[..., PaymentGateways]]:
    """`make_layer(failure_threshold=..., recovery_seconds=..., tries_per_gateway=...)`: the
    integration layer over both simulators, cardpay preferred, with fresh breakers."""
    cardpay, paynext = psps
    built: list[PaymentGateways] = []

    def make(
        *, failure_threshold: int = 10, recovery_seconds: float = 1.0, tries_per_gateway: int = 3, cardpay_url: str | None = None
    ) -> PaymentGateways:
        layer = PaymentGateways(
            [CardpayGateway(cardpay_url or cardpay.url, CLIENT_TIMEOUT), PaynextGateway(paynext.url, CLIENT_TIMEOUT)],
            payment_sessions,
            failure_threshold=failure_threshold,
            recovery_seconds=recovery_seconds,
            tries_per_gateway=tries_per_gateway,
        )
        built.append(layer)
        return layer

    yield make
    for layer in built:
        for gateway in layer.gateways:
            await gateway._client.aclose()


@pytest.fixture
def attempts(payment_sessions: async_sessionmaker[AsyncSession]) -> Callable[[str], Any]:
    """`await attempts(payment_id)`: its gateway_attempts rows as (gateway, operation, outcome)."""

    async def read(payment_id: str) -> list[tuple[str, str, str]]:
        async with payment_sessions() as session:
            rows = await session.execute(
                select(gateway_attempts.c.gateway, gateway_attempts.c.operation, gateway_attempts.c.outcome)
                .where(gateway_attempts.c.payment_id == payment_id)
                .order_by(gateway_attempts.c.id)
            )
            return [tuple(row) for row in rows]

    return read
